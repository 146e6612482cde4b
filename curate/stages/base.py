"""The stage contract.

A stage is a small dataclass whose fields are its options (with their published defaults) and
whose methods work on Arrow record batches. Stages know nothing of files, executors or shards:
the engine feeds them batches and writes what they return.

Kinds of stage:
- `RowStage.process(batch) -> RowResult`: one batch at a time (map, annotate, filter).
  - `MapStage.transform(batch) -> batch`: rewrites rows, drops nothing.
  - `FilterStage.score(batch)` computes typed score columns; `FilterStage.decide(batch)` turns
    the scores into a drop reason per row (None keeps it). Scores stay in the shards, so a
    threshold can be changed by re-running `decide` alone.
- `GlobalStage`: needs every row (dedup, selection, mixing). Three phases: `scan` each shard
  into compact state rows, `resolve` once over all state (on disk), `apply` per shard. A global
  stage may also create rows that no input row becomes (generation, joins, pairing): `resolve`
  writes them and `generate` emits them, after each task's own rows. A global stage whose state
  grows with the corpus resolves in partitions: `shuffle` routes scan state to partitions by a
  key, `resolve_partition` runs in workers (one task per partition, memory bounded by its
  partition) and the driver's `resolve` merges only what must be global.

Every stage declares, in one way:
- its columns: `required_columns()` and `provided_columns()` (by default the class attributes
  `requires` and `provides`; a stage whose columns depend on its options overrides the methods,
  never mutates them); the pipeline checks the chain before any data is read, and
  `docs/stages.md` is generated from the same methods;
- its life cycle: the engine calls `setup()` once in each process before the stage's first
  batch (or before `resolve`, on the driver) and `teardown()` when that process is done with it;
- its resources: `resources` (CPUs, memory, GPUs a worker needs for it), which the Ray executor
  schedules by, overridable per recipe as `stages.<name>.resources`;
- its statistics: `stat_update(name, value)` for counters and `stat_set(name, value)` for facts
  (see `curate.stats`), merged by the engine into the manifest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.partitions import ScanRows, read_partition, write_partitioned
from curate.stats import StageStats


@dataclass
class RowResult:
    """What a stage returns for one batch: the rows kept, and the rows dropped with a `drop_reason`."""

    kept: pa.RecordBatch
    dropped: pa.RecordBatch | None = None


@dataclass(frozen=True)
class Resources:
    """What one worker running a stage needs. A pass runs its stages one after another in one
    worker, so a pass needs the largest of each (`merge`)."""

    cpus: float = 1.0
    memory_gb: float = 0.0  # 0: nothing beyond a worker's baseline (about 0.5 GB) is declared
    gpus: float = 0.0

    def merge(self, other: Resources) -> Resources:
        return Resources(max(self.cpus, other.cpus), max(self.memory_gb, other.memory_gb), max(self.gpus, other.gpus))


GIB = 1 << 30


@dataclass(frozen=True)
class Load:
    """What a run hands its stages, estimated before any data is read (`curate.engine.estimate`)."""

    documents: int  # in the whole input
    document_bytes: float  # text bytes of an average document
    task_documents: int  # in the largest task
    partitions: int
    batch_bytes: int  # a record batch in flight
    duplicates: int  # documents assumed to be in duplicate clusters (a planning figure)


@dataclass(frozen=True)
class Memory:
    """A stage's estimated peak memory in bytes, beyond a process's baseline: what it holds from
    `setup` to `teardown` in every process that runs it (models, tables), what a task running it
    holds, what a partition task of its resolve holds, and what its resolve holds on the driver."""

    setup: float = 0
    task: float = 0
    partition: float = 0
    driver: float = 0


class Stage:
    """Base of every stage. Subclasses are dataclasses; their fields are the stage's options.

    Class attributes a stage sets:
    - `config_name`: the file `conf/stage/<config_name>.yaml` holding its defaults.
    - `requires`: columns it reads; `provides`: columns it adds, with their Arrow types (read
      through `required_columns()` / `provided_columns()`, which options may extend).
    - `resources`: what a worker needs to run it (default: one CPU).
    """

    if TYPE_CHECKING:  # every concrete stage is a dataclass (the pipeline builder checks it)
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    config_name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ("text",)
    provides: ClassVar[dict[str, pa.DataType]] = {}
    resources: ClassVar[Resources] = Resources()

    # The stage's key in the recipe (e.g. "gopher_quality"); set by the pipeline builder.
    name: str = ""

    def validate(self) -> None:
        """Raise ValueError naming the option if the options are inconsistent (called at build time)."""

    def required_columns(self) -> tuple[str, ...]:
        """The columns this stage reads, checked when the pipeline is built."""
        return self.requires

    def provided_columns(self) -> dict[str, pa.DataType]:
        """The columns this stage adds (or replaces), with their types."""
        return dict(self.provides)

    def memory(self, load: Load) -> Memory:
        """The stage's estimated peak memory for `load` (from measured costs, docs/scaling.md); by
        default what `resources.memory_gb` declares, held by every process that sets it up."""
        return Memory(setup=self.resources.memory_gb * GIB)

    def setup(self) -> None:
        """Load heavy resources (models, tables); called by the engine once per process before first use."""

    def teardown(self) -> None:
        """Release what `setup` acquired (clients, models); called by the engine when the process is done."""

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema of the rows this stage outputs, given the schema it receives."""
        for column, dtype in self.provided_columns().items():
            index = schema.get_field_index(column)
            if index >= 0:
                schema = schema.remove(index)
            schema = schema.append(pa.field(column, dtype))
        return schema

    def options(self) -> dict[str, Any]:
        """The stage's options as a plain dict (for manifests and reports)."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}

    @property
    def stats(self) -> StageStats:
        """The statistics of the work at hand (bound by the engine per task and per resolve)."""
        stats = self.__dict__.get("_stats")
        if stats is None:
            stats = self.__dict__["_stats"] = StageStats()
        return stats

    def bind_stats(self, stats: StageStats) -> None:
        self.__dict__["_stats"] = stats

    def stat_update(self, name: str, value: float = 1) -> None:
        """Add `value` to the counter `name` (summed over tasks; `consumed` counts input rows
        merged into other output rows, for the accounting)."""
        self.stats.update(name, value)

    def stat_set(self, **facts: Any) -> None:
        """Record facts about the run (JSON values: a model's fingerprint, what `resolve` found)."""
        for name, value in facts.items():
            self.stats.set(name, value)


class RowStage(Stage):
    """A stage that works on one record batch at a time."""

    def process(self, batch: pa.RecordBatch) -> RowResult:
        raise NotImplementedError

    def start_task(self, task: int) -> None:
        """Called before the first batch of each task (a group of shards) for per-task state."""

    def finish_task(self) -> RowResult | None:
        """Called after the last batch of a task; may return rows held back (e.g. a packing remainder)."""
        return None


class MapStage(RowStage):
    """A row stage that rewrites rows and drops none."""

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        raise NotImplementedError

    def process(self, batch: pa.RecordBatch) -> RowResult:
        return RowResult(kept=self.transform(batch))


class FilterStage(RowStage):
    """A row stage that scores rows and keeps or drops each one.

    `score` returns the columns declared in `provides` (typed, kept in the output); `decide`
    reads only those columns and returns, per row, the reason it is dropped or None to keep it.
    """

    def score(self, batch: pa.RecordBatch) -> Mapping[str, Sequence | np.ndarray | pa.Array]:
        raise NotImplementedError

    def decide(self, batch: pa.RecordBatch) -> Sequence[str | None] | pa.Array:
        raise NotImplementedError

    def process(self, batch: pa.RecordBatch) -> RowResult:
        batch = with_columns(batch, self.score(batch), self.provided_columns())
        return split_by_reason(batch, self.decide(batch))


class GlobalStage(Stage):
    """A stage that needs every row: scan each shard, resolve once, apply to each shard.

    The engine runs `scan` on every batch reaching the stage and appends the returned state rows
    to a per-task Arrow IPC stream file; calls `resolve` once with all those files (read them with
    `curate.arrow_io.read_frame`, or batch by batch with `curate.arrow_io.iter_batches` to bound memory);
    then calls `load` in each worker and `apply` on the same rows, in the same order, with the
    same positions. Positions are stable row identities:
    `task << 32 | row index within the task`.

    Partitioned resolve (for state that grows with the corpus: dedup, top fraction, mix):
    - `shuffle(state)` returns rows of a batch's scan state to route to partitions, with a uint64
      column `key`: every row of one key reaches the same partition (of `ctx.partitions`), whatever
      task scanned it (the engine writes one shuffle file per task, sorted by partition);
    - `resolve(ctx)` on the driver calls `ctx.map_partitions(step, request)`: the engine runs
      `resolve_partition(pctx)` once per partition as tasks on the executor (the local pool or
      Ray), each in a worker with memory bounded by its partition, and returns their results
      (small JSON values) in partition order; a partition reads its rows with `pctx.shuffled()`,
      its share of the scan files with `pctx.scan_share()`, other rows by position with
      `pctx.scan_rows()`, and writes files under `pctx.output(name)` (or routes rows to the next
      step's partitions with `pctx.write_shuffled`); a step may be followed by others;
    - `resolve` then merges the results: only what must be global reaches the driver.
    Finished partitions are kept (a marker each): a rerun after a kill redoes the others only.

    A stage whose product is what `resolve` writes, not rows (training a tokenizer or a
    classifier), sets `consumes_rows`: it must be the recipe's last stage, its rows are not
    written anywhere (no intermediate copy of the corpus), and it has no `apply`.
    """

    requires: ClassVar[tuple[str, ...]] = ("id", "text")
    consumes_rows: ClassVar[bool] = False

    @property
    def keep_subdir(self) -> str:
        """Where `ctx.keep_dir` is, relative to the output folder: `stages/<name>` unless a stage
        whose artifact is a product of its own (a tokenizer) names a folder users expect."""
        return f"stages/{self.name}"

    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch | pa.Table | None:
        raise NotImplementedError

    def shuffle(self, state: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table | None:
        """The rows of `state` (what `scan` returned for a batch) to route to partitions, with a
        uint64 `key` column; None (the default): this stage shuffles nothing."""
        return None

    def resolve(self, ctx: GlobalContext) -> None:
        """Work on the scanned state and write decisions under `ctx.work_dir`; report what was found
        with `stat_update` / `stat_set`."""
        raise NotImplementedError

    def resolve_partition(self, ctx: PartitionContext) -> Any:
        """Resolve one partition in a worker (`ctx.partition` of `ctx.partitions`, in step
        `ctx.step`); return a small JSON value for the driver's `resolve`."""
        raise NotImplementedError

    def load(self, ctx: GlobalContext) -> None:
        """Load the decisions written by `resolve` (once per worker process, before `apply`)."""

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        raise NotImplementedError

    def generate(self, task: int, tasks: int) -> Iterator[RowResult]:
        """New rows made by `resolve` (kept, and dropped with their reason), emitted by task `task`
        of `tasks` after its own rows; each task emits its share, so later stages run in parallel.
        The accounting of a stage is then: rows in + generated = rows out + dropped + consumed
        (`stat_update("consumed", n)` in `apply` for input rows merged into other rows)."""
        return iter(())


# A partitioned step run by the engine: (step, request) -> each partition's result, in order.
PartitionRunner = Callable[[str, Any], list[Any]]


@dataclass
class GlobalContext:
    """What the engine hands a global stage between its passes."""

    work_dir: Path  # the stage's private directory, kept until the run completes
    scan_files: list[Path]  # one Arrow IPC stream file per task, in task order (may be empty files)
    workers: int
    seed: int
    keep_dir: Path  # for artifacts worth keeping after the run (e.g. duplicate clusters for the report)
    tasks: int = 1  # number of tasks of the run (for `generate`)
    scan_tasks: list[int] = field(default_factory=list)  # the task of each scan file
    partitions: int = 1  # partitions of a partitioned resolve (chosen from the input's size)
    runner: PartitionRunner | None = None  # set by the engine on the driver, during `resolve`

    def map_partitions(self, step: str, request: Any = None) -> list[Any]:
        """Run `resolve_partition` for every partition in step `step` (a name unique within the
        stage) on the executor; `request` (JSON) reaches each as `ctx.request`. The results, in
        partition order (a finished partition's from its marker)."""
        if self.runner is None:
            raise RuntimeError("map_partitions is called by `resolve`, on the driver")
        return self.runner(step, request)

    def scan_rows(self) -> ScanRows:
        """The scan files' rows, found by position (state with a `position` column)."""
        return ScanRows(self.scan_files, self.scan_tasks)

    def partition_file(self, step: str, name: str, partition: int) -> Path:
        """The file `name` written by partition `partition` in step `step`."""
        return self.work_dir / "partitions" / step / f"{name}-p{partition:05d}.arrow"

    def partition_files(self, step: str, name: str) -> list[Path]:
        """The files `name` the partitions wrote in step `step`, in partition order."""
        files = (self.partition_file(step, name, p) for p in range(self.partitions))
        return [path for path in files if path.is_file()]


@dataclass
class PartitionContext(GlobalContext):
    """What a partition task of a partitioned resolve gets, in a worker."""

    step: str = ""
    partition: int = 0
    request: Any = None  # what the driver's `resolve` sent with the step
    shuffle_files: list[Path] = field(default_factory=list)  # every task's shuffle file, in task order

    def shuffled(self, columns: Sequence[str] | None = None) -> pa.Table | None:
        """This partition's rows of every task's `shuffle` output (None: nothing was shuffled)."""
        return read_partition(self.shuffle_files, self.partition, self.partitions, columns)

    def scan_share(self) -> tuple[list[Path], list[int]]:
        """The scan files (and their tasks) this partition handles when the state is split by task."""
        share = slice(self.partition, None, self.partitions)
        return self.scan_files[share], self.scan_tasks[share]

    def output(self, name: str) -> Path:
        """Where this partition writes its file `name` (read on the driver with `partition_files`)."""
        path = self.partition_file(self.step, name, self.partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_shuffled(self, name: str, table: pa.Table) -> None:
        """Route `table` (with a uint64 `key` column) to the partitions of a later step, which read
        it with `read_shuffled(this step, name)`."""
        write_partitioned(self.output(name), table, self.partitions)

    def read_shuffled(self, step: str, name: str, columns: Sequence[str] | None = None) -> pa.Table | None:
        """This partition's rows of what every partition wrote in step `step` with `write_shuffled(name)`."""
        return read_partition(self.partition_files(step, name), self.partition, self.partitions, columns)


def positions_for(task: int, offset: int, n: int) -> np.ndarray:
    """Stable row identities for `n` rows starting at `offset` within `task`."""
    return (np.int64(task) << np.int64(32)) + np.arange(offset, offset + n, dtype=np.int64)


def with_columns(batch: pa.RecordBatch, columns: Mapping[str, Any], types: dict[str, pa.DataType]) -> pa.RecordBatch:
    """Add (or replace) `columns` in `batch`, typed as declared in `types`."""
    for name, values in columns.items():
        dtype = types[name]
        array = values if isinstance(values, pa.Array) else pa.array(values, type=dtype)
        if array.type != dtype:
            array = array.cast(dtype)
        index = batch.schema.get_field_index(name)
        if index >= 0:
            batch = batch.set_column(index, pa.field(name, dtype), array)
        else:
            batch = batch.append_column(pa.field(name, dtype), array)
    return batch


def split_by_reason(batch: pa.RecordBatch, reasons: Sequence[str | None] | pa.Array) -> RowResult:
    """Split a batch into kept rows (reason is None) and dropped rows with a `drop_reason` column."""
    reasons = reasons if isinstance(reasons, pa.Array) else pa.array(reasons, type=pa.string())
    keep = pc.is_null(reasons)
    kept = batch.filter(keep)
    if kept.num_rows == batch.num_rows:
        return RowResult(kept=kept)
    dropped = batch.filter(pc.invert(keep)).append_column("drop_reason", reasons.filter(pc.invert(keep)))
    return RowResult(kept=kept, dropped=dropped)
