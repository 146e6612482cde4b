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

Each stage declares the columns it `requires` and `provides`; the pipeline checks the chain
before any data is read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc



@dataclass
class RowResult:
    """What a stage returns for one batch: the rows kept, and the rows dropped with a `drop_reason`."""

    kept: pa.RecordBatch
    dropped: pa.RecordBatch | None = None
    # Input rows merged into other output rows (an answer joined to its question, the responses
    # turned into preference pairs): neither output nor dropped, counted for the accounting.
    consumed: int = 0


class Stage:
    """Base of every stage. Subclasses are dataclasses; their fields are the stage's options.

    Class attributes a stage sets:
    - `config_name`: the file `conf/stage/<config_name>.yaml` holding its defaults.
    - `requires`: columns it reads; `provides`: columns it adds, with their Arrow types.
    - `one_to_one`: every input row is either output or dropped (False for packing, sampling).
    """

    config_name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ("text",)
    provides: ClassVar[dict[str, pa.DataType]] = {}
    one_to_one: ClassVar[bool] = True

    # The stage's key in the recipe (e.g. "gopher_quality"); set by the pipeline builder.
    name: str = ""

    def validate(self) -> None:
        """Raise ValueError naming the option if the options are inconsistent (called at build time)."""

    def required_columns(self) -> tuple[str, ...]:
        """The columns this stage reads, checked when the pipeline is built (options may add some)."""
        return self.requires

    def setup(self) -> None:
        """Load heavy resources (models, tables); called once per worker process before first use."""

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema of the rows this stage outputs, given the schema it receives."""
        for column, dtype in self.provides.items():
            index = schema.get_field_index(column)
            if index >= 0:
                schema = schema.remove(index)
            schema = schema.append(pa.field(column, dtype))
        return schema

    def options(self) -> dict[str, Any]:
        """The stage's options as a plain dict (for manifests and reports)."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}

    def details(self) -> dict[str, Any] | None:
        """Facts about the run worth recording in the manifest beyond the options (e.g. the
        fingerprint of a model the stage used). Called once, in the driver, after the run."""
        return None


class RowStage(Stage):
    """A stage that works on one record batch at a time."""

    def process(self, batch: pa.RecordBatch) -> RowResult:
        raise NotImplementedError

    def start_task(self, task: int) -> None:
        """Called before the first batch of each task (a group of shards) for per-task state."""

    def finish_task(self) -> RowResult | None:
        """Called after the last batch of a task; may return rows held back (e.g. a packing remainder)."""
        return None

    def task_counts(self) -> dict[str, int]:
        """Counters of the task just finished (e.g. tokens written), called after `finish_task`.
        The engine sums them over tasks into the manifest's `counts` for the stage."""
        return {}


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

    def score(self, batch: pa.RecordBatch) -> dict[str, Sequence | np.ndarray | pa.Array]:
        raise NotImplementedError

    def decide(self, batch: pa.RecordBatch) -> Sequence[str | None] | pa.Array:
        raise NotImplementedError

    def process(self, batch: pa.RecordBatch) -> RowResult:
        batch = with_columns(batch, self.score(batch), self.provides)
        return split_by_reason(batch, self.decide(batch))


class GlobalStage(Stage):
    """A stage that needs every row: scan each shard, resolve once, apply to each shard.

    The engine runs `scan` on every batch reaching the stage and appends the returned state rows
    to a per-task Arrow IPC stream file; calls `resolve` once with all those files (read them with
    `polars.read_ipc_stream`, or batch by batch with `pyarrow.ipc.open_stream` to bound memory);
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

    def resolve(self, ctx: GlobalContext) -> dict[str, Any]:
        """Work on the scanned state and write decisions under `ctx.work_dir`; return a JSON-able summary."""
        raise NotImplementedError

    def load(self, ctx: GlobalContext) -> None:
        """Load the decisions written by `resolve` (once per worker process, before `apply`)."""

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        raise NotImplementedError

    def generate(self, task: int, tasks: int) -> Iterator[RowResult]:
        """New rows made by `resolve` (kept, and dropped with their reason), emitted by task `task`
        of `tasks` after its own rows; each task emits its share, so later stages run in parallel.
        The accounting of a stage is then: rows in + generated = rows out + dropped + consumed."""
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


def with_columns(
    batch: pa.RecordBatch, columns: dict[str, Any], types: dict[str, pa.DataType]
) -> pa.RecordBatch:
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
