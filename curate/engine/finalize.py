"""Finishing a run: merge the statistics, check the accounting, write the manifest and the report."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time

from curate.compose import resolved_dict
from curate.engine.folder import Layout
from curate.engine.plan import Plan
from curate.engine.task import TaskResult
from curate.errors import InputError
from curate.manifest import FileRecord, InputRecord, Manifest, StageRecord, Timings, code_version
from curate.pipeline import Pipeline
from curate.schema import schema_to_json
from curate.stages.base import GlobalStage
from curate.stats import StageStats
from curate.writers import ShardWriter

logger = logging.getLogger(__name__)


def merged_stats(
    pipeline: Pipeline, results: list[dict[int, TaskResult]], resolved: dict[str, StageStats]
) -> dict[str, StageStats]:
    """Each stage's statistics over every task of every pass, and its resolve step."""
    stats = {stage.name: StageStats() for stage in pipeline.stages}
    for by_task in results:
        for _, result in sorted(by_task.items()):
            for name, task_stats in result.stages.items():
                stats[name].merge(task_stats)
    for name, resolve_stats in resolved.items():
        stats[name].merge(resolve_stats)
    return stats


def finalize(
    plan: Plan,
    layout: Layout,
    results: list[dict[int, TaskResult]],
    resolved: dict[str, StageStats],
    started: float,
    pass_seconds: list[float],
    n_workers: int,
) -> Manifest:
    pipeline, out = plan.pipeline, layout.out
    final = results[-1]
    shards = [FileRecord(**shard) for task in sorted(final) for shard in final[task].shards]
    if not shards:  # a dataset whose rows were all dropped still opens everywhere
        empty = ShardWriter(out / "data", "part-00000", pipeline.output_schema, 1, out).close(keep_empty=True)
        shards = [FileRecord(**shard) for shard in empty]
    everything = [result for by_task in results for _, result in sorted(by_task.items())]
    stats = merged_stats(pipeline, results, resolved)
    files = [InputRecord(**f) for task in sorted(results[0]) for f in results[0][task].files]
    rows_in = sum(f.rows for f in files)
    quarantined = sum(f.quarantined for f in files)
    if rows_in == 0 and any(f.skipped for f in files):  # e.g. WAT files, or a selection that matches nothing
        raise InputError(f"input.paths: no record was selected; passed over: {skipped_summary(files)}")
    rows_out = sum(s.rows for s in shards)
    check_accounting(pipeline, stats, rows_in - quarantined, rows_out)
    seconds = time.time() - started
    input_bytes = sum(f.bytes for f in files)
    manifest = Manifest(
        kind=pipeline.kind,
        schema=schema_to_json(pipeline.output_schema),
        rows=rows_out,
        rows_in=rows_in,
        dropped=sum(s.dropped_total for s in stats.values()),
        quarantined=quarantined,
        generated=sum(s.generated for s in stats.values()),
        consumed=sum(s.consumed for s in stats.values()),
        shards=shards,
        rejects=[FileRecord(**shard, stage=name) for r in everything for name, ss in r.rejects.items() for shard in ss],
        quarantine=[FileRecord(**shard) for task in sorted(results[0]) for shard in results[0][task].quarantine],
        stages=[
            StageRecord.from_stats(
                stage.name,
                f"{type(stage).__module__}.{type(stage).__qualname__}",
                "global" if isinstance(stage, GlobalStage) else "row",
                stage.options(),
                stats[stage.name],
                dataclasses.asdict(stage.resources),
            )
            for stage in pipeline.stages
        ],
        inputs=files,
        skipped_files=plan.skipped,
        tasks=len(plan.tasks),
        workers=n_workers,
        config=resolved_dict(plan.cfg),
        fingerprint=plan.fingerprint,
        version=code_version(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        timings=Timings(
            seconds=round(seconds, 3),
            passes=[
                {"pass": p.index, "stages": p.describe(), "seconds": round(s, 3)}
                for p, s in zip(pipeline.passes, pass_seconds)
            ],
            rows_per_second=round(rows_in / seconds, 1) if seconds else None,
            input_mb_per_second=round(input_bytes / seconds / 1e6, 3) if seconds else None,
        ),
    )
    check_listed_files(layout, manifest)
    manifest.write(out)
    if plan.cfg.output.report:
        from curate.report import write_report

        try:
            write_report(out, manifest)
        except Exception:  # the data is complete; a report failure must not lose it
            logger.warning("report.html not written", exc_info=True)
    if not plan.cfg.output.keep_work:
        shutil.rmtree(layout.work, ignore_errors=True)
    return manifest


def skipped_summary(files: list[InputRecord]) -> str:
    """Records passed over on purpose, by reason, over every input file (largest first)."""
    totals: dict[str, int] = {}
    for file in files:
        for reason, count in file.skipped.items():
            totals[reason] = totals.get(reason, 0) + count
    return ", ".join(f"{reason} {count}" for reason, count in sorted(totals.items(), key=lambda item: -item[1]))


def check_listed_files(layout: Layout, manifest: Manifest) -> None:
    """Every shard the manifest lists exists with its recorded size (a stat each: cheap insurance)."""
    for shard in manifest.shards + manifest.rejects + manifest.quarantine:
        path = layout.out / shard.path
        if not path.is_file() or path.stat().st_size != shard.bytes:
            raise RuntimeError(f"{path}: listed in the manifest but missing or of another size")


def check_accounting(pipeline: Pipeline, stats: dict[str, StageStats], rows_read: int, rows_out: int) -> None:
    """Rows in (+ generated) = rows out + dropped (+ consumed), and quarantined rows were already
    subtracted from the rows read: for the run and every stage."""
    expected_in = rows_read
    for stage in pipeline.stages:
        s = stats[stage.name]
        if s.rows_in != expected_in or (stage.one_to_one and not s.balanced()):
            raise RuntimeError(
                f"accounting broken at stage '{stage.name}': in {s.rows_in} (expected {expected_in}), "
                f"generated {s.generated}, out {s.rows_out}, dropped {s.dropped_total}, consumed {s.consumed}"
            )
        expected_in = s.rows_out
    if expected_in != rows_out:
        raise RuntimeError(f"accounting broken: {expected_in} rows left the last stage but {rows_out} were written")
