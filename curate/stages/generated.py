"""Rows a global stage creates in `resolve` and emits in `generate`: written once as an Arrow IPC
file in the stage's work folder, then read back in slices, one per task of the apply pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from curate.stages.base import RowResult


def write_rows(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_table(table)


def read_rows(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def task_share(path: Path, task: int, tasks: int) -> pa.RecordBatch | None:
    """Task `task`'s contiguous share of the rows in `path` (None if it has none)."""
    table = read_rows(path)
    lo, hi = table.num_rows * task // tasks, table.num_rows * (task + 1) // tasks
    if hi <= lo:
        return None
    return table.slice(lo, hi - lo).combine_chunks().to_batches()[0]


def emit(kept: Path, dropped: Path, kept_schema: pa.Schema, task: int, tasks: int) -> Iterator[RowResult]:
    """The generated rows of one task: kept rows, then rows dropped (with a `drop_reason` column)."""
    batch = task_share(kept, task, tasks)
    if batch is not None:
        yield RowResult(kept=batch)
    batch = task_share(dropped, task, tasks)
    if batch is not None:
        yield RowResult(kept=pa.RecordBatch.from_pylist([], schema=kept_schema), dropped=batch)
