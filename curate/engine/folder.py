"""The output folder of a curation run: where each part lives, and when a rerun resumes it.

An output folder on object storage (`output.dir=s3://...`) is written through a local staging
folder on each machine (`curate.fs.Mirror`): every file is written locally, atomically, then
published (uploaded: an object appears whole or not at all); a task's marker is published after
its shards, and the manifest after everything else. The object store is the truth: what a rerun
resumes, and what each worker reads (the previous pass's shards, a global stage's decisions), comes
from there, so no two machines need to share a filesystem.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate import fs
from curate.arrow_io import TMP_SUFFIX
from curate.engine.plan import VOLATILE_KEYS
from curate.errors import InputError
from curate.manifest import MANIFEST, InputRecord, Manifest, ManifestError
from curate.readers.sources import InputFile, content_digest
from curate.runfolder import RunFolder, RunRecord, without_keys, write_json_atomic
from curate.stages.base import GlobalStage

LOGS = "logs"


# Names the staging folder of this process's machine: the driver's, the local pool's workers', a
# Ray node's (`curate.executors.ray` sets it in its actors).
STAGING_ROLE_ENV = "THRESHER_STAGING_ROLE"


@dataclass
class Layout:
    """Where each part of a run's output folder lives. `out` is the local folder this process
    writes (the output folder itself, or its staging folder on this machine when `location` is on
    object storage); `mirror` publishes and fetches between the two."""

    location: str
    mirror: fs.Mirror = dataclasses.field(default=None)  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        self.location = str(self.location)
        if self.mirror is None:
            self.mirror = fs.Mirror.of(self.location)

    @classmethod
    def of(cls, location: str, role: str = "driver") -> Layout:
        """The layout of the output folder `location` for this process (`role`: whose staging folder)."""
        mirror = fs.Mirror.of(location)
        if mirror.remote is not None:
            mirror = fs.Mirror(fs.staging_folder(mirror.remote) / role, mirror.remote)
        return cls(location, mirror)

    def on_this_machine(self) -> Layout:
        """This layout with this worker process's own staging folder (remote outputs): processes
        never share a staging folder, so each publishes exactly what it wrote and removes it when done."""
        if self.mirror.remote is None:
            return self
        return Layout.of(self.location, f"{os.environ.get(STAGING_ROLE_ENV, 'workers')}-{os.getpid()}")

    @property
    def out(self) -> Path:
        return self.mirror.local

    @property
    def remote(self) -> bool:
        return self.mirror.remote is not None

    @property
    def work(self) -> Path:
        return self.out / "_work"

    @property
    def run_file(self) -> Path:
        return self.work / "run.json"

    @property
    def failed(self) -> Path:
        """Written when a run stops on what it read (`input.max_quarantine_frac`): its work is not progress."""
        return self.work / "failed.json"

    def input_failure(self, message: str) -> InputError:
        """Mark the run failed on what it read (see `failed`); the error to raise."""
        write_json_atomic(self.failed, {"error": message, "time": time.time()})
        self.mirror.publish(self.failed)
        return InputError(message)

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

    def partitions_dir(self, name: str) -> Path:
        """What the partitions of stage `name`'s resolve write, a folder per step (the same folder
        as `GlobalContext.partition_file`'s)."""
        return self.stage_dir(name) / "partitions"

    def partition_marker(self, name: str, step: str, partition: int) -> Path:
        return self.partitions_dir(name) / step / f"p{partition:05d}.json"

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
        super().__init__(layout.out, layout.mirror)
        self.layout = layout
        self.files = files or []

    def finished(self) -> bool:
        return self.mirror.exists(self.root / MANIFEST)

    def read_inputs(self) -> Iterator[InputRecord]:
        """What the run recorded of the inputs it read: the manifest's list, or the finished tasks'."""
        if self.finished():
            yield from Manifest.read(self.layout.location).input_files(self.layout.location)
            return
        for marker in self.mirror.glob(self.layout.pass_dir(0), "task-*.json"):
            for record in json.loads(self.mirror.read_text(marker))["files"]:
                record.pop("skipped_members", None)  # archive members not read: nothing to check
                yield InputRecord(**record)

    def changed_input(self) -> str | None:
        current = {(fs.display(file.path), *file.span): file for file in self.files}
        for record in self.read_inputs():
            file = current.get((record.path, record.start, record.end))
            if file is None or record.skipped:
                continue
            if not fs.is_file(file.path):
                return f"'{file.path}' is gone"
            expected, algorithm = (record.xxh3, "xxh3") if record.xxh3 else (record.sha256, "sha256")
            if expected and content_digest(file, algorithm) != expected:
                return f"the content of '{file.path}' differs from what the run read"
        return None

    def previous(self) -> RunRecord | None:
        if self.finished():
            try:
                manifest = Manifest.read(self.layout.location)
            except ManifestError:
                return RunRecord(None, None, finished=True)
            return RunRecord(manifest.fingerprint, without_keys(manifest.config, VOLATILE_KEYS), finished=True)
        if self.mirror.exists(self.layout.run_file):
            record = json.loads(self.mirror.read_text(self.layout.run_file))
            return RunRecord(record.get("fingerprint"), record.get("config"), finished=False)
        return None

    def has_progress(self) -> bool:
        """A manifest, or a finished task of a run that did not fail on its input (one that did is
        kept for inspection, and replaced by a run with other options)."""
        if self.finished():
            return True
        return not self.mirror.exists(self.layout.failed) and bool(
            self.mirror.glob(self.layout.work, "pass-*/task-*.json")
        )

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
        self.layout.work.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.layout.run_file, {"fingerprint": fingerprint, "config": config, "started": time.time()})
        self.mirror.publish(self.layout.run_file)
