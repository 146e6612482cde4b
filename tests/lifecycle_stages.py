"""A stage that records its life cycle in files, to test that the engine sets up and tears down
every stage it uses, in every process (importable by Ray workers and spawned pool processes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pyarrow as pa

from curate.stages.base import MapStage, Resources


@dataclass
class Recorder(MapStage):
    """Copies rows; writes `setup-<pid>` and `teardown-<pid>` files to `folder` (defaults: none)."""

    resources: ClassVar[Resources] = Resources(cpus=1, memory_gb=0.1)

    folder: str = ""

    def setup(self) -> None:
        self.ready = True
        Path(self.folder, f"setup-{os.getpid()}").touch()
        self.stat_set(recorder_pid_seen=True)

    def teardown(self) -> None:
        Path(self.folder, f"teardown-{os.getpid()}").touch()

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        assert self.ready, "the engine calls setup() before the first batch"
        self.stat_update("batches")
        return batch
