"""The driver: run a plan's passes on an executor, resolve global stages between them, finalize."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console

from curate import fs
from curate.config import workers
from curate.engine.estimate import Estimate, check, estimate
from curate.engine.finalize import finalize, write_report_safely
from curate.engine.folder import CurationFolder, Layout
from curate.engine.plan import Plan, make_plan, mb
from curate.engine.task import (
    PartitionResult,
    PartitionSpec,
    TaskFailed,
    TaskResult,
    TaskSpec,
    WorkerState,
    init_worker,
    run_partition,
    run_task,
    teardown_worker,
)
from curate.errors import ThresherError, environment_error
from curate.executors import Executor, make_executor
from curate.executors.counters import LiveCounters
from curate.logs import log_to_file
from curate.manifest import Manifest
from curate.pipeline import Pass
from curate.progress import Progress, print_summary
from curate.quarantine import quarantine_reasons
from curate.runfolder import write_json_atomic
from curate.stages.base import GlobalStage
from curate.stats import StageStats

logger = logging.getLogger(__name__)


def run(cfg: DictConfig, console: Console | None = None) -> Manifest:
    """Run a curation recipe; return its manifest. A full disk, a read-only folder or a missing
    permission is an OutputError: one line naming the path and the cause. A run whose memory
    estimate does not fit this machine stops first (a ConfigError, one line)."""
    fs.check_writable(cfg.output.dir, "output.dir")
    plan = make_plan(cfg)
    found = estimate(plan)
    check(plan, found)
    layout = Layout.of(str(cfg.output.dir))
    try:
        return run_plan(plan, layout, console, found)
    except OSError as error:
        user_error = environment_error(error, layout.out)
        if user_error is None:
            raise
        raise user_error from None


def show_plan(cfg: DictConfig) -> Estimate:
    """`thresher curate --plan`: print the plan and its memory estimate; read no more than a sample
    of the input, write nothing."""
    plan = make_plan(cfg)
    found = estimate(plan)
    print("\n".join(found.lines()))
    problem = found.problem()
    if problem:
        print(f"warning: {problem}")
    return found


def run_plan(plan: Plan, layout: Layout, console: Console | None, found: Estimate) -> Manifest:
    cfg = plan.cfg
    with CurationFolder(layout, plan.files) as folder:
        status = folder.open(plan.fingerprint, plan.config, overwrite=cfg.output.overwrite)
        folder.remove_temporary()
        if status == "complete":
            manifest = Manifest.read(layout.location)
            finish_interrupted_finalize(cfg, layout, manifest)
            print_summary(manifest, console, note="already complete; nothing to do", folder=layout.location)
            return manifest
        if layout.mirror.exists(layout.logs / "run.log"):  # a resumed run's log goes on after the earlier one's
            layout.mirror.fetch(layout.logs / "run.log")
        with log_to_file(layout.logs / "run.log"), publishing(layout, layout.logs / "run.log"):
            logger.info("%s run of %d task(s), fingerprint %s", status, len(plan.tasks), plan.fingerprint)
            for line in found.lines():
                logger.info("%s", line)
            try:
                manifest = execute(plan, layout, console)
            except ThresherError as error:  # the user's to fix: one line, in the log too
                logger.error("%s", error)
                raise
            except OSError as error:
                user_error = environment_error(error, layout.out)
                if user_error is None:
                    logger.exception("run failed")
                else:
                    logger.error("%s", user_error)
                raise
            except TaskFailed as failure:
                logger.error("%s\n%s", failure, failure.details)
                raise
            except Exception:
                logger.exception("run failed")
                raise
    print_summary(manifest, console, folder=layout.location)
    return manifest


@contextmanager
def publishing(layout: Layout, path: Path) -> Iterator[None]:
    """Publish `path` (the run's log) when the block ends, however it ends."""
    try:
        yield
    finally:
        if path.is_file():
            layout.mirror.publish(path)


def finish_interrupted_finalize(cfg: DictConfig, layout: Layout, manifest: Manifest) -> None:
    """What `finalize` does after writing the manifest, if a kill stopped it there: the report
    (if it is missing) and removing the work folder."""
    if cfg.output.report and not layout.mirror.exists(layout.out / "report.html"):
        write_report_safely(layout, manifest)
    if not cfg.output.keep_work:
        layout.mirror.remove(layout.work, recursive=True)


def execute(plan: Plan, layout: Layout, console: Console | None) -> Manifest:
    cfg = plan.cfg
    n_workers = min(workers(cfg), max(1, len(plan.tasks)))
    state = WorkerState(
        plan.pipeline,
        layout,
        plan.mapper,
        plan.options,
        mb(cfg.output.shard_mb),
        n_workers,
        cfg.seed,
        len(plan.tasks),
        plan.partitions,
        output_format=cfg.output.format,
    )
    started = time.time()
    results: list[dict[int, TaskResult]] = []
    resolved: dict[str, StageStats] = {}
    pass_seconds: list[float] = []
    # what the local executor's workers read, live: two slots per worker (a replaced worker needs a new one)
    counters = LiveCounters(2 * n_workers + 1) if cfg.executor.name == "local" else None
    progress = Progress(cfg.executor.progress, console, live=counters.totals if counters else None)
    try:
        with make_executor(cfg, n_workers, init_worker, state, teardown_worker, counters) as executor, progress:
            for passage in plan.pipeline.passes:
                pass_start = time.time()
                done = run_pass(plan, layout, passage, results, executor, progress)
                results.append(done)
                if passage.index == 0:
                    check_quarantine_share(plan, layout, done)
                if passage.scan is not None:
                    resolved[passage.scan.name] = resolve(state, passage.scan, done, executor, progress)
                pass_seconds.append(time.time() - pass_start)
    finally:
        state.teardown()
    return finalize(plan, layout, results, resolved, started, pass_seconds, n_workers)


def run_pass(
    plan: Plan,
    layout: Layout,
    passage: Pass,
    results: list[dict[int, TaskResult]],
    executor: Executor,
    progress: Progress,
) -> dict[int, TaskResult]:
    layout.pass_dir(passage.index).mkdir(parents=True, exist_ok=True)
    done: dict[int, TaskResult] = {}
    todo: list[TaskSpec] = []
    finished = set(layout.mirror.glob(layout.pass_dir(passage.index), "task-*.json"))
    for task in range(len(plan.tasks)):
        marker = layout.marker(passage.index, task)
        if marker in finished:
            done[task] = TaskResult.from_json(json.loads(layout.mirror.read_text(marker))).without_files()
            continue
        if passage.index == 0:
            inputs: list = plan.tasks[task]
        else:
            inputs = results[-1][task].shards
        todo.append(TaskSpec(passage.index, task, inputs))
    label = f"pass {passage.index + 1}/{len(plan.pipeline.passes)}: {passage.describe()}"
    logger.info("%s: %d task(s) to run, %d done before", label, len(todo), len(done))
    if passage.index == 0:  # the input's bytes, as read from disk
        sizes = [sum(file.size for file in files) for files in plan.tasks]
        bar = progress.start(
            label, len(plan.tasks), len(done), total_bytes=sum(sizes), done_bytes=sum(sizes[t] for t in done)
        )
    else:  # the previous pass's rows
        rows = [sum(shard["rows"] for shard in results[-1][task].shards) for task in range(len(plan.tasks))]
        bar = progress.start(
            label, len(plan.tasks), len(done), total_rows=sum(rows), done_rows=sum(rows[t] for t in done)
        )
    for result in executor.map(run_task, todo, passage.resources()):
        done[result.task] = result.without_files()
        progress.advance(bar, rows=result.rows_in)
    progress.finish(bar)
    return done


def check_quarantine_share(plan: Plan, layout: Layout, done: dict[int, TaskResult]) -> None:
    """Stop the run (InputError: the share, then the top reasons, each with an example row) when
    more than `input.max_quarantine_frac` of the rows read were quarantined: the input options do
    not fit the data (a wrong `input.text_field`, converter or SMILES column). What was written
    stays for inspection and no manifest is written; the folder is marked failed, so a rerun with
    other options replaces it (`CurationFolder.has_progress`), and the same command fails again at
    once (a larger `input.max_quarantine_frac` goes on from here: it is not part of the fingerprint)."""
    quarantined = sum(shard["rows"] for result in done.values() for shard in result.quarantine)
    read = quarantined + sum(result.rows_in for result in done.values())
    limit = float(plan.cfg.input.max_quarantine_frac)
    if not read or quarantined <= limit * read:
        layout.mirror.remove(layout.failed)
        return
    paths = [fs.join(layout.location, s["path"]) for _, result in sorted(done.items()) for s in result.quarantine]
    reasons = "\n".join(f"  {reason.line()}" for reason in quarantine_reasons(paths))
    message = (
        f"input: {quarantined:,} of {read:,} rows read ({quarantined / read:.1%}) were quarantined, more than "
        f"input.max_quarantine_frac={limit:g}: do the input options fit the data? The rows are in "
        f"{fs.join(layout.location, 'quarantine')} (thresher inspect {layout.location}); rerun with other input options, or with "
        f"input.max_quarantine_frac=1 to keep going. Top reasons:\n{reasons}"
    )
    raise layout.input_failure(message)


def resolve(
    state: WorkerState, stage: GlobalStage, done: dict[int, TaskResult], executor: Executor, progress: Progress
) -> StageStats:
    """Resolve a global stage on the driver (once: its marker holds the statistics it reported);
    its partitioned steps run as tasks on the executor (`run_partitions`)."""
    layout = state.layout
    marker = layout.resolve_marker(stage.name)
    if layout.mirror.exists(marker):
        return StageStats.from_json(json.loads(layout.mirror.read_text(marker)))
    scanned = [(task, result.scan_file) for task, result in sorted(done.items()) if result.scan_file]
    scan_files = [state.fetch(layout.out / scan_file) for _, scan_file in scanned]
    stats = StageStats()
    stage.bind_stats(stats)
    state.prepare(stage)
    state.layout.stage_dir(stage.name).mkdir(parents=True, exist_ok=True)  # the stage's work_dir, even with no scan
    ctx = state.global_context(stage, scan_files, [task for task, _ in scanned])
    shuffle_files = [result.shuffle_file for _, result in sorted(done.items()) if result.shuffle_file]
    waited = 0.0  # on partitions, whose own seconds are counted in their statistics

    def runner(step: str, request: Any) -> list[Any]:
        nonlocal waited
        started = time.perf_counter()
        # Paths relative to the output folder: on object storage each machine has its own staging.
        spec = PartitionSpec(stage.name, step, 0, request, [f for _, f in scanned], ctx.scan_tasks, shuffle_files)
        results = run_partitions(state, stage, spec, executor, progress)
        state.fetch_tree(layout.partitions_dir(stage.name) / step)  # what the partitions wrote
        stage.bind_stats(stats)  # a one-worker executor resolves partitions with this very stage object
        for result in results:
            stats.merge(result.stats)
        waited += time.perf_counter() - started
        return [result.result for result in results]

    ctx.runner = runner
    start = time.perf_counter()
    stage.resolve(ctx)
    stats.seconds += time.perf_counter() - start - waited
    state.publish_stage_files(stage)  # the decisions, for the workers to fetch
    write_json_atomic(marker, stats.to_json())
    layout.mirror.publish(marker)
    logger.info("stage %s resolved in %.2f s over %d scan file(s)", stage.name, stats.seconds, len(scan_files))
    return stats


def run_partitions(
    state: WorkerState, stage: GlobalStage, spec: PartitionSpec, executor: Executor, progress: Progress
) -> list[PartitionResult]:
    """Every partition of one step of `stage`'s resolve, as tasks on the executor; a partition whose
    marker holds the same request is not run again (a rerun after a kill)."""
    layout = state.layout
    done: dict[int, PartitionResult] = {}
    todo: list[PartitionSpec] = []
    # One listing of the step's markers (on object storage, not a request per partition), as `run_pass`.
    finished = set(layout.mirror.glob(layout.partitions_dir(stage.name) / spec.step, "p*.json"))
    for partition in range(state.partitions):
        marker = layout.partition_marker(stage.name, spec.step, partition)
        if marker in finished:
            result = PartitionResult.from_json(json.loads(layout.mirror.read_text(marker)))
            if result.request == json.loads(json.dumps(spec.request)):
                done[partition] = result
                continue
        todo.append(dataclasses.replace(spec, partition=partition))
    label = f"resolve {stage.name} ({spec.step}): {state.partitions} partition(s)"
    logger.info("%s: %d to run, %d done before", label, len(todo), len(done))
    bar = progress.start(label, total=state.partitions, completed=len(done))
    for result in executor.map(run_partition, todo, stage.resources):
        done[result.partition] = result
        progress.advance(bar, rows=0)
    return [done[partition] for partition in range(state.partitions)]
