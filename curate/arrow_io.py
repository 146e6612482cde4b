"""Thresher's own Arrow files: shards, global stages' scanned state, decisions, generated rows and
report samples. All are Arrow IPC *stream* files, written atomically (under a temporary name,
renamed when complete: a file under its final name is whole) and read back memory-mapped. A file on
object storage is read from a local copy (`curate.fs.local_copy`: downloaded once, checked against
the manifest's sha256 when one is given); written files reach object storage through
`curate.fs.Mirror.publish`.

Imports only pyarrow and xxhash (polars on demand): workers that apply decisions stay light. A file that is
truncated or corrupt, or does not match the checksum its manifest records, is an `InputError`
naming it (one line), never a traceback or rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curate import fs
from curate.errors import InputError, naming

if TYPE_CHECKING:
    import polars as pl

TMP_SUFFIX = ".tmp"


def tmp_path(path: Path) -> Path:
    """Where `path` is written until it is complete."""
    return path.with_name(path.name + TMP_SUFFIX)


def open_native(path: Path) -> pa.NativeFile:
    return pa.OSFile(str(path), "wb")


class StreamFile:
    """An Arrow IPC stream file being written: batches go to `tmp_path(path)`, renamed to `path` by
    `close()`. `open_file` opens the temporary file (shards pass a sink that hashes what it writes)."""

    def __init__(self, path: Path, schema: pa.Schema, open_file: Callable[[Path], Any] = open_native):
        self.path = Path(path)
        with naming(self.path):  # a full disk or a read-only folder names the file
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open_file(tmp_path(self.path))
            self.writer = pa.ipc.new_stream(self.file, schema)

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        with naming(self.path):
            self.writer.write(data)

    def close(self) -> None:
        with naming(self.path):
            self.writer.close()
            self.file.close()
            os.replace(tmp_path(self.path), self.path)

    def __enter__(self) -> StreamFile:
        return self

    def __exit__(self, error_type, *_) -> None:
        if error_type is None:
            self.close()
        else:  # leave no partial file behind
            self.writer.close()
            self.file.close()
            tmp_path(self.path).unlink(missing_ok=True)


def concat_batches(batches: list[pa.RecordBatch], schema: pa.Schema | None = None) -> pa.RecordBatch:
    """Record batches of one schema as one batch (one copy; a single batch is returned as it is)."""
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches, schema).combine_chunks().to_batches()[0]


def write_table(path: Path, table: pa.Table) -> None:
    """Write `table` to `path` atomically."""
    with StreamFile(path, table.schema) as out:
        out.write(table)


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    """A file's sha256 (or xxh3-128, as the readers record for input files) hex digest, read in
    blocks (memory stays at one block); local or remote."""
    return fs.digest(path, algorithm)


def verify_file(path: Path | str, sha256: str, size: int | None = None) -> None:
    """Raise InputError (one line, naming the file) unless `path` has the recorded size and sha256."""
    if not fs.is_file(path):
        raise InputError(f"{path}: listed in the manifest but missing")
    actual = fs.stat(path).size
    if size is not None and actual != size:
        raise InputError(f"{path}: size {actual} does not match the manifest ({size}): truncated?")
    if file_digest(path) != sha256:
        raise InputError(f"{path}: checksum does not match the manifest (the file was modified or corrupted)")


def readable(path: Path | str, sha256: str | None = None) -> Path:
    """A local path to memory-map for `path`: checked against `sha256` first when given (a remote
    file is downloaded into the cache and checked there)."""
    if fs.is_remote(path):
        return fs.local_copy(path, sha256)
    if sha256 is not None:
        verify_file(path, sha256)
    return fs.local_path(path)


@contextmanager
def unreadable_as_input_error(path: Path | str) -> Iterator[None]:
    """A file that is not a readable Arrow stream (truncated, corrupt) is one line naming it."""
    try:
        yield
    except (pa.ArrowInvalid, OSError, EOFError) as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise  # the file system's error (permission, missing, disk): not the file's content
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{path}: not a readable Arrow stream, truncated or corrupt ({first})") from None


def read_table(path: Path | str, columns: Sequence[str] | None = None, sha256: str | None = None) -> pa.Table:
    """The rows of a stream file (memory-mapped: zero-copy, pages read on demand), `columns` only if
    given. With `sha256`, the file is checked against it first (a corrupt file is never parsed)."""
    local = readable(path, sha256)
    with unreadable_as_input_error(path), pa.memory_map(str(local)) as source:
        table = pa.ipc.open_stream(source).read_all()
    return table if columns is None else table.select(list(columns))


def iter_batches(path: Path | str, sha256: str | None = None) -> Iterator[pa.RecordBatch]:
    """The record batches of a stream file, one at a time (memory-mapped). With `sha256` (a
    dataset's shard, as its manifest records it), the file is checked against it before its first
    batch is parsed: a modified or corrupt shard is an InputError naming it, never rows."""
    local = readable(path, sha256)
    with unreadable_as_input_error(path), pa.memory_map(str(local)) as source:
        yield from pa.ipc.open_stream(source)


def read_schema(path: Path | str, sha256: str | None = None) -> pa.Schema:
    """The schema of a stream file (no batch is read)."""
    local = readable(path, sha256) if fs.is_remote(path) else fs.local_path(path)
    with unreadable_as_input_error(path), pa.memory_map(str(local)) as source:
        return pa.ipc.open_stream(source).schema


def read_tables(
    paths: Sequence[Path], schema: pa.Schema | None = None, columns: Sequence[str] | None = None
) -> pa.Table:
    """The rows of several stream files (e.g. a global stage's scan files, one per task) as one
    table, in the given order; empty files (tasks with nothing to record) are skipped.

    With no rows at all the table is empty, with `schema`; a state whose columns depend on the
    stage's options may pass no schema, and then gets its `columns` typed null.
    """
    tables = [read_table(path, columns) for path in paths if Path(path).stat().st_size]
    if tables:
        return pa.concat_tables(tables)
    if schema is None:
        schema = pa.schema([(name, pa.null()) for name in columns or ()])
    empty = schema.empty_table()
    return empty if columns is None else empty.select(list(columns))


def read_frame(
    paths: Sequence[Path], schema: pa.Schema | None = None, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """`read_tables` as a polars DataFrame."""
    return to_frame(read_tables(paths, schema, columns))


def to_frame(table: pa.Table) -> pl.DataFrame:
    """An Arrow table as a polars DataFrame (`pl.from_arrow` is typed DataFrame | Series)."""
    import polars as pl

    frame = pl.from_arrow(table)
    if not isinstance(frame, pl.DataFrame):  # a table always gives a DataFrame
        raise TypeError(f"pl.from_arrow gave a {type(frame).__name__}, not a DataFrame")
    return frame


def task_share(path: Path, task: int, tasks: int) -> pa.RecordBatch | None:
    """Task `task`'s contiguous share (of `tasks`) of the rows in `path`, as one batch (None if it has none).

    Rows a global stage creates in `resolve` are emitted this way, spread over the apply pass's tasks.
    """
    table = read_table(path)
    lo, hi = table.num_rows * task // tasks, table.num_rows * (task + 1) // tasks
    if hi <= lo:
        return None
    return table.slice(lo, hi - lo).combine_chunks().to_batches()[0]
