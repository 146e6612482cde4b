"""Finding input files: `input.paths` entries (files, folders, globs, dataset folders) → `InputFile`s."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

from curate import fs
from curate.errors import ConfigError
from curate.readers.files import COMPRESSIONS, SKIPPED_DIRS, detect_format, line_range, parquet_span
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
    # A part of a large file, read by a task of its own: bytes [start, end) of a line file (from the
    # first line starting in it to the first starting after it), or row groups [start, end) of a
    # Parquet file, whose first row is row `first_row` of the file. None: the whole file.
    part: tuple[int, int] | None = None
    first_row: int = 0

    @property
    def byte_positions(self) -> bool:
        """Whether its rows' positions are byte offsets (a line file read in parts), not line numbers."""
        return self.part is not None and self.format != "parquet"

    @property
    def span(self) -> tuple[int, int]:
        """The part as it is listed in `inputs.arrow` (0, 0: the whole file)."""
        return self.part or (0, 0)

    @property
    def name(self) -> str:
        return fs.basename(self.path)

    @property
    def estimated_bytes(self) -> int:
        """Uncompressed size estimate, for grouping files into tasks of similar work."""
        if self.part is not None and self.format != "parquet":
            return self.part[1] - self.part[0]
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
        explicit = candidates == [entry] and not fs.is_glob(entry)
        for path in candidates:
            identity = path if fs.is_remote(path) else os.path.realpath(path)
            if identity in seen:
                continue
            seen.add(identity)
            name = fs.basename(path)
            if include and not explicit and not any(fnmatch.fnmatch(name, p) for p in include):
                skipped.append(
                    {"path": fs.display(path), "reason": f"not matched by input.include ({', '.join(include)})"}
                )
                continue
            fmt = "dataset" if path in checksums else None  # a shard of a dataset folder, in any output.format
            fmt = fmt or detect_format(name, forced_format)
            if fmt is None:
                if explicit:
                    raise ConfigError(
                        f"{key}: cannot tell the format of '{entry}' from its name; set input.format "
                        f"(one of: {', '.join(format_names())})"
                    )
                skipped.append({"path": fs.display(path), "reason": "unknown format"})
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
    if fs.is_glob(entry):
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


# Formats whose records are lines: a large uncompressed file of these is read in byte ranges.
LINE_FORMATS = ("jsonl",)


def split_large_files(
    files: list[InputFile], task_bytes: int, split_bytes: int, text_unit: str = "file"
) -> list[InputFile]:
    """Large files as several parts, each about `task_bytes` (then tasks of their own):
    - an uncompressed JSON lines file (or a text file read a line per document) larger than
      `split_bytes`: byte ranges, each read from the first line that starts in it (so every line
      is read once, by the range it starts in); its rows' positions are byte offsets. Compressed
      files cannot be read from the middle and stay whole;
    - a Parquet file larger than `task_bytes`: runs of row groups (positions stay row numbers).
    Depends on the files and the options only, never on the number of workers."""
    parts: list[InputFile] = []
    for file in files:
        compressed = os.path.splitext(file.name)[1] in COMPRESSIONS
        lines = file.format in LINE_FORMATS or (file.format == "text" and text_unit == "line")
        if lines and not compressed and split_bytes and file.size > split_bytes:
            parts += [
                replace(file, part=(start, min(start + task_bytes, file.size)))
                for start in range(0, file.size, task_bytes)
            ]
        elif file.format == "parquet" and file.size > task_bytes:
            parts += parquet_parts(file, task_bytes)
        else:
            parts.append(file)
    return parts


def parquet_parts(file: InputFile, task_bytes: int) -> list[InputFile]:
    """Runs of consecutive row groups of about `task_bytes` (uncompressed), from the file's footer."""
    import pyarrow.parquet as pq

    try:
        with fs.open_binary(file.path) as handle:
            metadata = pq.read_metadata(handle)
    except Exception:  # not a readable Parquet file: its reader quarantines it, whole
        return [file]
    if metadata.num_row_groups < 2:
        return [file]
    parts, start, first_row, size, rows = [], 0, 0, 0, 0
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        size, rows = size + group.total_byte_size, rows + group.num_rows
        if size >= task_bytes or index == metadata.num_row_groups - 1:
            parts.append(replace(file, part=(start, index + 1), first_row=first_row))
            start, first_row, size, rows = index + 1, first_row + rows, 0, 0
    return parts


def content_digest(file: InputFile, algorithm: str = "xxh3") -> str:
    """The digest of what reading `file` hashes: the whole file, or the bytes of its part (a line
    range aligned to whole lines, or a Parquet part's row groups)."""
    if file.part is None:
        return fs.digest(file.path, algorithm)
    with fs.open_binary(file.path) as handle:
        if file.format == "parquet":
            import pyarrow.parquet as pq

            start, end = parquet_span(pq.read_metadata(handle), *file.part)
        else:
            start, end = line_range(handle, *file.part, file.size)
        return fs.digest_stream(fs.RangeReader(handle, start, end), algorithm)
