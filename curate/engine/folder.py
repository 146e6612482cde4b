"""The output folder of a curation run: where each part lives, and when a rerun resumes it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.engine.plan import VOLATILE_KEYS
from curate.manifest import MANIFEST, Manifest, ManifestError
from curate.runfolder import RunFolder, RunRecord, without_keys, write_json_atomic
from curate.stages.base import GlobalStage

LOGS = "logs"


@dataclass
class Layout:
    out: Path

    @property
    def work(self) -> Path:
        return self.out / "_work"

    @property
    def run_file(self) -> Path:
        return self.work / "run.json"

    @property
    def logs(self) -> Path:
        return self.out / LOGS

    def task_log(self, index: int, task: int) -> Path:
        return self.logs / f"pass-{index}-task-{task:05d}.log"

    def pass_dir(self, index: int) -> Path:
        return self.work / f"pass-{index}"

    def marker(self, index: int, task: int) -> Path:
        return self.pass_dir(index) / f"task-{task:05d}.json"

    def data_dir(self, index: int, last: bool) -> Path:
        return self.out / "data" if last else self.pass_dir(index) / "data"

    def stage_dir(self, name: str) -> Path:
        return self.work / f"stage-{name}"

    def resolve_marker(self, name: str) -> Path:
        return self.stage_dir(name) / "resolve.json"

    def keep_dir(self, stage: GlobalStage) -> Path:
        return self.out / stage.keep_subdir


class CurationFolder(RunFolder):
    """A dataset folder being written: finished when it has a manifest; progress is a finished task."""

    what = "run"

    def __init__(self, layout: Layout):
        super().__init__(layout.out)
        self.layout = layout

    def previous(self) -> RunRecord | None:
        if (self.root / MANIFEST).is_file():
            try:
                manifest = Manifest.read(self.root)
            except ManifestError:
                return RunRecord(None, None, finished=True)
            return RunRecord(manifest.fingerprint, without_keys(manifest.config, VOLATILE_KEYS), finished=True)
        if self.layout.run_file.is_file():
            record = json.loads(self.layout.run_file.read_text())
            return RunRecord(record.get("fingerprint"), record.get("config"), finished=False)
        return None

    def has_progress(self) -> bool:
        return (self.root / MANIFEST).is_file() or any(self.layout.work.glob("pass-*/task-*.json"))

    def begin(self, fingerprint: str, config: dict[str, Any]) -> None:
        self.layout.work.mkdir(parents=True)
        write_json_atomic(self.layout.run_file, {"fingerprint": fingerprint, "config": config, "started": time.time()})
