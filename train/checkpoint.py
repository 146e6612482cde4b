"""Checkpoints of the pre-training loop: complete, atomic, and enough to resume bit-identically.

A checkpoint is a folder `checkpoints/step-NNNNNNNN/` holding what `accelerate` saves for the
prepared objects (model weights as safetensors, optimizer and scheduler state, the RNG states of
every process — python, numpy, torch, CUDA; FSDP shards when sharded) plus `state.json` (the step,
the data position and counters). Accelerate reads its files back with `torch.load(weights_only=True)`.

It is written under `step-NNNNNNNN.tmp/` and renamed when complete, so a run killed while saving
leaves either the previous checkpoint or the new one, never half of one; `latest` ignores `.tmp`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

PREFIX = "step-"
STATE = "state.json"


def checkpoint_dir(folder: Path, step: int) -> Path:
    return folder / f"{PREFIX}{step:08d}"


def complete_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and p.suffix != ".tmp" and (p / STATE).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest(folder: Path) -> Path | None:
    """The newest complete checkpoint in `folder`, or None."""
    found = complete_checkpoints(folder)
    return found[-1] if found else None


def save(accelerator, folder: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Save the prepared objects' state and `state` as checkpoint `step`; keep the newest `keep`.

    Called on every process (FSDP and multi-process RNG states need all of them).
    """
    final = checkpoint_dir(folder, step)
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(tmp / STATE, "w") as handle:
            json.dump(state, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in complete_checkpoints(folder)[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load(accelerator, path: Path) -> dict[str, Any]:
    """Restore the prepared objects and RNG states from checkpoint `path`; return its `state.json`."""
    accelerator.load_state(str(path))
    return json.loads((path / STATE).read_text())
