"""Decisions of the dedup stages, as written by `resolve` and read by `apply` in each worker.

Kept apart from `clusters` (polars, scipy) so that workers applying decisions import only
pyarrow and numpy. Decisions are files of cluster members sorted by position (the partitions of
`exact_dedup` write one each, `minhash_dedup`'s driver one); a task reads its slice of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.arrow_io import read_table

ROW_MASK = np.int64(0xFFFFFFFF)
DECISIONS = pa.schema(
    [
        ("position", pa.int64()),
        ("kept", pa.int64()),
        ("cluster", pa.string()),
        ("size", pa.int64()),
        ("drop", pa.bool_()),
    ]
)
CLUSTER_LIST = pa.schema([("size", pa.int64()), ("kept", pa.int64())])  # one row per cluster, largest first
CLUSTERS_FILE = "clusters.arrow"  # sample clusters, in the stage's keep folder
SAMPLES_DIR = "samples"  # their texts, written while applying


class TaskDecisions:
    """The decisions of one task, loaded in a worker (cached one task at a time)."""

    def __init__(self, files: Sequence[Path], task: int):
        self.task = task
        low, high = np.int64(task) << np.int64(32), np.int64(task + 1) << np.int64(32)
        parts = []
        for path in files:
            table = read_table(path)
            positions = table.column("position").to_numpy()
            start, stop = np.searchsorted(positions, [low, high])
            if stop > start:
                parts.append(table.slice(int(start), int(stop - start)))
        table = pa.concat_tables(parts).sort_by("position") if parts else DECISIONS.empty_table()
        self.rows = table.column("position").to_numpy() & ROW_MASK
        self.cluster = table.column("cluster").combine_chunks()
        self.size = table.column("size").to_numpy()
        self.drop = table.column("drop").to_numpy(zero_copy_only=False)

    def annotate(self, rows: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """Per row of this task: its cluster (null if none), the cluster size (1 if none), and
        whether it is dropped."""
        if len(self.rows) == 0:
            return pa.nulls(len(rows), pa.string()), np.ones(len(rows), np.int64), np.zeros(len(rows), bool)
        index = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        member = self.rows[index] == rows
        cluster = pc.if_else(pa.array(member), self.cluster.take(pa.array(index)), pa.scalar(None, pa.string()))
        return cluster, np.where(member, self.size[index], 1), member & self.drop[index]
