"""Keep the best-scoring fraction of the whole dataset by any score column (e.g. quality_score)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.arrow_io import read_table
from curate.rank_select import (
    GATHER_ROWS,
    GATHERED_ROW_BYTES,
    HISTOGRAM_BYTES,
    RankSelect,
    answer,
    descending_floats,
    float_of_descending,
)
from curate.stages.base import GlobalContext, GlobalStage, Load, Memory, PartitionContext, RowResult, split_by_reason

ROWS = "rows"  # the one group of the rank selection


@dataclass
class KeepTopFraction(GlobalStage):
    """Keep the `fraction` of rows with the highest `column` over the whole dataset.

    Exactly ceil(fraction x rows) rows are kept: ties at the cut go to the rows read first, so the
    result is deterministic. Missing or NaN scores rank last. Dropped rows: `below_top_fraction`.
    The cut-off score is in the run's manifest and report. The cut is found exactly, in partitions:
    each partition histograms its share of the scores and the driver narrows the cut from the
    merged histograms (`curate.rank_select`), so no step holds every score. Typical use: after
    `quality_classifier`, as DCLM kept the top 10% of its pool by fastText score.

    Defaults: column quality_score, fraction 0.1 (DCLM, Li et al. 2024).
    """

    config_name: ClassVar[str] = "top_fraction"

    column: str = "quality_score"
    fraction: float = 0.1

    def __post_init__(self) -> None:
        self._cut: tuple[float, int] | None = None
        self._keep_all = self._keep_none = False

    def validate(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction: must be within [0, 1]")

    def required_columns(self) -> tuple[str, ...]:
        return ("id", self.column)

    def scores(self, batch: pa.RecordBatch) -> np.ndarray:
        values = batch.column(self.column).cast(pa.float64()).to_numpy(zero_copy_only=False)
        return np.where(np.isnan(values), -np.inf, values)  # nulls arrive as NaN

    def memory(self, load: Load) -> Memory:
        """A partition reads one task's scores at a time (score, position, key, weight: 32 B a row)
        into a histogram; the driver merges histograms and sorts at most GATHER_ROWS rows."""
        return Memory(partition=load.task_documents * 32 + HISTOGRAM_BYTES, driver=GATHER_ROWS * GATHERED_ROW_BYTES)

    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.Table:
        return pa.table({"score": self.scores(batch), "position": pa.array(positions, pa.int64())})

    def resolve(self, ctx: GlobalContext) -> None:
        select = RankSelect(ctx.map_partitions)
        n = select.totals().get(ROWS, (0, 0))[0]
        keep = min(n, math.ceil(self.fraction * n))
        decision: dict = {"rows": n, "kept": keep, "fraction": self.fraction, "column": self.column}
        if 0 < keep < n:
            # the keep-th row in the order (score descending, position ascending)
            score, position = select.select({ROWS: keep})[ROWS].key
            decision.update(cutoff_score=float_of_descending(score), cutoff_position=position)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        (ctx.work_dir / "cutoff.json").write_text(json.dumps(decision))
        self.stat_set(**decision)

    def resolve_partition(self, ctx: PartitionContext) -> dict:
        """A step of the rank selection over this partition's share of the scores, a file at a time."""
        files, _ = ctx.scan_share()

        def chunks():
            for path in files:
                table = read_table(path, ["score", "position"])
                weights = np.ones(table.num_rows, np.int64)
                keys = descending_floats(table.column("score").to_numpy())
                yield {ROWS: (keys, table.column("position").to_numpy().astype(np.uint64), weights)}

        return answer(ctx.request, chunks())

    def load(self, ctx: GlobalContext) -> None:
        decision = json.loads((ctx.work_dir / "cutoff.json").read_text())
        self._keep_none = decision["kept"] == 0
        self._keep_all = decision["kept"] == decision["rows"]
        if "cutoff_score" in decision:
            self._cut = (decision["cutoff_score"], decision["cutoff_position"])

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        if self._keep_all:
            keep = np.ones(batch.num_rows, dtype=bool)
        elif self._keep_none:
            keep = np.zeros(batch.num_rows, dtype=bool)
        else:
            assert self._cut is not None  # load() sets it unless every row or none is kept
            score, position = self._cut
            values = self.scores(batch)
            keep = (values > score) | ((values == score) & (positions <= position))
        reasons = pc.if_else(pa.array(keep), pa.scalar(None, pa.string()), "below_top_fraction")
        return split_by_reason(batch, reasons)
