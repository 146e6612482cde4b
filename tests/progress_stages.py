"""A stage that records, at each record batch, what its worker process has reported to the live
progress counters so far: evidence that progress moves while a task streams, not when it ends."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from curate.executors import counters
from curate.stages.base import MapStage


@dataclass
class ProgressProbe(MapStage):
    """Copies rows; records the rows reported by its process before each batch reached it."""

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        seen = self.stats.details.get("reported_rows", [])
        self.stat_set(reported_rows=[*seen, counters.reported()[0]])
        return batch
