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
    """The installed package's version and, in a git checkout of the source, the commit (with
    '.dirty' for local changes). An installed wheel has no git: its version is the package's."""
    from importlib.metadata import PackageNotFoundError, version

    from curate.resources import source_checkout

    try:
        installed = version("thresher")
    except PackageNotFoundError:  # a checkout on PYTHONPATH, never installed
        installed = __version__
    root = source_checkout()
    if root is None:
        return installed
    # Read-only git: --no-optional-locks keeps `git status` from taking .git/index.lock, which
    # concurrent runs (and the user's own git commands) would contend for.
    git = ["git", "--no-optional-locks", "-C", str(root)]
    try:
        found = subprocess.run([*git, "rev-parse", "--show-toplevel", "--short=12", "HEAD"], capture_output=True,
                               text=True, timeout=5).stdout.splitlines()
        if len(found) != 2 or Path(found[0]).resolve() != root:  # no repository of its own (an unpacked sdist)
            return installed
        commit = found[1]
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return installed
    return f"{installed}+{commit}{'.dirty' if dirty else ''}"


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
