"""The run directory and the lineage it records.

Layout of `output.dir`:
    run.json            lineage: task, fingerprint, code version, package versions, the manifests of
                        the data trained on (fingerprint, version, every shard's sha256), tokenizer
                        and base-model lineage, resolved config, device, start/resume/finish times
    config.yaml         the resolved config
    metrics.jsonl       one JSON object per logged step
    checkpoints/        resumable state (pretrain: step-NNNNNNNN/, trl tasks: checkpoint-N/)
    model/              the final model + tokenizer + thresher_lineage.json (a copy of run.json)
    .lock               held (flock) by the running main process

A model folder carries its run's lineage, so a run that starts from it (`model.path`) records the
whole chain: RLHF policy -> SFT model -> pre-trained model -> the curation runs of every dataset.
A folder holding a different run (other config or data) is refused unless `output.overwrite=true`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from curate.errors import OutputError
from curate.manifest import code_version, write_json_atomic

RUN_FILE = "run.json"
MODEL_LINEAGE = "thresher_lineage.json"
# Options that change how a run is carried out or reported, not what it computes.
VOLATILE_KEYS = ("output.overwrite", "resume", "log.report_to", "checkpoint.keep", "trainer.cpu_threads")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def package_versions() -> dict[str, str]:
    import importlib.metadata as metadata

    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "accelerate", "datasets", "peft", "tokenizers", "pyarrow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def model_lineage(path: str | Path | None) -> dict[str, Any] | None:
    """The lineage of a model folder written by a Thresher run (None for a folder from elsewhere)."""
    if path is None:
        return None
    file = Path(path) / MODEL_LINEAGE
    lineage = json.loads(file.read_text()) if file.is_file() else None
    return {"path": str(Path(path).resolve()), "lineage": lineage}


def fingerprint(cfg: DictConfig, inputs: list[dict[str, Any]]) -> str:
    """A hash of the resolved config (without volatile keys) and the identity of every input."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for key in VOLATILE_KEYS:
        *parents, name = key.split(".")
        node = config
        for parent in parents:
            node = node.get(parent, {})
        node.pop(name, None)
    blob = json.dumps({"config": config, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class RunDir:
    """The run directory of one training run (see the module docstring for its layout)."""

    def __init__(self, root: str | Path, is_main: bool = True):
        self.root = Path(root)
        self.is_main = is_main
        self.lock_handle = None
        self.record: dict[str, Any] = {}

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    def lock(self) -> None:
        """Hold an exclusive lock on the folder for the life of the process (main process only)."""
        if not self.is_main:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock_handle = open(self.root / ".lock", "w")
        try:
            fcntl.flock(self.lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"output.dir: '{self.root}' is in use by another training run") from None

    def unlock(self) -> None:
        if self.lock_handle is not None:
            fcntl.flock(self.lock_handle, fcntl.LOCK_UN)
            self.lock_handle.close()
            self.lock_handle = None

    def prepare(self, cfg: DictConfig, record: dict[str, Any]) -> None:
        """Check the folder against this run and write its lineage (main process).

        A folder with checkpoints or a model of another run (different fingerprint) is cleared with
        `output.overwrite`, refused otherwise; one where nothing was trained yet is reused. A folder
        holding this run is continued: its start time is kept and the restart is appended to `resumed`.
        """
        self.record = record
        if not self.is_main:
            return
        previous = json.loads(self.run_file.read_text()) if self.run_file.is_file() else None
        if previous is None and any(child.name != ".lock" for child in self.root.iterdir()):
            raise OutputError(f"output.dir: '{self.root}' is not empty and holds no training run; "
                              "choose another output.dir")
        has_state = (self.checkpoints.is_dir() and any(self.checkpoints.iterdir())) or self.model_dir.is_dir()
        same_run = previous is not None and previous.get("fingerprint") == record["fingerprint"]
        if has_state and (not same_run or not cfg.resume):
            if not cfg.output.overwrite:
                reason = ("holds a different run (config or data changed)" if not same_run
                          else "holds checkpoints of this run and resume=false")
                raise OutputError(f"output.dir: '{self.root}' {reason}; "
                                  "set output.overwrite=true or choose another output.dir")
            self.clear()
            previous = None
        elif not same_run:  # nothing trained yet (an earlier attempt failed before its first checkpoint)
            self.clear()
            previous = None
        if previous is not None:
            record["started"] = previous.get("started", record["started"])
            record["resumed"] = previous.get("resumed", []) + [now()]
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        write_json_atomic(self.run_file, record)

    def clear(self) -> None:
        """Remove everything a previous run left (but the lock file this process holds)."""
        for child in self.root.iterdir():
            if child.name == ".lock":
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def log_metrics(self, metrics: dict[str, Any]) -> None:
        """Append one line to metrics.jsonl (main process)."""
        if not self.is_main:
            return
        with open(self.root / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(metrics, default=float) + "\n")

    def finish(self, summary: dict[str, Any]) -> None:
        """Record the end of the run in run.json and copy the lineage into model/ (main process)."""
        if not self.is_main:
            return
        self.record.update(finished=now(), summary=summary)
        write_json_atomic(self.run_file, self.record)
        if self.model_dir.is_dir():
            write_json_atomic(self.model_dir / MODEL_LINEAGE, self.record)


def run_record(cfg: DictConfig, inputs: dict[str, Any], world_size: int, device: str) -> dict[str, Any]:
    """The lineage record of a run: what it trains on, with which code and config."""
    identity = [inputs.get(key) for key in sorted(inputs)]
    record = {
        "task": cfg.task.name,
        "fingerprint": fingerprint(cfg, identity),
        "version": code_version(),
        "packages": package_versions(),
        **inputs,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "world_size": world_size,
        "device": device,
        "started": now(),
        "resumed": [],
        "finished": None,
    }
    return record
