"""Finishing a run: merge the statistics, check the accounting, write the manifest and the report."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator

import pyarrow as pa

from curate import fs
from curate.arrow_io import encode_schema
from curate.compose import resolved_dict
from curate.engine.folder import Layout
from curate.engine.plan import Plan
from curate.engine.task import TaskResult
from curate.manifest import INPUTS_FILE, INPUTS_SCHEMA, FileRecord, Inputs, Manifest, StageRecord, Timings, code_version
from curate.pipeline import Pipeline
from curate.redact import redacted
from curate.schema import schema_to_json
from curate.stages.base import GlobalStage
from curate.stats import StageStats
from curate.writers import ShardWriter, write_listing

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
    """Write the run's last files, the manifest last of all (a folder with a manifest is complete),
    then remove the work folder (a rerun of a finished run removes it if a kill left it)."""
    pipeline, out = plan.pipeline, layout.out
    final = results[-1]
    shards = [FileRecord(**shard) for task in sorted(final) for shard in final[task].shards]
    if not shards:  # a dataset whose rows were all dropped still opens everywhere
        fmt = plan.cfg.output.format
        empty = ShardWriter(out / "data", "part-00000", pipeline.output_schema, 1, out, fmt=fmt).close(keep_empty=True)
        layout.mirror.publish(*(out / shard["path"] for shard in empty))
        shards = [FileRecord(**shard) for shard in empty]
    everything = [result for by_task in results for _, result in sorted(by_task.items())]
    stats = merged_stats(pipeline, results, resolved)
    inputs = write_inputs(plan, layout)
    if inputs.rows == 0 and inputs.passed_over:  # e.g. WAT files, or a selection that matches nothing
        raise layout.input_failure(
            f"input.paths: no record was selected; passed over: {passed_over_summary(inputs.passed_over)}"
        )
    if inputs.rows == 0:  # nothing useful can come of it: never reported as a success
        raise layout.input_failure(f"input.paths: no row was read from the {inputs.files} input file(s): empty?")
    rows_out = sum(s.rows for s in shards)
    seconds = time.time() - started
    manifest = Manifest(
        kind=pipeline.kind,
        schema=schema_to_json(pipeline.output_schema),
        rows=rows_out,
        rows_in=inputs.rows,
        dropped=sum(s.dropped_total for s in stats.values()),
        quarantined=inputs.quarantined,
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
                redacted(stage.options()),
                stats[stage.name],
                dataclasses.asdict(stage.resources),
            )
            for stage in pipeline.stages
        ],
        inputs=inputs,
        tasks=len(plan.tasks),
        workers=n_workers,
        config=redacted(resolved_dict(plan.cfg)),
        fingerprint=plan.fingerprint,
        version=code_version(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        timings=Timings(
            seconds=round(seconds, 3),
            passes=[
                {"pass": p.index, "stages": p.describe(), "seconds": round(s, 3)}
                for p, s in zip(pipeline.passes, pass_seconds)
            ],
            rows_per_second=round(inputs.rows / seconds, 1) if seconds else None,
            input_mb_per_second=round(inputs.bytes / seconds / 1e6, 3) if seconds else None,
        ),
        format=plan.cfg.output.format,
        arrow_schema=encode_schema(pipeline.output_schema),
    )
    check_listed_files(layout, manifest)
    problems = manifest.accounting_problems()
    if problems:  # a stage (or the engine) lost or invented rows: a bug, never a dataset
        raise RuntimeError("accounting broken: " + "; ".join(problems))
    if plan.cfg.output.report:
        write_report_safely(layout, manifest)
    manifest.write(layout.location)  # last: a folder with a manifest is a complete dataset
    if not plan.cfg.output.keep_work:
        layout.mirror.remove(layout.work, recursive=True)
    return manifest


def write_inputs(plan: Plan, layout: Layout) -> Inputs:
    """Write `inputs.arrow` (one row per input file, each archive's members not read after it, then
    the files skipped in folders) and sum it up. The
    per-file records come from the first pass's task markers, one task at a time, so the driver's
    memory does not grow with the number of input files."""
    totals = {"files": 0, "rows": 0, "quarantined": 0, "bytes": 0, "skipped": len(plan.skipped)}
    passed_over: dict[str, int] = {}

    def skipped(found: list[dict]) -> pa.RecordBatch:
        return pa.RecordBatch.from_pylist([{"path": f["path"], "skipped": f["reason"]} for f in found], INPUTS_SCHEMA)

    def batches() -> Iterator[pa.RecordBatch]:
        for task in range(len(plan.tasks)):
            files = json.loads(layout.mirror.read_text(layout.marker(0, task)))["files"]
            for key in ("rows", "quarantined", "bytes"):
                totals[key] += sum(f[key] for f in files)
            totals["files"] += sum(1 for f in files if not f.get("start"))  # a split file counts once
            for file in files:
                for reason, count in file.get("passed_over", {}).items():
                    passed_over[reason] = passed_over.get(reason, 0) + count
            if files:
                yield pa.RecordBatch.from_pylist(files, schema=INPUTS_SCHEMA)
            members = [member for file in files for member in file.get("skipped_members", [])]
            if members:  # archive members not read, after their archive
                totals["skipped"] += len(members)
                yield skipped(members)
        if plan.skipped:
            yield skipped(plan.skipped)

    table = write_listing(layout.out / INPUTS_FILE, INPUTS_SCHEMA, batches(), layout.out)
    layout.mirror.publish(layout.out / INPUTS_FILE)
    return Inputs(table=FileRecord(**table), passed_over=passed_over, **totals)


def write_report_safely(layout: Layout, manifest: Manifest) -> None:
    from curate.report import write_report

    try:
        write_report(layout.location, manifest)
    except Exception:  # the data is complete; a report failure must not lose it (a rerun tries again)
        logger.warning("report.html not written", exc_info=True)


def passed_over_summary(passed_over: dict[str, int]) -> str:
    """Records passed over on purpose, by reason (largest first)."""
    return ", ".join(f"{reason} {count}" for reason, count in sorted(passed_over.items(), key=lambda item: -item[1]))


def check_listed_files(layout: Layout, manifest: Manifest) -> None:
    """Every shard the manifest lists exists with its recorded size (a stat each: cheap insurance)."""
    for shard in manifest.shards + manifest.rejects + manifest.quarantine:
        path = fs.join(layout.location, shard.path)
        if not fs.is_file(path) or fs.stat(path).size != shard.bytes:
            raise RuntimeError(f"{path}: listed in the manifest but missing or of another size")
