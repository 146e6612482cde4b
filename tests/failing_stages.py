"""Stages that fail on purpose, to test how the engine reports failures (importable by a
`thresher` subprocess as `tests.failing_stages.<Class>`: no imports of conftest here)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from curate.stages.base import GlobalStage, MapStage


@dataclass
class FailingResolve(GlobalStage):
    """A global stage whose resolve step fails (defaults: none)."""

    def scan(self, batch, positions):
        return pa.record_batch({"pos": positions})

    def resolve(self, ctx):
        raise ValueError("resolve broke on purpose")


@dataclass
class FailingRow(MapStage):
    """A row stage that fails on its first batch, as a bug would."""

    def transform(self, batch):
        raise ZeroDivisionError("a bug in a stage")
