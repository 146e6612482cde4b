"""Tasks: one task of one pass streams its rows through the pass's stages, in a worker process.

A worker holds the run's plan for its whole life (`WorkerState`, sent once when the pool
starts), sets each stage up once before its first use and tears it down when the process ends.
`run_task` is the entry point the executors call; a task's result is written last, as its
marker, so a task without one is redone from scratch on rerun. `run_partition` is the same for one
partition of a global stage's partitioned resolve (`GlobalStage.resolve_partition`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from curate import fs
from curate.arrow_io import StreamFile, concat_batches, iter_batches, tmp_path
from curate.engine.folder import Layout
from curate.errors import ThresherError, environment_error
from curate.executors import counters as live_progress
from curate.logs import log_to_file
from curate.mapping import RecordMapper
from curate.partitions import write_partitioned
from curate.pipeline import Pass, Pipeline
from curate.readers import FileStats, Quarantine, ReadOptions, read_file
from curate.runfolder import hold_worker_lock, write_json_atomic
from curate.schema import QUARANTINE
from curate.stages.base import (
    GlobalContext,
    GlobalStage,
    PartitionContext,
    RowResult,
    RowStage,
    Stage,
    positions_for,
)
from curate.stats import StageStats
from curate.writers import ShardWriter

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class TaskSpec:
    pass_index: int
    task: int
    inputs: list  # pass 0: InputFile; later passes: the previous pass's shards ({path, rows, bytes, sha256})


@dataclass
class TaskResult:
    """What a finished task wrote and counted (its marker file holds the same, as JSON)."""

    pass_index: int
    task: int
    rows_in: int
    seconds: float
    stages: dict[str, StageStats]
    shards: list[dict]
    rejects: dict[str, list[dict]]
    quarantine: list[dict]
    files: list[dict]
    scan_file: str | None
    shuffle_file: str | None = None  # what the task routed to the partitions of its scanning stage

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = {name: stats.to_json() for name, stats in self.stages.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskResult:
        data = dict(data, stages={name: StageStats.from_json(s) for name, s in data["stages"].items()})
        return cls(**data)

    def without_files(self) -> TaskResult:
        """This result without its per-file records (they stay in its marker): what the driver holds,
        so its memory does not grow with the number of input files."""
        return dataclasses.replace(self, files=[])


@dataclass
class WorkerState:
    """What every worker process holds for the whole run."""

    pipeline: Pipeline
    layout: Layout
    mapper: RecordMapper
    options: ReadOptions
    shard_bytes: int
    workers: int
    seed: int
    tasks: int
    partitions: int = 1  # of a partitioned resolve
    output_format: str = "arrow"  # the data shards' (the last pass's); everything else is an Arrow stream
    ready: list[Stage] = field(default_factory=list)  # stages set up in this process
    loaded: set[str] = field(default_factory=set)  # global stages whose decisions are loaded
    # Object storage: the files of stage folders this process fetched or already published (a
    # global stage's `apply` may add files there, e.g. dedup's sample clusters: those are published)
    known: set[tuple[Path, int]] = field(default_factory=set)

    def prepare(self, stage: Stage) -> None:
        """Set `stage` up once in this process."""
        if not any(ready is stage for ready in self.ready):  # identity: equal options are not the same stage
            stage.setup()
            self.ready.append(stage)

    def load(self, stage: GlobalStage) -> None:
        """Load a global stage's decisions once in this process (before its `apply`); on object
        storage, its work and keep folders are fetched to this machine first."""
        self.prepare(stage)
        if stage.name not in self.loaded:
            for folder in self.stage_folders(stage):
                self.fetch_tree(folder)
            stage.load(self.global_context(stage))
            self.loaded.add(stage.name)

    def fetch(self, path: Path) -> Path:
        """A file of the output folder, on this machine (object storage: downloaded, once)."""
        self.layout.mirror.fetch(path)
        if self.layout.remote:
            self.known.add((path, path.stat().st_mtime_ns))
        return path

    def fetch_tree(self, folder: Path) -> None:
        """A folder of the output folder, on this machine, its files known as already published."""
        self.layout.mirror.fetch_tree(folder)
        if self.layout.remote:
            self.known.update(files_in(folder))

    def stage_folders(self, stage: GlobalStage) -> tuple[Path, Path]:
        return self.layout.stage_dir(stage.name), self.layout.keep_dir(stage)

    def publish_stage_files(self, stage: GlobalStage) -> None:
        """On object storage: publish what this process added to a global stage's folders."""
        if not self.layout.remote:
            return
        for folder in self.stage_folders(stage):
            for entry in sorted(files_in(folder) - self.known):
                self.layout.mirror.publish(entry[0])
                self.known.add(entry)

    def release(self) -> None:
        """At the end of a worker process (or of a Ray pass): tear the stages down, and remove this
        process's staging folder (an output on object storage: everything it wrote is published)."""
        self.teardown()
        if self.layout.remote:
            fs.remove(self.layout.out, recursive=True)

    def teardown(self) -> None:
        """Tear down every stage this process set up, last first."""
        while self.ready:
            stage = self.ready.pop()
            try:
                stage.teardown()
            except Exception:  # one stage failing to clean up must not keep the others from it
                logger.exception("stage %s: teardown failed", stage.name)

    def global_context(
        self, stage: GlobalStage, scan_files: list[Path] | None = None, scan_tasks: list[int] | None = None
    ) -> GlobalContext:
        return GlobalContext(
            self.layout.stage_dir(stage.name),
            scan_files or [],
            self.workers,
            self.seed,
            self.layout.keep_dir(stage),
            self.tasks,
            scan_tasks or [],
            self.partitions,
        )

    def global_stage(self, name: str) -> GlobalStage:
        for stage in self.pipeline.stages:
            if stage.name == name and isinstance(stage, GlobalStage):
                return stage
        raise KeyError(name)


_WORKER: WorkerState | None = None


def init_worker(state: WorkerState) -> None:
    """Pool initializer: hold the run's state; tear its stages down when the process exits."""
    import multiprocessing
    from multiprocessing import util

    global _WORKER
    state.layout = state.layout.on_this_machine()  # an output on object storage: this machine's staging
    state.layout.out.mkdir(parents=True, exist_ok=True)
    _WORKER = state
    if multiprocessing.parent_process() is not None:  # a process of the local pool (not inline, not Ray)
        hold_worker_lock(state.layout.out)  # a rerun waits until this process is gone
    util.Finalize(state, state.release, exitpriority=10)


def teardown_worker() -> None:
    """Tear down the stages this worker process set up (Ray: when a pass's actors are released)."""
    if _WORKER is not None:
        _WORKER.release()


def worker() -> WorkerState:
    if _WORKER is None:
        raise RuntimeError("run_task called in a process that init_worker did not initialise")
    return _WORKER


def files_in(folder: Path) -> set[tuple[Path, int]]:
    """The finished files under `folder`, with their modification times."""
    if not folder.is_dir():
        return set()
    return {(path, path.stat().st_mtime_ns) for path in folder.rglob("*") if path.is_file() and path.suffix != ".tmp"}


def text_bytes(batch: pa.RecordBatch) -> int:
    index = batch.schema.get_field_index("text")
    if index < 0 or batch.num_rows == 0:
        return 0
    return int(pc.sum(pc.binary_length(batch.column(index))).as_py() or 0)


def coalesce(batches: Iterator[pa.RecordBatch], max_rows: int, max_bytes: int) -> Iterator[pa.RecordBatch]:
    """The same rows in the same order, small batches gathered up to about `max_rows` / `max_bytes`."""
    pending: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in batches:
        pending.append(batch)
        rows, size = rows + batch.num_rows, size + batch.nbytes
        if rows >= max_rows or size >= max_bytes:
            yield concat_batches(pending)
            pending, rows, size = [], 0, 0
    if pending:
        yield concat_batches(pending)


