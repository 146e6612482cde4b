"""From duplicate groups and verified pairs to clusters, decisions, counts and report samples.

What runs where (the dedup stages' partitioned resolve, `curate.stages.dedup`; candidate pairs
and their verification are `curate.dedup.pairs`):
- in partition tasks: exact-duplicate groups resolved whole (`keep_one`), counts per source;
- on the driver: connected components over the verified edges (scipy), the kept document of each
  component (`keep_one`), merging counts (`merge_counts`) and picking sample clusters from the
  partitions' sorted cluster lists without loading them (`write_samples`).

Documents are named by their position (`task << 32 | row`): the smallest position is the first
seen. Decisions are written sorted by position, so `apply` reads its task's slice of each file.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from curate.arrow_io import iter_batches, read_table, to_frame, write_table
from curate.dedup.decisions import CLUSTER_LIST, CLUSTERS_FILE, DECISIONS
from curate.dedup.minhash import sorted_unique
from curate.partitions import ScanRows

MAX_SAMPLE_MEMBERS = 4  # documents shown per sample cluster (the kept one and three dropped)


def components(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the pair graph: (nodes, label of each node), labels 0..k-1."""
    from scipy.sparse import coo_matrix  # the driver's alone: workers never import scipy
    from scipy.sparse.csgraph import connected_components

    if len(pairs) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    nodes = sorted_unique(pairs.ravel())
    inverse = np.searchsorted(nodes, pairs)
    graph = coo_matrix(
        (np.ones(len(pairs), np.int8), (inverse[:, 0], inverse[:, 1])), shape=(len(nodes), len(nodes))
    ).tocsr()
    _, labels = connected_components(graph, directed=False)
    return nodes, labels.astype(np.int64)


def keep_one(members: pl.DataFrame, by_priority: bool) -> pl.DataFrame:
    """Cluster members (position, label, id, source[, priority]) with the kept document's position
    (`kept`) and id (`cluster`), the cluster's size and whether each member is dropped, sorted by
    position. The kept document has the highest `priority` (when `by_priority`), then the smallest
    position (first seen)."""
    ranking = (["priority"] if by_priority else []) + ["position"]
    keepers = (
        members.sort(ranking, descending=[True] * (len(ranking) - 1) + [False])
        .group_by("label", maintain_order=True)
        .first()
        .select("label", pl.col("position").alias("kept"), pl.col("id").alias("cluster"))
    )
    return (
        members.join(keepers, on="label")
        .with_columns(size=pl.len().over("label"), drop=pl.col("position") != pl.col("kept"))
        .sort("position")
    )


def member_info(scan: ScanRows, positions: np.ndarray, labels: np.ndarray, by_priority: bool) -> pl.DataFrame:
    """(position, label, id, source[, priority]) of cluster members, read from the scan files."""
    order = np.argsort(positions, kind="stable")
    positions, labels = positions[order], labels[order]
    columns = ["id", "source"] + (["priority"] if by_priority else [])
    info = to_frame(scan.take(positions, columns)) if len(positions) else pl.DataFrame(schema=dict.fromkeys(columns))
    return info.with_columns(
        position=pl.Series(positions, dtype=pl.Int64), label=pl.Series(labels, dtype=pl.Int64)
    ).select("position", "label", *columns)


def write_members(decisions: Path, cluster_list: Path, members: pl.DataFrame) -> None:
    """The decisions (one row per member, by position) and the cluster list (size and kept position,
    largest first, then first seen: the order sample clusters are picked in)."""
    write_table(
        decisions,
        members.select(
            pl.col("position").cast(pl.Int64),
            pl.col("kept").cast(pl.Int64),
            pl.col("cluster").cast(pl.String),
            pl.col("size").cast(pl.Int64),
            pl.col("drop").cast(pl.Boolean),
        )
        .to_arrow()
        .cast(DECISIONS),
    )
    clusters = members.filter(~pl.col("drop")).sort(["size", "kept"], descending=[True, False])
    write_table(
        cluster_list,
        pa.table(
            {"size": clusters["size"].cast(pl.Int64).to_arrow(), "kept": clusters["kept"].cast(pl.Int64).to_arrow()}
        ).cast(CLUSTER_LIST),
    )


def counts(members: pl.DataFrame) -> dict[str, Any]:
    """What the summary needs of a set of whole clusters: counts, mergeable by `merge_counts`."""
    kept = members.filter(~pl.col("drop"))
    dropped = members.filter(pl.col("drop"))
    return {
        "clusters": kept.height,
        "duplicates_removed": dropped.height,
        "documents_in_clusters": members.height,
        "sizes": {str(size): n for size, n in kept.group_by("size").len().iter_rows()},
        "removed_by_source": {str(source): n for source, n in dropped.group_by("source").len().iter_rows()},
    }


