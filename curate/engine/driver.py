"""The driver: run a plan's passes on an executor, resolve global stages between them, finalize."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

from curate import fs
from curate.config import workers
from curate.engine.finalize import finalize, write_report_safely
from curate.engine.folder import CurationFolder, Layout
from curate.engine.plan import Plan, make_plan, mb
from curate.engine.task import TaskFailed, TaskResult, TaskSpec, WorkerState, init_worker, run_task, teardown_worker
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
    permission is an OutputError: one line naming the path and the cause."""
    fs.check_writable(cfg.output.dir, "output.dir")
    plan = make_plan(cfg)
    layout = Layout.of(str(cfg.output.dir))
    try:
        return run_plan(plan, layout, console)
    except OSError as error:
        user_error = environment_error(error, layout.out)
        if user_error is None:
            raise
        raise user_error from None


def run_plan(plan: Plan, layout: Layout, console: Console | None) -> Manifest:
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
                    resolved[passage.scan.name] = resolve(state, passage.scan, done)
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


def resolve(state: WorkerState, stage: GlobalStage, done: dict[int, TaskResult]) -> StageStats:
    """Resolve a global stage on the driver (once: its marker holds the statistics it reported)."""
    layout = state.layout
    marker = layout.resolve_marker(stage.name)
    if layout.mirror.exists(marker):
        return StageStats.from_json(json.loads(layout.mirror.read_text(marker)))
    scan_files = [layout.mirror.fetch(layout.out / r.scan_file) for _, r in sorted(done.items()) if r.scan_file]
    stats = StageStats()
    stage.bind_stats(stats)
    state.prepare(stage)
    state.layout.stage_dir(stage.name).mkdir(parents=True, exist_ok=True)  # the stage's work_dir, even with no scan
    start = time.perf_counter()
    stage.resolve(state.global_context(stage, scan_files))
    stats.seconds += time.perf_counter() - start
    layout.mirror.publish_tree(layout.stage_dir(stage.name))  # the decisions, for the workers to fetch
    layout.mirror.publish_tree(layout.keep_dir(stage))
    write_json_atomic(marker, stats.to_json())
    layout.mirror.publish(marker)
    logger.info("stage %s resolved in %.2f s over %d scan file(s)", stage.name, stats.seconds, len(scan_files))
    return stats
