"""Writing Arrow IPC stream shards: declared schema, size-based rollover, record batches of a target
size, checksum while writing, and atomic completion (each shard is a `curate.arrow_io.StreamFile`: written under a temporary
name and renamed when complete)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from curate.arrow_io import StreamFile, concat_batches
from curate.schema import conform


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


class ShardWriter:
    """Writes batches with one declared schema to `<dir>/<prefix>-NNN.arrow`, rolling over past `max_bytes`.

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
    ):
        self.directory, self.prefix, self.schema = Path(directory), prefix, schema
        self.max_bytes, self.root = max_bytes, Path(root)
        self.batch_rows, self.batch_bytes = batch_rows, batch_bytes
        self.shards: list[dict] = []
        self.stream: StreamFile | None = None
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

    def open_shard(self) -> StreamFile:
        path = self.directory / f"{self.prefix}-{len(self.shards):03d}.arrow"
        self.stream = StreamFile(path, self.schema, open_file=HashingFile)
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


def file_record(stream: StreamFile, rows: int, root: Path) -> dict:
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
