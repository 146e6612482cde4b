"""Writing Arrow IPC stream shards: declared schema, size-based rollover, checksum while writing,
and atomic completion (each shard is a `curate.arrow_io.StreamFile`: written under a temporary
name and renamed when complete)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa

from curate.arrow_io import StreamFile
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

    `close()` returns what was written: [{path (relative to `root`), rows, bytes, sha256}].
    Nothing is written for a writer that received no rows.
    """

    def __init__(self, directory: Path, prefix: str, schema: pa.Schema, max_bytes: int, root: Path):
        self.directory, self.prefix, self.schema = Path(directory), prefix, schema
        self.max_bytes, self.root = max_bytes, Path(root)
        self.shards: list[dict] = []
        self.stream: StreamFile | None = None
        self.rows = 0

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        if isinstance(batch, pa.Table):
            for chunk in batch.to_batches():
                self.write(chunk)
            return
        batch = conform(batch, self.schema)
        stream = self.open_shard() if self.stream is None else self.stream
        stream.write(batch)
        self.rows += batch.num_rows
        if stream.file.size >= self.max_bytes:
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
        self.shards.append(
            {
                "path": os.path.relpath(self.stream.path, self.root),
                "rows": self.rows,
                "bytes": self.stream.file.size,
                "sha256": self.stream.file.sha256.hexdigest(),
            }
        )
        self.stream = None

    def close(self, keep_empty: bool = False) -> list[dict]:
        """Finish the last shard. With `keep_empty`, a writer that got no rows writes one empty shard
        (so a dataset whose rows were all dropped still opens everywhere)."""
        if keep_empty and not self.shards and self.stream is None:
            self.open_shard()
        self.finish_shard()
        return self.shards