def add_counts(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Sum two count dictionaries (nested dictionaries key by key)."""
    for key, value in part.items():
        if isinstance(value, dict):
            total[key] = add_counts(dict(total.get(key, {})), value)
        else:
            total[key] = total.get(key, 0) + value
    return total


def size_histogram(sizes: dict[str, int]) -> dict[str, int]:
    """Clusters per size bucket: 2, 3, 4-7, 8-15, ... (powers of two past 3), from clusters per size."""
    histogram: dict[str, int] = {}
    for size in sorted(map(int, sizes)):
        if size <= 3:
            key = str(size)
        else:
            low = 1 << (size.bit_length() - 1)
            key = f"{low}-{2 * low - 1}"
        histogram[key] = histogram.get(key, 0) + sizes[str(size)]
    return histogram


def summary(found: dict[str, Any]) -> dict[str, Any]:
    """The stage's summary from merged counts: documents, clusters, removals (overall and per
    source) and the cluster-size histogram."""
    sizes = found.get("sizes", {})
    return {
        "documents": sum(found.get("documents_by_source", {}).values()),
        "clusters": found.get("clusters", 0),
        "duplicates_removed": found.get("duplicates_removed", 0),
        "documents_in_clusters": found.get("documents_in_clusters", 0),
        "largest_cluster": max(map(int, sizes), default=0),
        "cluster_sizes": size_histogram(sizes),
        "documents_by_source": dict(sorted(found.get("documents_by_source", {}).items())),
        "removed_by_source": dict(sorted(found.get("removed_by_source", {}).items())),
    }


def sorted_clusters(path: Path) -> Iterator[tuple[int, int]]:
    """A cluster list's (-size, kept) in its order, a batch at a time."""
    for batch in iter_batches(path):
        yield from zip((-batch.column("size").to_numpy()).tolist(), batch.column("kept").to_numpy().tolist())


def pick_clusters(cluster_lists: Sequence[Path], count: int, seed: int) -> list[int]:
    """The kept positions of the sample clusters, in sample order: half the largest (ties: first
    seen), half at random (seeded) among the others. The lists, each sorted largest first, are
    merged as a stream: memory holds the picks, not the clusters."""
    total = sum(read_table(path).num_rows for path in cluster_lists)
    count = min(count, total)
    largest = (count + 1) // 2
    rest = total - largest
    others = np.random.default_rng(seed).choice(rest, count - largest, replace=False) if rest else np.zeros(0, int)
    wanted = list(range(largest)) + [int(i) + largest for i in np.sort(others)]
    if not wanted:
        return []
    ranks = {rank: sample for sample, rank in enumerate(wanted)}
    picked: dict[int, int] = {}
    for rank, (_, kept) in enumerate(heapq.merge(*(sorted_clusters(path) for path in cluster_lists))):
        if rank in ranks:
            picked[ranks[rank]] = kept
        if rank >= wanted[-1]:
            break
    return [picked[sample] for sample in range(len(wanted))]


def write_samples(
    keep_dir: Path,
    cluster_lists: Sequence[Path],
    decisions: Sequence[Path],
    scan: ScanRows,
    count: int,
    seed: int,
    similarity: Callable[[np.ndarray], np.ndarray | None],
) -> int:
    """Pick sample clusters (`pick_clusters`) and write their members to `clusters.arrow`: the kept
    document and up to three dropped ones each, with their similarity to the kept one."""
    keep_dir.mkdir(parents=True, exist_ok=True)
    chosen = pick_clusters(cluster_lists, count, seed)
    sample_of = pl.DataFrame(
        {"kept": chosen, "sample": list(range(len(chosen)))}, schema={"kept": pl.Int64, "sample": pl.Int64}
    )
    parts = [to_frame(read_table(path)).join(sample_of, on="kept") for path in decisions] if chosen else []
    shown = (
        pl.concat(parts)
        .sort(["sample", "drop", "position"])
        .group_by("sample", maintain_order=True)
        .head(MAX_SAMPLE_MEMBERS)
        if parts
        else pl.DataFrame(
            schema={
                **dict(zip(DECISIONS.names, [pl.Int64, pl.Int64, pl.String, pl.Int64, pl.Boolean])),
                "sample": pl.Int64,
            }
        )
    )
    positions = shown["position"].to_numpy()
    order = np.argsort(positions, kind="stable")
    info = scan.take(positions[order], ["id", "source"]) if len(positions) else None
    ids = np.empty(len(positions), object)
    sources = np.empty(len(positions), object)
    if info is not None:
        ids[order] = info.column("id").to_pylist()
        sources[order] = info.column("source").to_pylist()
    scores = similarity(np.stack([shown["kept"].to_numpy(), positions], axis=1)) if len(positions) else None
    table = pa.table(
        {
            "sample": pa.array(shown["sample"].to_numpy(), pa.int32()),
            "cluster": shown["cluster"].to_arrow().cast(pa.string()),
            "size": pa.array(shown["size"].to_numpy(), pa.int64()),
            "position": pa.array(positions, pa.int64()),
            "id": pa.array(ids.tolist(), pa.string()),
            "source": pa.array(sources.tolist(), pa.string()),
            "role": pa.array(np.where(shown["drop"].to_numpy(), "dropped", "kept"), pa.string()),
            "similarity": pa.array(scores, pa.float64())
            if scores is not None
            else pa.nulls(len(positions), pa.float64()),
        }
    )
    write_table(keep_dir / CLUSTERS_FILE, table)
    return len(chosen)
