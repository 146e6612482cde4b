"""Stages for the fault tests (importable by `thresher` subprocesses and spawned workers as
`tests.fault_stages.<Class>`: no imports of conftest here)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from curate.stages.base import MapStage


@dataclass
class Endpoint(MapStage):
    """Copies rows; carries the options of a stage that calls a service (an endpoint URL and a
    token), as an LLM stage does: what the engine writes of them is what the test checks."""

    url: str = ""
    token: str = ""

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch
