"""Decisions of the dedup stages, as written by `resolve` and read by `apply` in each worker.

Kept apart from `clusters` (polars, scipy) so that workers applying decisions import only
pyarrow and numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.arrow_io import read_table

ROW_MASK = np.int64(0xFFFFFFFF)
DECISIONS = pa.schema([("row", pa.int64()), ("cluster", pa.string()), ("size", pa.int64()), ("drop", pa.bool_())])
CLUSTERS_FILE = "clusters.arrow"  # sample clusters, in the stage's keep folder
SAMPLES_DIR = "samples"  # their texts, written while applying


def decision_path(directory: Path, task: int) -> Path:
    return directory / f"task-{task:05d}.arrow"


class TaskDecisions:
    """The decisions of one task, loaded in a worker (cached one task at a time)."""

    def __init__(self, directory: Path, task: int):
        path = decision_path(directory, task)
        self.task = task
        if path.is_file():
            table = read_table(path)
            self.rows = table.column("row").to_numpy()
            self.cluster = table.column("cluster").combine_chunks()
            self.size = table.column("size").to_numpy()
            self.drop = table.column("drop").to_numpy(zero_copy_only=False)
        else:
            self.rows = np.zeros(0, np.int64)
            self.cluster = pa.array([], pa.string())
            self.size = np.zeros(0, np.int64)
            self.drop = np.zeros(0, bool)

    def annotate(self, rows: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """Per row of this task: its cluster (null if none), the cluster size (1 if none), and
        whether it is dropped."""
        if len(self.rows) == 0:
            return pa.nulls(len(rows), pa.string()), np.ones(len(rows), np.int64), np.zeros(len(rows), bool)
        index = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        member = self.rows[index] == rows
        cluster = pc.if_else(pa.array(member), self.cluster.take(pa.array(index)), pa.scalar(None, pa.string()))
        return cluster, np.where(member, self.size[index], 1), member & self.drop[index]
