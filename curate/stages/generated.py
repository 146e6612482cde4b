"""Rows a global stage creates in `resolve` (written with `curate.arrow_io.write_table` in its work
folder) and emits in `generate`: each task of the apply pass its contiguous share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from curate.arrow_io import task_share
from curate.stages.base import RowResult


def emit(kept: Path, dropped: Path, kept_schema: pa.Schema, task: int, tasks: int) -> Iterator[RowResult]:
    """The generated rows of one task: kept rows, then rows dropped (with a `drop_reason` column)."""
    batch = task_share(kept, task, tasks)
    if batch is not None:
        yield RowResult(kept=batch)
    batch = task_share(dropped, task, tasks)
    if batch is not None:
        yield RowResult(kept=pa.RecordBatch.from_pylist([], schema=kept_schema), dropped=batch)
