"""The driver: run a plan's passes on an executor, resolve global stages between them, finalize."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console

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
from curate.logs import log_to_file
from curate.manifest import Manifest
from curate.pipeline import Pass
from curate.progress import Progress, print_summary
from curate.runfolder import write_json_atomic
from curate.stages.base import GlobalStage
from curate.stats import StageStats

logger = logging.getLogger(__name__)


def run(cfg: DictConfig, console: Console | None = None) -> Manifest:
    """Run a curation recipe; return its manifest. A full disk, a read-only folder or a missing
    permission is an OutputError: one line naming the path and the cause. A run whose memory
    estimate does not fit this machine stops first (a ConfigError, one line)."""
    plan = make_plan(cfg)
    found = estimate(plan)
    check(plan, found)
    layout = Layout(Path(cfg.output.dir))
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
            manifest = Manifest.read(layout.out)
            finish_interrupted_finalize(cfg, layout, manifest)
            print_summary(manifest, console, note="already complete; nothing to do")
            return manifest
        with log_to_file(layout.logs / "run.log"):
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
    print_summary(manifest, console)
    return manifest


def finish_interrupted_finalize(cfg: DictConfig, layout: Layout, manifest: Manifest) -> None:
    """What `finalize` does after writing the manifest, if a kill stopped it there: the report
    (if it is missing) and removing the work folder."""
    if cfg.output.report and not (layout.out / "report.html").is_file():
        write_report_safely(layout.out, manifest)
    if not cfg.output.keep_work and layout.work.exists():
        shutil.rmtree(layout.work, ignore_errors=True)


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
    )
    started = time.time()
    results: list[dict[int, TaskResult]] = []
    resolved: dict[str, StageStats] = {}
    pass_seconds: list[float] = []
    progress = Progress(enabled=cfg.executor.progress, console=console)
    try:
        with make_executor(cfg, n_workers, init_worker, state, teardown_worker) as executor, progress:
            for passage in plan.pipeline.passes:
                pass_start = time.time()
                done = run_pass(plan, layout, passage, results, executor, progress)
                results.append(done)
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
    for task in range(len(plan.tasks)):
        marker = layout.marker(passage.index, task)
        if marker.is_file():
            done[task] = TaskResult.from_json(json.loads(marker.read_text())).without_files()
            continue
        if passage.index == 0:
            inputs: list = plan.tasks[task]
        else:
            inputs = results[-1][task].shards
        todo.append(TaskSpec(passage.index, task, inputs))
    label = f"pass {passage.index + 1}/{len(plan.pipeline.passes)}: {passage.describe()}"
    logger.info("%s: %d task(s) to run, %d done before", label, len(todo), len(done))
    bar = progress.start(label, total=len(plan.tasks), completed=len(done))
    for result in executor.map(run_task, todo, passage.resources()):
        done[result.task] = result.without_files()
        progress.advance(bar, rows=result.rows_in)
    return done


def resolve(
    state: WorkerState, stage: GlobalStage, done: dict[int, TaskResult], executor: Executor, progress: Progress
) -> StageStats:
    """Resolve a global stage on the driver (once: its marker holds the statistics it reported);
    its partitioned steps run as tasks on the executor (`run_partitions`)."""
    marker = state.layout.resolve_marker(stage.name)
    if marker.is_file():
        return StageStats.from_json(json.loads(marker.read_text()))
    scanned = [(task, result) for task, result in sorted(done.items()) if result.scan_file]
    scan_files = [Path(result.scan_file) for _, result in scanned if result.scan_file]
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
        spec = PartitionSpec(stage.name, step, 0, request, list(map(str, scan_files)), ctx.scan_tasks, shuffle_files)
        results = run_partitions(state, stage, spec, executor, progress)
        stage.bind_stats(stats)  # a one-worker executor resolves partitions with this very stage object
        for result in results:
            stats.merge(result.stats)
        waited += time.perf_counter() - started
        return [result.result for result in results]

    ctx.runner = runner
    start = time.perf_counter()
    stage.resolve(ctx)
    stats.seconds += time.perf_counter() - start - waited
    write_json_atomic(marker, stats.to_json())
    logger.info("stage %s resolved in %.2f s over %d scan file(s)", stage.name, stats.seconds, len(scan_files))
    return stats


def run_partitions(
    state: WorkerState, stage: GlobalStage, spec: PartitionSpec, executor: Executor, progress: Progress
) -> list[PartitionResult]:
    """Every partition of one step of `stage`'s resolve, as tasks on the executor; a partition whose
    marker holds the same request is not run again (a rerun after a kill)."""
    done: dict[int, PartitionResult] = {}
    todo: list[PartitionSpec] = []
    for partition in range(state.partitions):
        marker = state.layout.partition_marker(stage.name, spec.step, partition)
        if marker.is_file():
            result = PartitionResult.from_json(json.loads(marker.read_text()))
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
