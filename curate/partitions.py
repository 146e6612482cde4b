"""Partitioned state of global stages: shuffle files, and scanned rows found by their position.

A global stage that resolves in partitions routes some of its scan state to `P` partitions by a
64-bit key (`partition_of`: all rows of one key reach one partition, whatever the task that
scanned them). Each task writes what it routes as one *shuffle file*: an Arrow IPC stream file
whose rows are sorted by partition, with the number of rows of each partition in the schema's
metadata, so partition `p` reads its slice of every task's file (memory-mapped, the slice copied
out) and nothing else. A partition's own output for the next round of its stage is written the same way.

`ScanRows` finds rows of a stage's per-task scan files by position (`task << 32 | row`), one
task's file at a time and without keeping the files mapped, so what a partition reads from them
(shingles to verify, ids of kept documents) costs memory for those rows only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate.arrow_io import read_table, write_table
from curate.dedup.text import mix64

PARTITION_ROWS = b"thresher.partition_rows"  # schema metadata: rows per partition, in order
KEY = "key"  # the uint64 column that routes a shuffled row
ROW_BITS = np.int64(32)


def partition_of(keys: np.ndarray, partitions: int) -> np.ndarray:
    """The partition (0..P-1) of each uint64 key: mixed first, so any key spreads evenly."""
    if partitions == 1:
        return np.zeros(len(keys), np.int64)
    return (mix64(np.asarray(keys, np.uint64)) % np.uint64(partitions)).astype(np.int64)


def write_partitioned(path: Path, table: pa.Table, partitions: int) -> list[int]:
    """Write `table` (with a uint64 `key` column) to `path` sorted by partition (stable: rows of one
    partition keep their order); return the rows of each partition."""
    part = partition_of(table.column(KEY).to_numpy(), partitions)
    counts = np.bincount(part, minlength=partitions).tolist()
    if partitions > 1:
        table = table.take(pa.array(np.argsort(part, kind="stable")))
    metadata = {**(table.schema.metadata or {}), PARTITION_ROWS: json.dumps(counts).encode()}
    rows = table.combine_chunks().replace_schema_metadata(metadata)
    # One record batch per partition: a partition's reader touches its own batch's pages only.
    starts = np.concatenate([[0], np.cumsum(counts)]).tolist()
    batches = [rows.slice(start, stop - start) for start, stop in zip(starts, starts[1:]) if stop > start]
    write_table(path, pa.concat_tables(batches) if batches else rows)
    return counts


def read_partition(
    paths: Sequence[Path], partition: int, partitions: int, columns: Sequence[str] | None = None
) -> pa.Table | None:
    """Partition `partition`'s rows from every shuffle file in `paths`, in file order (None: no file).

    Each file's slice is copied out and the file unmapped before the next is read: a partition
    holds its own rows, and the pages of one file at a time, however many tasks wrote files (left
    mapped, every file's pages stayed resident and a worker's RSS grew with the number of tasks)."""
    parts = []
    for path in paths:
        table = read_table(path, columns)
        counts = json.loads(table.schema.metadata[PARTITION_ROWS])
        if len(counts) != partitions:  # written for another partitioning: never silently mixed
            raise RuntimeError(f"{path}: written for {len(counts)} partitions, read as one of {partitions}")
        start = sum(counts[:partition])
        rows = table.slice(start, counts[partition]).replace_schema_metadata(None)
        parts.append(rows.take(pa.array(np.arange(rows.num_rows))))  # a copy: the map is released
        del table, rows
    if not parts:
        return None
    return pa.concat_tables(parts)


def task_of(positions: np.ndarray) -> np.ndarray:
    return np.asarray(positions, np.int64) >> ROW_BITS


class ScanRows:
    """A global stage's scan files, whose rows are found by their `position` column."""

    def __init__(self, files: Sequence[Path], tasks: Sequence[int]):
        self.files = dict(zip(tasks, files))

    def take(self, positions: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """`columns` of the rows at `positions` (sorted, each present), in that order. Each task's
        file is mapped only while its rows are copied out."""
        positions = np.asarray(positions, np.int64)
        tasks = task_of(positions)
        bounds = np.flatnonzero(np.diff(tasks)) + 1
        parts = []
        for chunk in np.split(positions, bounds) if len(positions) else []:
            table = read_table(self.files[int(chunk[0] >> ROW_BITS)], ["position", *columns])
            known = table.column("position").to_numpy()
            index = np.searchsorted(known, chunk)
            if (index >= len(known)).any() or (known[np.minimum(index, len(known) - 1)] != chunk).any():
                raise RuntimeError(f"position not found in the scan file of task {int(chunk[0] >> ROW_BITS)}")
            parts.append(table.select(list(columns)).take(pa.array(index)).combine_chunks())
            del table
        if not parts:
            if not self.files:
                return pa.table({name: pa.array([], pa.null()) for name in columns})
            return read_table(next(iter(self.files.values())), columns).slice(0, 0)
        return pa.concat_tables(parts)