class TaskRun:
    """One task of one pass: stream its rows through the pass's stages and write what comes out."""

    def __init__(self, state: WorkerState, spec: TaskSpec):
        self.state, self.spec = state, spec
        self.passage: Pass = state.pipeline.passes[spec.pass_index]
        self.last = spec.pass_index == len(state.pipeline.passes) - 1
        layout, prefix, out = state.layout, f"part-{spec.task:05d}", state.layout.out
        self.prefix = prefix
        data_format = state.output_format if self.last else "arrow"
        self.data = self.writer(layout.data_dir(spec.pass_index, self.last), self.passage.schema_out, data_format)
        self.rejects: dict[str, ShardWriter] = {}
        self.quarantine = Quarantine(fail=state.options.on_error == "fail")
        self.quarantine_writer = self.writer(out / "quarantine", QUARANTINE)
        self.scan_writer: StreamFile | None = None
        scan = self.passage.scan
        self.scan_path = layout.scan_file(scan.name, spec.task) if scan else None
        self.shuffle_path = layout.shuffle_file(scan.name, spec.task) if scan else None
        self.shuffled: list[pa.Table] = []  # rows routed to partitions, held until the task ends
        self.stats = {stage.name: StageStats() for stage in self.stages}
        self.files: list[FileStats] = []
        self.rows_in = 0
        self.apply_offset = 0
        self.scan_offset = 0

    def writer(self, directory: Path, schema: pa.Schema, fmt: str = "arrow") -> ShardWriter:
        options = self.state.options
        return ShardWriter(
            directory,
            self.prefix,
            schema,
            self.state.shard_bytes,
            self.state.layout.out,
            options.batch_rows,
            options.batch_bytes,
            fmt,
        )

    @property
    def stages(self) -> list[Stage]:
        """Every stage this task runs: the applied global stage, the row stages, the scanning one."""
        return self.passage.stages + ([self.passage.scan] if self.passage.scan else [])

    def clean_previous_attempt(self) -> None:
        """Remove anything an interrupted earlier attempt at this task left behind."""
        out = self.state.layout.out
        folders = [self.data.directory] + [out / "rejects" / s.name for s in self.passage.stages]
        if self.spec.pass_index == 0:  # only the first pass reads input, so only it writes quarantine
            folders.append(out / "quarantine")
        mirror = self.state.layout.mirror
        for folder in folders:
            mirror.remove_matching(folder, f"{self.prefix}-*")
        for path in (self.scan_path, self.shuffle_path):
            if path:
                for leftover in (path, tmp_path(path)):
                    mirror.remove(leftover)

    def source(self) -> Iterator[pa.RecordBatch]:
        """The task's rows: its input files read (small files' rows gathered into batches of the
        target size), or the previous pass's shards, each checked against its sha256 first. What
        is read is reported batch by batch to the live progress (`curate.executors.counters`)."""
        if self.spec.pass_index == 0:
            options = self.state.options
            yield from coalesce(self.read_inputs(), options.batch_rows, options.batch_bytes)
        else:
            mirror = self.state.layout.mirror
            for shard in self.spec.inputs:
                path = self.state.layout.out / shard["path"]
                remote = mirror.remote is not None  # fetched to this machine, checked as it arrives
                local = mirror.fetch(path, sha256=shard["sha256"]) if remote else path
                for batch in iter_batches(local, sha256=None if remote else shard["sha256"]):
                    live_progress.report(batch.num_rows, 0)
                    yield batch
                live_progress.report(0, shard["bytes"])
                if remote:
                    path.unlink()  # a worker's disk holds one shard of the previous pass at a time

    def read_inputs(self) -> Iterator[pa.RecordBatch]:
        reported = FileStats("")  # rows and bytes of the task's files reported so far
        for file in self.spec.inputs:
            stats = FileStats(fs.display(file.path), *file.span)
            self.files.append(stats)
            before = (reported.rows, reported.bytes)
            for batch in read_file(file, self.state.mapper, self.state.options, self.quarantine, stats):
                self.write_quarantine()
                self.report_read(reported, before, stats)
                yield batch
            self.write_quarantine()
            self.report_read(reported, before, stats)

    @staticmethod
    def report_read(reported: FileStats, before: tuple[int, int], current: FileStats) -> None:
        """Report the rows (good and bad) and input bytes read since the last report."""
        rows, nbytes = before[0] + current.rows, before[1] + current.bytes
        live_progress.report(rows - reported.rows, nbytes - reported.bytes)
        reported.rows, reported.bytes = rows, nbytes

    def write_quarantine(self) -> None:
        batch = self.quarantine.drain()
        if batch is not None:
            self.quarantine_writer.write(batch)

    def record(
        self, stage: Stage, batch_in: pa.RecordBatch | None, result: RowResult, seconds: float, generated: bool = False
    ) -> None:
        stats = self.stats[stage.name]
        if batch_in is not None:
            stats.rows_in += batch_in.num_rows
            stats.bytes_in += text_bytes(batch_in)
        if generated:
            stats.generated += result.kept.num_rows + (result.dropped.num_rows if result.dropped is not None else 0)
        stats.rows_out += result.kept.num_rows
        stats.bytes_out += text_bytes(result.kept)
        stats.seconds += seconds
        dropped = result.dropped
        if dropped is not None and dropped.num_rows:
            for reason, count in Counter(dropped.column("drop_reason").to_pylist()).items():
                stats.drop(str(reason), count)
            dropped = dropped.append_column("drop_stage", pa.array([stage.name] * dropped.num_rows, pa.string()))
            writer = self.rejects.get(stage.name)
            if writer is None:
                writer = self.rejects[stage.name] = self.writer(
                    self.state.layout.out / "rejects" / stage.name, self.state.pipeline.reject_schemas[stage.name]
                )
            writer.write(dropped)

    def run_rows(self, batch: pa.RecordBatch, stages: list[RowStage]) -> None:
        for stage in stages:
            start = time.perf_counter()
            result = stage.process(batch)
            self.record(stage, batch, result, time.perf_counter() - start)
            batch = result.kept
            if batch.num_rows == 0:
                return
        self.emit(batch)

    def emit(self, batch: pa.RecordBatch) -> None:
        scan = self.passage.scan
        if scan is not None:
            start = time.perf_counter()
            positions = positions_for(self.spec.task, self.scan_offset, batch.num_rows)
            self.scan_offset += batch.num_rows
            state = scan.scan(batch, positions)
            if state is not None and state.num_rows:
                if self.scan_writer is None:
                    assert self.scan_path is not None
                    self.scan_writer = StreamFile(self.scan_path, state.schema)
                self.scan_writer.write(state)
                routed = scan.shuffle(state)
                if routed is not None and routed.num_rows:
                    self.shuffled.append(routed if isinstance(routed, pa.Table) else pa.Table.from_batches([routed]))
            stats = self.stats[scan.name]
            stats.seconds += time.perf_counter() - start
            if scan.consumes_rows:  # its rows end here: counted as its input and consumed, written nowhere
                stats.rows_in += batch.num_rows
                stats.consumed += batch.num_rows
                stats.bytes_in += text_bytes(batch)
                return
        self.data.write(batch)

    def run(self) -> TaskResult:
        if self.state.layout.remote:
            logger.info(
                "pass %d task %d: staging folder %s", self.spec.pass_index, self.spec.task, self.state.layout.out
            )
        self.clean_previous_attempt()
        passage, state = self.passage, self.state
        for stage in self.stages:
            stage.bind_stats(self.stats[stage.name])  # first: what `setup` reports is this task's
            state.prepare(stage)
        if passage.apply:
            state.load(passage.apply)
        for stage in passage.rows:
            stage.start_task(self.spec.task)
        started = time.perf_counter()
        for batch in self.source():
            self.rows_in += batch.num_rows
            if passage.apply:
                positions = positions_for(self.spec.task, self.apply_offset, batch.num_rows)
                self.apply_offset += batch.num_rows
                start = time.perf_counter()
                result = passage.apply.apply(batch, positions)
                self.record(passage.apply, batch, result, time.perf_counter() - start)
                batch = result.kept
                if batch.num_rows == 0:
                    continue
            self.run_rows(batch, passage.rows)
        if passage.apply:
            start = time.perf_counter()
            for result in passage.apply.generate(self.spec.task, self.state.tasks):
                self.record(passage.apply, None, result, time.perf_counter() - start, generated=True)
                if result.kept.num_rows:
                    self.run_rows(result.kept, passage.rows)
                start = time.perf_counter()
        for index, stage in enumerate(passage.rows):
            leftover = stage.finish_task()
            if leftover is not None:
                self.record(stage, None, leftover, 0.0)
                if leftover.kept.num_rows:
                    self.run_rows(leftover.kept, passage.rows[index + 1 :])
        return self.finish(time.perf_counter() - started)

    def finish(self, seconds: float) -> TaskResult:
        scan_file = shuffle_file = None
        if self.scan_writer is not None:
            self.scan_writer.close()
            scan_file = os.path.relpath(self.scan_writer.path, self.state.layout.out)
        if self.shuffled:
            assert self.shuffle_path is not None
            write_partitioned(self.shuffle_path, pa.concat_tables(self.shuffled), self.state.partitions)
            shuffle_file, self.shuffled = os.path.relpath(self.shuffle_path, self.state.layout.out), []
        result = TaskResult(
            pass_index=self.spec.pass_index,
            task=self.spec.task,
            rows_in=self.rows_in,
            seconds=seconds,
            stages=self.stats,
            shards=self.data.close(),
            rejects={name: writer.close() for name, writer in self.rejects.items()},
            quarantine=self.quarantine_writer.close(),
            files=[asdict(stats) for stats in self.files],
            scan_file=scan_file,
            shuffle_file=shuffle_file,
        )
        self.publish(result)
        write_json_atomic(self.state.layout.marker(self.spec.pass_index, self.spec.task), result.to_json())
        logger.info("pass %d task %d: %d rows in, %.2f s", self.spec.pass_index, self.spec.task, self.rows_in, seconds)
        return result

    def publish(self, result: TaskResult) -> None:
        """On object storage: upload what the task wrote (its marker comes after its log: `run_task`)."""
        layout = self.state.layout
        if not layout.remote:
            return
        written = [*result.shards, *result.quarantine, *(shard for ss in result.rejects.values() for shard in ss)]
        layout.mirror.publish(*(layout.out / record["path"] for record in written), keep=False)
        for path in (result.scan_file, result.shuffle_file):
            if path is not None:
                layout.mirror.publish(layout.out / path, keep=False)
        if self.passage.apply is not None:
            self.state.publish_stage_files(self.passage.apply)


