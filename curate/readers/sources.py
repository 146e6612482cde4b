"""Finding input files: `input.paths` entries (files, folders, globs, dataset folders) → `InputFile`s."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass

from curate import fs
from curate.errors import ConfigError
from curate.readers.files import COMPRESSIONS, SKIPPED_DIRS, detect_format
from curate.readers.formats import FORMATS


@dataclass(frozen=True)
class InputFile:
    """One input file (or one archive) and how to read it: a local path or a URL (`curate.fs`)."""

    path: str
    label: str  # path relative to its input entry, used in ids and messages
    source: str  # the `source` column value for its rows
    format: str
    size: int
    version: str  # changes whenever the file is written: local mtime (ns), an object's ETag or generation
    sha256: str = ""  # a dataset's shard: the checksum its manifest records (checked before reading)

    @property
    def name(self) -> str:
        return fs.basename(self.path)

    @property
    def estimated_bytes(self) -> int:
        """Uncompressed size estimate, for grouping files into tasks of similar work."""
        return self.size * 4 if os.path.splitext(self.name)[1] in COMPRESSIONS else self.size


def format_names() -> list[str]:
    """The formats `input.format` accepts (every reader in `readers.formats.FORMATS`)."""
    return list(FORMATS)


def source_name(entry: str) -> str:
    """A source name for an input entry: a file's name without extensions, or a folder's name."""
    base = entry.rstrip("/").split("*")[0].rstrip("/") or "input"
    name = os.path.basename(base) or "input"
    while True:
        stem, ext = os.path.splitext(name)
        if not ext or not stem:
            return name
        name = stem


def expand_paths(
    entries: list[str], forced_format: str = "auto", source: str | None = None, include: Sequence[str] = ()
) -> tuple[list[InputFile], list[dict]]:
    """Resolve `input.paths` entries (files, folders, globs) into input files, in a stable order.

    Returns the files and the ones skipped (found in a folder or by a glob: an unknown format, or a
    name that matches none of the `include` patterns; a file named on its own is always read).
    A path that does not exist, or a glob matching nothing, is a ConfigError before any work.
    """
    files: list[InputFile] = []
    skipped: list[dict] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        entry = str(entry)
        checksums: dict[str, str] = {}
        key = f"input.paths[{index}]"
        try:
            candidates, root, is_dataset = entry_files(entry, key)
        except (PermissionError, FileNotFoundError) as error:
            raise ConfigError(f"{key}: '{entry}' cannot be read ({error})") from None
        if is_dataset:
            checksums = dataset_shards(root)
            candidates = list(checksums)
        src = source or source_name(entry)
        explicit = candidates == [entry] and not any(ch in entry for ch in "*?[")
        for path in candidates:
            identity = path if fs.is_remote(path) else os.path.realpath(path)
            if identity in seen:
                continue
            seen.add(identity)
            name = fs.basename(path)
            if include and not explicit and not any(fnmatch.fnmatch(name, p) for p in include):
                skipped.append({"path": path, "reason": f"not matched by input.include ({', '.join(include)})"})
                continue
            fmt = "dataset" if is_dataset and name.endswith(".arrow") else detect_format(name, forced_format)
            if fmt is None:
                if explicit:
                    raise ConfigError(
                        f"{key}: cannot tell the format of '{entry}' from its name; set input.format "
                        f"(one of: {', '.join(format_names())})"
                    )
                skipped.append({"path": path, "reason": "unknown format"})
                continue
            found = fs.stat(path)
            label = fs.relative(path, root) if root != path else name
            files.append(InputFile(path, label, src, fmt, found.size, found.version, checksums.get(path, "")))
    if not files:
        raise ConfigError(f"input.paths: no readable input file found (skipped: {len(skipped)})")
    return files, skipped


def entry_files(entry: str, key: str) -> tuple[list[str], str, bool]:
    """The files an `input.paths` entry names (a file, a folder, a glob), the root their labels are
    relative to, and whether the entry is a Thresher dataset folder (then its shards are read)."""
    if any(ch in entry for ch in "*?["):
        matches = fs.glob(entry)
        if not matches:
            raise ConfigError(f"{key}: the glob '{entry}' matches no file")
        root = entry.split("*")[0].split("?")[0].split("[")[0]
        root = root.rstrip("/") if root.endswith("/") or fs.is_dir(root) else fs.parent(root)
        return [m for m in matches if fs.is_file(m)], root, False
    if not fs.exists(entry):
        raise ConfigError(f"{key}: '{entry}' does not exist")
    if fs.is_dir(entry):
        root = entry.rstrip("/")
        if fs.is_file(fs.join(root, "manifest.json")):
            return [], root, True
        return list(fs.walk(root, SKIPPED_DIRS)), root, False
    return [entry], fs.parent(entry), False


def dataset_shards(folder: str) -> dict[str, str]:
    """The data shards of a dataset folder written by Thresher, in manifest order, with their sha256."""
    from curate.manifest import Manifest

    return {fs.join(folder, shard.path): shard.sha256 for shard in Manifest.read(folder).shards}
