"""Writing shards: declared schema, size-based rollover, record batches of a target size, checksum
while writing, and atomic completion (written under a temporary name and renamed when complete).

A dataset's data shards are in `output.format`: Arrow IPC streams (`curate.arrow_io.StreamFile`,
the default: what `datasets.Dataset.from_file` and the trainers memory-map), Parquet (`ParquetShard`:
what DuckDB, Spark, polars' and pyarrow's lazy scans read) or JSON lines (`JsonlShard`). Everything
else Thresher writes (rejects, quarantine, scan state, intermediate passes) is an Arrow stream.
`curate.arrow_io.iter_batches` reads each of them back."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import orjson
import pyarrow as pa

from curate.arrow_io import SHARD_SUFFIXES, StreamFile, concat_batches, tmp_path
from curate.errors import naming
from curate.schema import conform

OUTPUT_FORMATS = tuple(SHARD_SUFFIXES)  # arrow, parquet, jsonl
PARQUET_COMPRESSION = "zstd"  # read by pyarrow, polars, DuckDB, Spark 3+ and `datasets`


class HashingFile:
    """A binary file that sha256-hashes and counts what is written to it."""

    def __init__(self, path: Path):
        self.handle = open(path, "wb")
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self.handle.write(view)
        self.sha256.update(view)
        self.size += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self.handle.flush()

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        if not self.closed:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            self.closed = True


class ShardFile(Protocol):
    """A shard being written: batches go to a temporary file (`file` hashes and counts them), renamed
    to `path` by `close()`."""

    path: Path
    file: HashingFile

    def write(self, data: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


class ParquetShard:
    """A Parquet shard: each write is a row group (the writer's gathered batches), zstd-compressed;
    the Arrow schema is stored in the file, so it reads back with exactly the declared types."""

    def __init__(self, path: Path, schema: pa.Schema):
        import pyarrow.parquet as pq

        self.path = Path(path)
        with naming(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = HashingFile(tmp_path(self.path))
            self.writer = pq.ParquetWriter(self.file, schema, compression=PARQUET_COMPRESSION)

    def write(self, data: pa.RecordBatch) -> None:
        with naming(self.path):
            self.writer.write_batch(data)

    def close(self) -> None:
        with naming(self.path):
            self.writer.close()
            self.file.close()
            os.replace(tmp_path(self.path), self.path)


class JsonlShard:
    """A JSON-lines shard: one object per row (conversations as lists of {role, content}); JSON has
    no NaN (written as null) nor bytes (the plan refuses binary columns for this format)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = Path(path)
        with naming(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = HashingFile(tmp_path(self.path))

    def write(self, data: pa.RecordBatch) -> None:
        lines = b"".join(orjson.dumps(row) + b"\n" for row in data.to_pylist())
        with naming(self.path):
            self.file.write(lines)

    def close(self) -> None:
        with naming(self.path):
            self.file.close()
            os.replace(tmp_path(self.path), self.path)


def open_shard_file(path: Path, schema: pa.Schema, fmt: str) -> ShardFile:
    """A shard of `fmt` (arrow, parquet, jsonl) being written to `path`."""
    if fmt == "parquet":
        return ParquetShard(path, schema)
    if fmt == "jsonl":
        return JsonlShard(path, schema)
    return StreamFile(path, schema, open_file=HashingFile)


class ShardWriter:
    """Writes batches with one declared schema to `<dir>/<prefix>-NNN.<format's suffix>`, rolling
    over past `max_bytes`.

    Small batches (a short file's rows, the few rows a filter kept) are gathered and written as
    one record batch of about `batch_rows` rows or `batch_bytes` bytes: a shard's size is its data,
    not the per-batch overhead of many tiny batches. Memory: one pending batch per writer.
    `close()` returns what was written: [{path (relative to `root`), rows, bytes, sha256}].
    Nothing is written for a writer that received no rows.
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        schema: pa.Schema,
        max_bytes: int,
        root: Path,
        batch_rows: int = 1000,
        batch_bytes: int = 32 << 20,
        fmt: str = "arrow",
    ):
        self.directory, self.prefix, self.schema = Path(directory), prefix, schema
        self.max_bytes, self.root = max_bytes, Path(root)
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.format = fmt
        self.shards: list[dict] = []
        self.stream: ShardFile | None = None
        self.rows = 0
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = self.pending_bytes = 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        if isinstance(batch, pa.Table):
            for chunk in batch.to_batches():
                self.write(chunk)
            return
        self.pending.append(conform(batch, self.schema))
        self.pending_rows += batch.num_rows
        self.pending_bytes += batch.nbytes
        written = self.stream.file.size if self.stream is not None else 0
        if (
            self.pending_rows >= self.batch_rows
            or self.pending_bytes >= self.batch_bytes
            or written + self.pending_bytes >= self.max_bytes  # the shard is full: roll over on time
        ):
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as one record batch."""
        if not self.pending:
            return
        batch = concat_batches(self.pending, self.schema)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0
        while batch.num_rows:
            stream = self.open_shard() if self.stream is None else self.stream
            room = self.max_bytes - stream.file.size
            rows = batch.num_rows  # as many as fit before the shard is full (at least one)
            if batch.nbytes > room:
                rows = max(1, batch.num_rows * max(room, 0) // max(batch.nbytes, 1))
            stream.write(batch.slice(0, rows))
            self.rows += rows
            batch = batch.slice(rows)
            if stream.file.size >= self.max_bytes or batch.num_rows:
                self.finish_shard()

    def open_shard(self) -> ShardFile:
        path = self.directory / f"{self.prefix}-{len(self.shards):03d}{SHARD_SUFFIXES[self.format]}"
        self.stream = open_shard_file(path, self.schema, self.format)
        self.rows = 0
        return self.stream

    def finish_shard(self) -> None:
        if self.stream is None:
            return
        self.stream.close()
        self.shards.append(file_record(self.stream, self.rows, self.root))
        self.stream = None

    def close(self, keep_empty: bool = False) -> list[dict]:
        """Finish the last shard. With `keep_empty`, a writer that got no rows writes one empty shard
        (so a dataset whose rows were all dropped still opens everywhere)."""
        self.flush()
        if keep_empty and not self.shards and self.stream is None:
            self.open_shard()
        self.finish_shard()
        return self.shards


def file_record(stream: ShardFile | StreamFile, rows: int, root: Path) -> dict:
    """What a manifest lists for a written file: path (relative to `root`), rows, bytes, sha256."""
    file = stream.file
    return {
        "path": os.path.relpath(stream.path, root),
        "rows": rows,
        "bytes": file.size,
        "sha256": file.sha256.hexdigest(),
    }


def write_listing(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch], root: Path) -> dict:
    """Write `batches` (streamed: one in memory at a time) to one Arrow stream file atomically;
    return its record as for a shard (a dataset's `inputs.arrow`)."""
    rows = 0
    with StreamFile(path, schema, open_file=HashingFile) as stream:
        for batch in batches:
            stream.write(conform(batch, schema))
            rows += batch.num_rows
    return file_record(stream, rows, root)
