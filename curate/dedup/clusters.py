"""From scanned state to duplicate clusters: candidate pairs, verification, components, decisions.

Everything here works on the per-task Arrow files a global stage's `scan` produced, one column
at a time (memory-mapped), so memory grows with the number of documents' signatures, never with
the text. Candidate pairs come from grouping each band column with polars (documents sharing a
band value are linked to the first of them, a star); connected components come from
`scipy.sparse.csgraph`. Decisions are written per task, so `apply` loads only its task's rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ROW_MASK = np.int64(0xFFFFFFFF)
DECISIONS = pa.schema([("row", pa.int64()), ("cluster", pa.string()), ("size", pa.int64()), ("drop", pa.bool_())])
# Candidate pairs verified per chunk: bounds the memory of the shingle gather.
VERIFY_CHUNK = 1 << 24


def read_columns(files: list[Path], columns: list[str]) -> pa.Table:
    """The given columns of every scan file, concatenated in task order (memory-mapped, zero-copy)."""
    tables = []
    for path in files:
        with pa.memory_map(str(path)) as source:
            tables.append(pa.ipc.open_stream(source).read_all().select(columns))
    if not tables:
        return pa.table({c: pa.array([], pa.null()) for c in columns})
    return pa.concat_tables(tables)


def band_pairs(files: list[Path], band_columns: list[str]) -> np.ndarray:
    """Candidate pairs (anchor row, member row), unique and sorted, from documents sharing any band.

    Rows are global indices in the concatenated scan files. Within a band bucket every member is
    paired with the bucket's first row (a star), so a bucket of k documents gives k - 1 pairs.
    """
    found = []
    for column in band_columns:
        values = read_columns(files, [column]).column(column)
        frame = pl.from_arrow(pa.table({"band": values})).with_row_index("row")
        pairs = (
            frame.lazy()
            .drop_nulls("band")
            .with_columns(anchor=pl.col("row").min().over("band"))
            .filter(pl.col("row") != pl.col("anchor"))
            .select(pl.col("anchor").cast(pl.Int64), pl.col("row").cast(pl.Int64))
            .collect()
        )
        if pairs.height:
            found.append(pairs.to_numpy())
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated index ranges [starts[i], starts[i] + lengths[i])."""
    total = int(lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def jaccard(values: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """True Jaccard similarity of each pair (i, j) of sets `values[offsets[i]:offsets[i+1]]`.

    Each set must hold distinct values. Both sets of a pair are tagged with the pair's index and
    sorted together: a value present in both appears twice in a row.
    """
    result = np.zeros(len(pairs), np.float64)
    lengths = np.diff(offsets)
    done = np.cumsum(lengths[pairs[:, 0]] + lengths[pairs[:, 1]])
    start = 0
    while start < len(pairs):
        before = done[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(done, before + VERIFY_CHUNK, side="right")))
        chunk = pairs[start:stop]
        la, lb = lengths[chunk[:, 0]], lengths[chunk[:, 1]]
        tag = np.arange(len(chunk), dtype=np.uint64)
        keys = np.concatenate([
            (np.repeat(tag, la) << np.uint64(32)) | values[ranges(offsets[chunk[:, 0]], la)].astype(np.uint64),
            (np.repeat(tag, lb) << np.uint64(32)) | values[ranges(offsets[chunk[:, 1]], lb)].astype(np.uint64),
        ])
        keys.sort()
        same = keys[1:][keys[1:] == keys[:-1]] >> np.uint64(32)
        common = np.bincount(same.astype(np.int64), minlength=len(chunk))
        union = la + lb - common
        result[start:stop] = np.where(union > 0, common / np.maximum(union, 1), 1.0)
        start = stop
    return result


def components(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the pair graph: (nodes, label of each node), labels 0..k-1."""
    if len(pairs) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    nodes, inverse = np.unique(pairs, return_inverse=True)
    inverse = inverse.reshape(pairs.shape)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (inverse[:, 0], inverse[:, 1])),
                       shape=(len(nodes), len(nodes))).tocsr()
    _, labels = connected_components(graph, directed=False)
    return nodes, labels.astype(np.int64)


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """Clusters per size bucket: 2, 3, 4-7, 8-15, ... (powers of two past 3)."""
    histogram: dict[str, int] = {}
    for size in np.sort(sizes):
        size = int(size)
        if size <= 3:
            key = str(size)
        else:
            low = 1 << (size.bit_length() - 1)
            key = f"{low}-{2 * low - 1}"
        histogram[key] = histogram.get(key, 0) + 1
    return histogram


def write_arrow(path: Path, table: pa.Table) -> None:
    """Write an Arrow IPC stream file atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)


def read_arrow(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


def decision_path(directory: Path, task: int) -> Path:
    return directory / f"task-{task:05d}.arrow"


def write_decisions(directory: Path, members: pl.DataFrame) -> None:
    """One decisions file per task holding cluster members: row in task, cluster, size, drop."""
    if directory.exists():
        for old in directory.glob("task-*"):
            old.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    members = members.with_columns(task=pl.col("position") // (1 << 32), row=pl.col("position") % (1 << 32))
    for (task,), part in members.sort("position").group_by("task", maintain_order=True):
        table = part.select(
            pl.col("row").cast(pl.Int64), pl.col("cluster").cast(pl.String),
            pl.col("size").cast(pl.Int64), pl.col("drop"),
        ).to_arrow()
        write_arrow(decision_path(directory, int(task)), table.cast(DECISIONS))


class TaskDecisions:
    """The decisions of one task, loaded in a worker (cached one task at a time)."""

    def __init__(self, directory: Path, task: int):
        path = decision_path(directory, task)
        self.task = task
        if path.is_file():
            table = read_arrow(path)
            self.rows = table.column("row").to_numpy()
            self.cluster = table.column("cluster").combine_chunks()
            self.size = table.column("size").to_numpy()
            self.drop = table.column("drop").to_numpy(zero_copy_only=False)
        else:
            self.rows = np.zeros(0, np.int64)
            self.cluster = pa.array([], pa.string())
            self.size = np.zeros(0, np.int64)
            self.drop = np.zeros(0, bool)

    def lookup(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index into this task's decisions, whether the row is a cluster member) per row."""
        if len(self.rows) == 0:
            return np.zeros(len(rows), np.int64), np.zeros(len(rows), bool)
        index = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        return index, self.rows[index] == rows
