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
  writes them and `generate` emits them, after each task's own rows.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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

    def resolve(self, ctx: GlobalContext) -> None:
        """Work on the scanned state and write decisions under `ctx.work_dir`; report what was found
        with `stat_update` / `stat_set`."""
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


@dataclass
class GlobalContext:
    """What the engine hands a global stage between its passes."""

    work_dir: Path  # the stage's private directory, kept until the run completes
    scan_files: list[Path]  # one Arrow IPC stream file per task, in task order (may be empty files)
    workers: int
    seed: int
    keep_dir: Path  # for artifacts worth keeping after the run (e.g. duplicate clusters for the report)
    tasks: int = 1  # number of tasks of the run (for `generate`)


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