class TaskFailed(Exception):
    """A task failed for a reason that is not bad input (a bug, a stage failing): carries the
    worker's traceback, which the command line shows and the run's log keeps."""

    def __init__(self, message: str, details: str):
        super().__init__(message)
        self.details = details

    def __reduce__(self) -> tuple:
        return (TaskFailed, (str(self), self.details))


def reporting_failures(state: WorkerState, label: str, where: str, work: Callable[[], T]) -> T:
    """`work()` in a worker: bad input or a config problem stays one line; a full disk or a
    read-only folder becomes one line naming the path; anything else is a bug, logged with its
    traceback and raised as `TaskFailed` naming the work (`label`) and its inputs (`where`)."""
    try:
        return work()
    except ThresherError:  # bad input or a config problem: one line, as the user should see it
        raise
    except Exception as error:
        user_error = environment_error(error, state.layout.out)
        if user_error is not None:
            logger.error("%s: %s", label, user_error)
            raise user_error from None
        named = f"{label} ({where})" if where else label
        logger.exception("%s failed", named)
        raise TaskFailed(f"{named} failed: {type(error).__name__}: {error}", traceback.format_exc()) from None


def run_task(spec: TaskSpec) -> TaskResult:
    """Entry point in a worker process: run one task with its own log file."""
    state = worker()
    where = ", ".join(str(f["path"] if isinstance(f, dict) else f.path) for f in spec.inputs[:3])
    label = f"pass {spec.pass_index} task {spec.task}"
    return logged_and_published(
        state,
        state.layout.task_log(spec.pass_index, spec.task),
        state.layout.marker(spec.pass_index, spec.task),
        lambda: reporting_failures(state, label, where, lambda: TaskRun(state, spec).run()),
    )


