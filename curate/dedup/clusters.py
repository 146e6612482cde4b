"""From scanned state to duplicate clusters: candidate pairs, verification, components, decisions.

Everything here works on the per-task Arrow files a global stage's `scan` produced, one column
at a time (memory-mapped), so memory grows with the number of documents' signatures, never with
the text. Candidate pairs come from grouping each band column with polars (documents sharing a
band value are linked to the first of them, a star); connected components come from
`scipy.sparse.csgraph`. Decisions are written per task, so `apply` loads only its task's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curate.arrow_io import read_table, read_tables, to_frame, write_table
from curate.dedup.decisions import CLUSTERS_FILE, DECISIONS, decision_path
from curate.dedup.minhash import sorted_unique

MAX_SAMPLE_MEMBERS = 4  # documents shown per sample cluster (the kept one and three dropped)
# Shingles gathered per chunk of candidate pairs: bounds the memory of verification (~8 bytes each).
VERIFY_CHUNK = 1 << 20


def take_rows(files: list[Path], columns: list[str], rows: np.ndarray) -> pa.Table:
    """The given columns of the given global rows (sorted), gathered one scan file at a time, so
    that only the selected rows are ever copied."""
    parts, start = [], 0
    for path in files:
        table = read_table(path, columns)
        lo, hi = np.searchsorted(rows, [start, start + table.num_rows])
        if hi > lo:
            parts.append(table.take(pa.array(rows[lo:hi] - start)))
        start += table.num_rows
    if not parts:
        return read_tables(files[:1], columns=columns).slice(0, 0)
    return pa.concat_tables(parts)


def band_pairs(files: list[Path], band_columns: list[str]) -> np.ndarray:
    """Candidate pairs (anchor row, member row), unique and sorted, from documents sharing any band.

    Rows are global indices in the concatenated scan files. Within a band bucket every member is
    paired with the bucket's first row (a star), so a bucket of k documents gives k - 1 pairs.
    """
    found: list[np.ndarray] = []
    for column in band_columns:
        values = read_tables(files, columns=[column]).column(column)
        frame = to_frame(pa.table({"band": values})).with_row_index("row")
        stars = (
            frame.lazy()
            .drop_nulls("band")
            .with_columns(anchor=pl.col("row").min().over("band"))
            .filter(pl.col("row") != pl.col("anchor"))
            .select(pl.col("anchor").cast(pl.Int64), pl.col("row").cast(pl.Int64))
            .collect()
        )
        if stars.height:
            found.append(stars.to_numpy())
    if not found:
        return np.zeros((0, 2), np.int64)
    # Unique pairs, sorted, through one 64-bit key per pair (global rows are < 2^32: polars'
    # row index is 32-bit).
    pairs = np.concatenate(found).astype(np.uint64)
    keys = sorted_unique((pairs[:, 0] << np.uint64(32)) | pairs[:, 1])
    return np.stack([keys >> np.uint64(32), keys & np.uint64(0xFFFFFFFF)], axis=1).astype(np.int64)


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
        keys = np.concatenate(
            [
                (np.repeat(tag, la) << np.uint64(32)) | values[ranges(offsets[chunk[:, 0]], la)].astype(np.uint64),
                (np.repeat(tag, lb) << np.uint64(32)) | values[ranges(offsets[chunk[:, 1]], lb)].astype(np.uint64),
            ]
        )
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
    nodes = sorted_unique(pairs.ravel())
    inverse = np.searchsorted(nodes, pairs)
    graph = coo_matrix(
        (np.ones(len(pairs), np.int8), (inverse[:, 0], inverse[:, 1])), shape=(len(nodes), len(nodes))
    ).tocsr()
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


def write_decisions(directory: Path, members: pl.DataFrame) -> None:
    """One decisions file per task holding cluster members: row in task, cluster, size, drop."""
    if directory.exists():
        for old in directory.glob("task-*"):
            old.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    members = members.with_columns(task=pl.col("position") // (1 << 32), row=pl.col("position") % (1 << 32))
    for (task,), part in members.sort("position").group_by("task", maintain_order=True):
        table = part.select(
            pl.col("row").cast(pl.Int64),
            pl.col("cluster").cast(pl.String),
            pl.col("size").cast(pl.Int64),
            pl.col("drop"),
        ).to_arrow()
        write_table(decision_path(directory, int(task)), table.cast(DECISIONS))


def keep_one(files: list[Path], rows: np.ndarray, labels: np.ndarray, by_priority: bool) -> pl.DataFrame:
    """Cluster members with position, id, source, the id of the kept document, size and drop flag.

    The kept document of a cluster has the highest `priority` (when `by_priority`), then the
    smallest row (first seen).
    """
    if len(rows) == 0:
        empty = {
            "row": pl.Int64,
            "position": pl.Int64,
            "id": pl.String,
            "source": pl.String,
            "label": pl.Int64,
            "kept_row": pl.Int64,
            "cluster": pl.String,
            "size": pl.Int64,
            "drop": pl.Boolean,
        }
        return pl.DataFrame(schema=empty)
    order = np.argsort(rows, kind="stable")
    rows, labels = rows[order], labels[order]
    columns = ["position", "id", "source"] + (["priority"] if by_priority else [])
    info = to_frame(take_rows(files, columns, rows))
    frame = info.with_columns(row=pl.Series(rows, dtype=pl.Int64), label=pl.Series(labels, dtype=pl.Int64))
    ranking = (["priority"] if by_priority else []) + ["row"]
    keepers = (
        frame.sort(ranking, descending=[True] * (len(ranking) - 1) + [False])
        .group_by("label", maintain_order=True)
        .first()
        .select("label", pl.col("row").alias("kept_row"), pl.col("id").alias("cluster"))
    )
    return (
        frame.join(keepers, on="label")
        .with_columns(size=pl.len().over("label"), drop=pl.col("row") != pl.col("kept_row"))
        .sort("row")
    )


def write_samples(
    keep_dir: Path, members: pl.DataFrame, count: int, seed: int, similarity: Callable[[np.ndarray], np.ndarray | None]
) -> int:
    """Pick sample clusters (half the largest, half at random) and write their members to `clusters.arrow`."""
    keep_dir.mkdir(parents=True, exist_ok=True)
    clusters = (
        members.filter(~pl.col("drop")).sort(["size", "row"], descending=[True, False]).select("label", "row", "size")
    )
    count = min(count, clusters.height)
    largest = (count + 1) // 2
    rest = clusters.height - largest
    others: np.ndarray | list[int] = (
        np.sort(np.random.default_rng(seed).choice(rest, count - largest, replace=False)) + largest if rest else []
    )
    chosen = clusters[list(range(largest)) + [int(i) for i in others]].with_row_index("sample")
    shown = (
        members.join(chosen.select("label", "sample"), on="label")
        .sort(["sample", "drop", "row"])
        .group_by("sample", maintain_order=True)
        .head(MAX_SAMPLE_MEMBERS)
    )
    scores = None
    if shown.height:
        scores = similarity(np.stack([shown["kept_row"].to_numpy(), shown["row"].to_numpy()], axis=1))
    table = pa.table(
        {
            "sample": pa.array(shown["sample"].to_numpy(), pa.int32()),
            "cluster": shown["cluster"].to_arrow().cast(pa.string()),
            "size": pa.array(shown["size"].to_numpy(), pa.int64()),
            "position": pa.array(shown["position"].to_numpy(), pa.int64()),
            "id": shown["id"].to_arrow().cast(pa.string()),
            "source": shown["source"].to_arrow().cast(pa.string()),
            "role": pa.array(np.where(shown["drop"].to_numpy(), "dropped", "kept"), pa.string()),
            "similarity": pa.array(scores, pa.float64())
            if scores is not None
            else pa.nulls(shown.height, pa.float64()),
        }
    )
    write_table(keep_dir / CLUSTERS_FILE, table)
    return count


def summary(files: list[Path], members: pl.DataFrame) -> dict[str, Any]:
    """Documents, clusters, removals (overall and per source) and the cluster-size histogram."""
    by_source: dict[str, int] = {}
    for path in files:  # one file at a time: counting needs no more memory than a task's state
        for item in pc.value_counts(read_table(path, ["source"]).column("source")).to_pylist():
            by_source[str(item["values"])] = by_source.get(str(item["values"]), 0) + item["counts"]
    kept = members.filter(~pl.col("drop"))
    dropped = members.filter(pl.col("drop"))
    removed = dropped.group_by("source").len().sort("source")
    return {
        "documents": sum(by_source.values()),
        "clusters": kept.height,
        "duplicates_removed": dropped.height,
        "documents_in_clusters": members.height,
        # polars types a Series' max as any Python literal (or None); cluster sizes are ints
        "largest_cluster": int(cast(int, kept["size"].max())) if kept.height else 0,
        "cluster_sizes": size_histogram(kept["size"].to_numpy()),
        "documents_by_source": dict(sorted(by_source.items())),
        "removed_by_source": {str(k): int(v) for k, v in removed.iter_rows()},
    }
