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

import json
import platform
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from curate.compose import resolved_dict
from curate.manifest import code_version
from curate.redact import redacted
from curate.runfolder import (
    MODEL_LINEAGE,
    RunFolder,
    RunRecord,
    fingerprint,
    read_model_lineage,
    without_keys,
    write_json_atomic,
)

RUN_FILE = "run.json"
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
    return {"path": str(Path(path).resolve()), "lineage": read_model_lineage(path)}


class RunDir(RunFolder):
    """The run directory of one training run (see the module docstring for its layout).

    Only the main process locks it and writes to it. A folder holding another run (other config or
    data) that trained something is refused unless `output.overwrite=true`; one where nothing was
    trained yet is replaced. A folder holding this run is continued: its start time is kept and
    the restart is appended to `resumed`.
    """

    what = "training run"

    def __init__(self, root: str | Path, is_main: bool = True):
        super().__init__(root)
        self.is_main = is_main
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

    def previous(self) -> RunRecord | None:
        if not self.run_file.is_file():
            return None
        record = json.loads(self.run_file.read_text())
        return RunRecord(
            record.get("fingerprint"),
            without_keys(record.get("config") or {}, VOLATILE_KEYS),
            finished=record.get("finished") is not None,
        )

    def has_progress(self) -> bool:
        return (self.checkpoints.is_dir() and any(self.checkpoints.iterdir())) or self.model_dir.is_dir()

    def begin(self, fingerprint: str, config: dict[str, Any]) -> None:
        """Nothing to write before `prepare` writes run.json."""

    def lock(self) -> None:
        if self.is_main:
            super().lock()

    def prepare(self, cfg: DictConfig, record: dict[str, Any]) -> None:
        """Check the folder against this run and write its lineage (main process)."""
        self.record = record
        if not self.is_main:
            return
        config = without_keys(record["config"], VOLATILE_KEYS)
        status = self.open(record["fingerprint"], config, overwrite=cfg.output.overwrite, resume=cfg.resume)
        if status != "fresh":  # this run, continued
            previous = json.loads(self.run_file.read_text())
            record["started"] = previous.get("started", record["started"])
            record["resumed"] = previous.get("resumed", []) + [now()]
        (self.root / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(record["config"])))
        write_json_atomic(self.run_file, record)

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
        "fingerprint": fingerprint(without_keys(resolved_dict(cfg), VOLATILE_KEYS), identity),
        "version": code_version(),
        "packages": package_versions(),
        **inputs,
        "config": redacted(OmegaConf.to_container(cfg, resolve=True)),  # credentials in URLs masked
        "world_size": world_size,
        "device": device,
        "started": now(),
        "resumed": [],
        "finished": None,
    }
    return record