def logged_and_published(state: WorkerState, log: Path, marker: Path, work: Callable[[], T]) -> T:
    """`work()` with its own log file; on object storage the log is uploaded (also after a
    failure), then the marker `work` wrote, last: what has a marker there is done."""
    try:
        with log_to_file(log, mode="w"):
            result = work()
    finally:
        state.layout.mirror.publish(log)
    state.layout.mirror.publish(marker)
    return result


@dataclass
class PartitionSpec:
    """One partition of one step of a global stage's partitioned resolve."""

    stage: str
    step: str
    partition: int
    request: Any
    scan_files: list[str]
    scan_tasks: list[int]
    shuffle_files: list[str]


@dataclass
class PartitionResult:
    """What a partition returned to the driver, with its statistics (its marker holds the same)."""

    step: str
    partition: int
    request: Any
    result: Any
    stats: StageStats

    def to_json(self) -> dict[str, Any]:
        return dict(asdict(self), stats=self.stats.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartitionResult:
        return cls(**dict(data, stats=StageStats.from_json(data["stats"])))


def run_partition(spec: PartitionSpec) -> PartitionResult:
    """Entry point in a worker process: resolve one partition of a global stage, with its own log
    file; its result is written last, as its marker (a partition without one is redone)."""
    state = worker()
    label = f"stage {spec.stage} step {spec.step} partition {spec.partition}"
    return logged_and_published(
        state,
        state.layout.partition_log(spec.stage, spec.step, spec.partition),
        state.layout.partition_marker(spec.stage, spec.step, spec.partition),
        lambda: reporting_failures(state, label, "", lambda: resolve_partition(state, spec)),
    )


def resolve_partition(state: WorkerState, spec: PartitionSpec) -> PartitionResult:
    layout = state.layout
    stage = state.global_stage(spec.stage)
    stats = StageStats()
    stage.bind_stats(stats)
    state.prepare(stage)
    partitions_dir = layout.partitions_dir(stage.name)
    layout.mirror.remove_matching(
        partitions_dir / spec.step, f"*-p{spec.partition:05d}.arrow*"
    )  # an interrupted attempt's
    # Paths travel relative to the output folder: on object storage each machine has its own staging.
    scan_files = [state.fetch(layout.out / f) for f in spec.scan_files]
    shuffle_files = [state.fetch(layout.out / f) for f in spec.shuffle_files]
    state.fetch_tree(partitions_dir)  # earlier steps' files
    context = state.global_context(stage, scan_files, spec.scan_tasks)
    ctx = PartitionContext(
        **vars(context), step=spec.step, partition=spec.partition, request=spec.request, shuffle_files=shuffle_files
    )
    start = time.perf_counter()
    result = PartitionResult(spec.step, spec.partition, spec.request, stage.resolve_partition(ctx), stats)
    stats.seconds += time.perf_counter() - start
    state.publish_stage_files(stage)  # on object storage: the files this partition wrote
    marker = layout.partition_marker(spec.stage, spec.step, spec.partition)
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, result.to_json())
    logger.info(
        "stage %s step %s partition %d resolved in %.2f s", spec.stage, spec.step, spec.partition, stats.seconds
    )
    return result
