"""Finding input files: `input.paths` entries (files, folders, globs, dataset folders) → `InputFile`s."""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from curate.errors import ConfigError
from curate.readers.files import COMPRESSIONS, SKIPPED_DIRS, detect_format
from curate.readers.formats import FORMATS


@dataclass(frozen=True)
class InputFile:
    """One input file (or one archive) and how to read it."""

    path: Path
    label: str  # path relative to its input entry, used in ids and messages
    source: str  # the `source` column value for its rows
    format: str
    size: int
    mtime_ns: int
    sha256: str = ""  # a dataset's shard: the checksum its manifest records (checked before reading)

    @property
    def estimated_bytes(self) -> int:
        """Uncompressed size estimate, for grouping files into tasks of similar work."""
        return self.size * 4 if self.path.suffix in COMPRESSIONS else self.size


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
    seen: set[Path] = set()
    for index, entry in enumerate(entries):
        entry = str(entry)
        checksums: dict[Path, str] = {}
        key = f"input.paths[{index}]"
        if any(ch in entry for ch in "*?["):
            matches = sorted(glob.glob(entry, recursive=True))
            if not matches:
                raise ConfigError(f"{key}: the glob '{entry}' matches no file")
            root = Path(entry.split("*")[0].split("?")[0].split("[")[0])
            root = root if root.is_dir() else root.parent
            candidates = [Path(m) for m in matches if Path(m).is_file()]
        else:
            path = Path(entry)
            if not path.exists():
                raise ConfigError(f"{key}: '{entry}' does not exist")
            if path.is_dir() and (path / "manifest.json").is_file():
                checksums = dataset_shards(path)
                candidates, root = list(checksums), path
            elif path.is_dir():
                candidates, root = list(walk(path)), path
            else:
                candidates, root = [path], path.parent
        src = source or source_name(entry)
        explicit = len(candidates) == 1 and Path(entry).is_file()
        for path in candidates:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if include and not explicit and not any(fnmatch.fnmatch(path.name, p) for p in include):
                skipped.append({"path": str(path), "reason": f"not matched by input.include ({', '.join(include)})"})
                continue
            fmt = "dataset" if path in checksums else None  # a shard of a dataset folder, in any output.format
            fmt = fmt or detect_format(path.name, forced_format)
            if fmt is None:
                if explicit:
                    raise ConfigError(
                        f"{key}: cannot tell the format of '{entry}' from its name; set input.format "
                        f"(one of: {', '.join(format_names())})"
                    )
                skipped.append({"path": str(path), "reason": "unknown format"})
                continue
            stat = path.stat()
            label = os.path.relpath(path, root) if root != path else path.name
            files.append(InputFile(path, label, src, fmt, stat.st_size, stat.st_mtime_ns, checksums.get(path, "")))
    if not files:
        raise ConfigError(f"input.paths: no readable input file found (skipped: {len(skipped)})")
    return files, skipped


def walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def dataset_shards(folder: Path) -> dict[Path, str]:
    """The data shards of a dataset folder written by Thresher, in manifest order, with their sha256."""
    from curate.manifest import Manifest

    return {folder / shard.path: shard.sha256 for shard in Manifest.read(folder).shards}
