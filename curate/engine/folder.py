"""The output folder of a curation run: where each part lives, and when a rerun resumes it."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.arrow_io import TMP_SUFFIX, file_digest
from curate.engine.plan import VOLATILE_KEYS
from curate.manifest import MANIFEST, InputRecord, Manifest, ManifestError
from curate.readers.sources import InputFile
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

    def scan_file(self, name: str, task: int) -> Path:
        return self.stage_dir(name) / "scan" / f"task-{task:05d}.arrow"

    def shuffle_file(self, name: str, task: int) -> Path:
        """What task `task` routed to the partitions of stage `name` (`GlobalStage.shuffle`)."""
        return self.stage_dir(name) / "shuffle" / f"task-{task:05d}.arrow"

    def partition_marker(self, name: str, step: str, partition: int) -> Path:
        return self.stage_dir(name) / "partitions" / step / f"p{partition:05d}.json"

    def partition_log(self, name: str, step: str, partition: int) -> Path:
        return self.logs / f"resolve-{name}-{step}-p{partition:05d}.log"

    def keep_dir(self, stage: GlobalStage) -> Path:
        return self.out / stage.keep_subdir


class CurationFolder(RunFolder):
    """A dataset folder being written: finished when it has a manifest; progress is a finished task.

    `files` are the run's inputs: before a rerun trusts finished work, each input a finished task
    read is hashed again and compared with what the task recorded (xxh3-128, or the sha256 of a
    dataset's shard): one pass over those inputs at disk speed."""

    what = "run"

    def __init__(self, layout: Layout, files: list[InputFile] | None = None):
        super().__init__(layout.out)
        self.layout = layout
        self.files = files or []

    def read_inputs(self) -> Iterator[InputRecord]:
        """What the run recorded of the inputs it read: the manifest's list, or the finished tasks'."""
        if (self.root / MANIFEST).is_file():
            yield from Manifest.read(self.root).input_files(self.root)
            return
        for marker in sorted(self.layout.pass_dir(0).glob("task-*.json")):
            for record in json.loads(marker.read_text())["files"]:
                yield InputRecord(**record)

    def changed_input(self) -> str | None:
        current = {str(file.path): file for file in self.files}
        for record in self.read_inputs():
            file = current.get(record.path)
            if file is None or record.skipped:
                continue
            if not file.path.is_file():
                return f"'{file.path}' is gone"
            expected, algorithm = (record.xxh3, "xxh3") if record.xxh3 else (record.sha256, "sha256")
            if expected and file_digest(file.path, algorithm) != expected:
                return f"the content of '{file.path}' differs from what the run read"
        return None

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

    def remove_temporary(self) -> None:
        """Remove what an interrupted run left half-written: files and folders under a temporary
        name (`*.tmp`: shards, JSON, a tokenizer folder being written). Safe: this process holds
        the folder's lock and no worker of an earlier run is alive (`RunFolder.lock`)."""
        for leftover in sorted(self.root.rglob(f"*{TMP_SUFFIX}"), reverse=True):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def begin(self, fingerprint: str, config: dict[str, Any]) -> None:
        self.layout.work.mkdir(parents=True)
        write_json_atomic(self.layout.run_file, {"fingerprint": fingerprint, "config": config, "started": time.time()})
