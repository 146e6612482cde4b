"""The manifest: what a dataset folder holds and how it was made.

`manifest.json` is written last, atomically: a folder with a manifest is a complete dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from curate import __version__
from curate.errors import ThresherError

MANIFEST = "manifest.json"


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ThresherError(f"'{folder}' is not a Thresher dataset (no {MANIFEST})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ThresherError(f"{path}: not valid JSON ({error})") from None


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def code_version() -> str:
    """The package version and, in a git checkout, the commit (with '+dirty' for local changes)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{__version__}+{commit}{'.dirty' if dirty else ''}" if commit else __version__


def verify_shards(folder: str | Path, manifest: dict | None = None) -> None:
    """Check every shard's size and sha256 against the manifest; raise ThresherError on a mismatch."""
    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    for shard in manifest["shards"]:
        path = folder / shard["path"]
        if not path.is_file():
            raise ThresherError(f"{path}: shard listed in the manifest is missing")
        if path.stat().st_size != shard["bytes"]:
            raise ThresherError(f"{path}: size {path.stat().st_size} does not match the manifest ({shard['bytes']})")
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        if digest.hexdigest() != shard["sha256"]:
            raise ThresherError(f"{path}: checksum does not match the manifest (the shard was modified or corrupted)")
