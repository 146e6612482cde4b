"""Thresher's own Arrow files: shards, global stages' scanned state, decisions, generated rows and
report samples. All are Arrow IPC *stream* files, written atomically (under a temporary name,
renamed when complete: a file under its final name is whole) and read back memory-mapped; a
dataset's data shards may also be Parquet or JSON lines (`output.format`, written by
`curate.writers`), and `iter_batches` / `read_table` read every one of them by its suffix. A file on
object storage is read from a local copy (`curate.fs.local_copy`: downloaded once, checked against
the manifest's sha256 when one is given); written files reach object storage through
`curate.fs.Mirror.publish`.

Imports only pyarrow and xxhash (polars on demand): workers that apply decisions stay light. A file that is
truncated or corrupt, or does not match the checksum its manifest records, is an `InputError`
naming it (one line), never a traceback or rows.
"""

from __future__ import annotations

import base64
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
# The formats of a dataset's data shards (`output.format`), by file suffix.
SHARD_SUFFIXES = {"arrow": ".arrow", "parquet": ".parquet", "jsonl": ".jsonl"}
JSONL_BATCH_ROWS = 1000  # rows per record batch read back from JSON lines


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
    """A file that is not a readable Arrow stream or Parquet file (truncated, corrupt) is one line naming it."""
    try:
        yield
    except (pa.ArrowInvalid, OSError, EOFError) as error:
        if isinstance(error, OSError) and error.errno is not None:
            raise  # the file system's error (permission, missing, disk): not the file's content
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        what = "Parquet file" if shard_format(path) == "parquet" else "Arrow stream"
        raise InputError(f"{path}: not a readable {what}, truncated or corrupt ({first})") from None


def shard_format(path: Path | str) -> str:
    """The format of a shard file, by its suffix: arrow (IPC stream, also any other suffix), parquet, jsonl."""
    name = str(path)
    return next((fmt for fmt, suffix in SHARD_SUFFIXES.items() if name.endswith(suffix)), "arrow")


def encode_schema(schema: pa.Schema) -> str:
    """A schema as text (IPC-serialised, base64), for a manifest."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")


def decode_schema(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


def read_table(
    path: Path | str, columns: Sequence[str] | None = None, sha256: str | None = None, schema: pa.Schema | None = None
) -> pa.Table:
    """The rows of a stream file (memory-mapped: zero-copy, pages read on demand), or of a Parquet or
    JSON-lines shard (`schema`: what JSON lines are typed with), `columns` only if given. With
    `sha256`, the file is checked against it first (a corrupt file is never parsed)."""
    fmt = shard_format(path)
    if fmt == "parquet" and columns is not None:  # only the columns wanted are read and decompressed
        import pyarrow.parquet as pq

        local = readable(path, sha256)
        with unreadable_as_input_error(path), pa.memory_map(str(local)) as source:
            return pq.ParquetFile(source).read(columns=list(columns))
    if fmt != "arrow":
        batches = list(iter_batches(path, sha256, schema))
        table = pa.Table.from_batches(batches, schema=None if batches else schema or read_schema(path))
    else:
        local = readable(path, sha256)
        with unreadable_as_input_error(path), pa.memory_map(str(local)) as source:
            table = pa.ipc.open_stream(source).read_all()
    return table if columns is None else table.select(list(columns))


def iter_batches(
    path: Path | str, sha256: str | None = None, schema: pa.Schema | None = None
) -> Iterator[pa.RecordBatch]:
    """The record batches of a shard, one at a time: an Arrow stream (memory-mapped), a Parquet file
    (a row group at a time) or JSON lines typed by `schema` (required for them). With `sha256` (a
    dataset's shard, as its manifest records it), the file is checked against it before its first
    batch is parsed: a modified or corrupt shard is an InputError naming it, never rows."""
    local = readable(path, sha256)
    fmt = shard_format(path)
    if fmt == "parquet":
        yield from parquet_batches(local, str(path))
        return
    if fmt == "jsonl":
        if schema is None:
            raise ValueError(f"{path}: JSON lines are read with the dataset's schema (Manifest.data_schema)")
        yield from jsonl_batches(local, schema, str(path))
        return
    with unreadable_as_input_error(path), pa.memory_map(str(local)) as source:
        yield from pa.ipc.open_stream(source)


def parquet_batches(path: Path, name: str | None = None) -> Iterator[pa.RecordBatch]:
    """A Parquet shard's rows, a row group at a time (its Arrow schema is stored in the file);
    `name`: how errors name it (its URL, for a local copy of a remote file)."""
    import pyarrow.parquet as pq

    with unreadable_as_input_error(name or path), pa.memory_map(str(path)) as source:
        parquet = pq.ParquetFile(source)
        for index in range(parquet.num_row_groups):
            yield from parquet.read_row_group(index).to_batches()


def jsonl_batches(path: Path, schema: pa.Schema, name: str | None = None) -> Iterator[pa.RecordBatch]:
    """A JSON-lines shard's rows, typed by `schema` (JSON has no types of its own), in batches of
    JSONL_BATCH_ROWS rows; a line that is not a JSON object of the schema is an InputError naming it
    (`name`: its URL, for a local copy of a remote file)."""
    import orjson

    rows: list[dict] = []
    shown = name or path
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError as error:
                raise InputError(f"{shown}:{number}: not a JSON line ({error})") from None
            if len(rows) >= JSONL_BATCH_ROWS:
                yield typed_batch(shown, number, rows, schema)
                rows = []
    if rows:
        yield typed_batch(shown, number, rows, schema)


def typed_batch(path: Path | str, line: int, rows: list[dict], schema: pa.Schema) -> pa.RecordBatch:
    try:
        return pa.RecordBatch.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as error:
        raise InputError(f"{path}: the lines before {line + 1} do not fit the dataset's schema ({error})") from None


def read_schema(path: Path | str, sha256: str | None = None) -> pa.Schema:
    """The schema of a stream or Parquet file (no batch is read; a remote file: its local copy)."""
    local = readable(path, sha256) if fs.is_remote(path) else fs.local_path(path)
    if shard_format(path) == "parquet":
        import pyarrow.parquet as pq

        with unreadable_as_input_error(path):
            return pq.read_schema(str(local))
    with unreadable_as_input_error(path), pa.memory_map(str(local)) as source:
        return pa.ipc.open_stream(source).schema


def read_tables(
    paths: Sequence[Path], schema: pa.Schema | None = None, columns: Sequence[str] | None = None
) -> pa.Table:
    """The rows of several stream files (e.g. a global stage's scan files, one per task) as one
    table, in the given order; empty files (tasks with nothing to record) are skipped.

    With no rows at all the table is empty, with `schema`; a state whose columns depend on the
    stage's options may pass no schema, and then gets its `columns` typed null. JSON-lines shards are
    typed by `schema` (which may hold only the `columns` wanted).
    """
    tables = [read_table(path, columns, schema=schema) for path in paths if Path(path).stat().st_size]
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
