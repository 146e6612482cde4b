"""Reading input files into record batches of a declared schema.

`read_file` opens one input file (decompressing and hashing it as it streams), lets its format
yield raw records, maps each record to a row with the configured mapper, and yields record
batches bounded in rows and bytes. Bad input never stops the run silently or loses data: each bad
row goes to the `Quarantine` with its file, position, field and raw bytes — or, with
`input.on_error=fail`, stops the run with that one-line message.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import pyarrow as pa

from curate import fs
from curate.arrow_io import iter_batches
from curate.errors import ConfigError, InputError, ThresherError
from curate.mapping import FieldError, RecordMapper
from curate.readers.crawl import WarcSelection
from curate.readers.files import (
    MAX_INFLATE_RATIO,
    HashingReader,
    SpanFile,
    line_range,
    open_decompressed,
    parquet_span,
    truncated,
)
from curate.readers.formats import FORMATS, SELF_DECOMPRESSING, columnar_batches, raw_json
from curate.readers.items import Item, Problem, Skip, SkippedFile
from curate.readers.science import TableLayout
from curate.readers.sources import InputFile
from curate.schema import QUARANTINE

logger = logging.getLogger(__name__)


@dataclass
class ReadOptions:
    format: str = "auto"
    text_unit: str = "file"
    on_error: str = "quarantine"
    batch_rows: int = 1000
    batch_bytes: int = 32 << 20
    max_doc_bytes: int = 64 << 20  # a longer line, or a larger one-document file, is bad input
    max_inflate_ratio: float = MAX_INFLATE_RATIO  # more decompressed bytes per compressed byte is bad input
    warc: WarcSelection = field(default_factory=WarcSelection)  # which web-archive records become rows
    table: TableLayout = field(default_factory=TableLayout)  # how SMILES tables are laid out


@dataclass
class FileStats:
    """What one input file gave: for the manifest's inputs and the accounting."""

    path: str
    start: int = 0  # a part of a split file (bytes or row groups [start, end)); 0, 0: the whole file
    end: int = 0
    rows: int = 0  # rows read, good and bad
    quarantined: int = 0
    bytes: int = 0
    sha256: str = ""
    xxh3: str = ""  # xxh3-128 of the bytes read: what a rerun checks the file against (quicker than sha256)
    passed_over: dict[str, int] = field(default_factory=dict)  # records passed over on purpose, by reason
    skipped_members: list[dict] = field(default_factory=list)  # archive members not read: {path, reason}


class Quarantine:
    """Collects bad input rows, or raises InputError at the first one when `fail` is set."""

    def __init__(self, fail: bool):
        self.fail = fail
        self.rows: list[dict] = []

    def add(self, file: str, position: int, field_name: str | None, error: str, raw: bytes | None) -> None:
        where = f"{file}:{position}" if position else file
        message = f"{where}: field '{field_name}': {error}" if field_name else f"{where}: {error}"
        if self.fail:
            raise InputError(message + "  (input.on_error=fail)")
        self.rows.append({"file": file, "position": position, "field": field_name, "error": error, "raw": raw})

    def drain(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        batch = pa.RecordBatch.from_pylist(self.rows, schema=QUARANTINE)
        self.rows = []
        return batch


@dataclass
class BatchBuilder:
    """Accumulates mapped rows into record batches of at most `max_rows` rows / about `max_bytes`."""

    schema: pa.Schema
    max_rows: int
    max_bytes: int
    rows: list[dict] = field(default_factory=list)
    size: int = 0

    def add(self, row: dict) -> pa.RecordBatch | None:
        self.rows.append(row)
        text = row.get("text")
        self.size += len(text) if isinstance(text, str) else 256
        return self.flush() if len(self.rows) >= self.max_rows or self.size >= self.max_bytes else None

    def flush(self) -> pa.RecordBatch | None:
        if not self.rows:
            return None
        batch = pa.RecordBatch.from_pylist(self.rows, schema=self.schema)
        self.rows, self.size = [], 0
        return batch


def read_file(
    file: InputFile, mapper: RecordMapper, options: ReadOptions, quarantine: Quarantine, stats: FileStats
) -> Iterator[pa.RecordBatch]:
    """Yield the rows of one input file as record batches of `mapper.schema()`."""
    if file.format == "dataset":  # a shard of a dataset written by Thresher: checked, rows already typed
        for batch in iter_batches(file.path, sha256=file.sha256 or None, schema=dataset_schema(dataset_of(file))):
            stats.rows += batch.num_rows
            yield batch
        stats.bytes, stats.sha256 = file.size, file.sha256
        return
    mapper = mapper.for_file(file.path)
    schema = mapper.schema()
    builder = BatchBuilder(schema, options.batch_rows, options.batch_bytes)
    path = fs.display(file.path)  # what is written of it: a key in its URL masked
    display_root = path[: -len(file.label)] if path.endswith(file.label) else ""
    separator = "@" if file.byte_positions else ":"  # a split line file's positions are byte offsets
    with fs.open_binary(file.path) as handle:
        source: Any = handle
        byte_offset = None
        if file.byte_positions and file.part is not None:
            start, end = line_range(handle, *file.part, file.size)
            source, byte_offset = fs.RangeReader(handle, start, end), start
        raw = HashingReader(source)
        stream: io.BufferedReader = (
            io.BufferedReader(raw, buffer_size=1 << 20)  # web archives: their own codecs, compressed offsets
            if file.format in SELF_DECOMPRESSING
            else open_decompressed(raw, file.name, options.max_inflate_ratio)
        )
        items: Iterator[Item | Problem | Skip | SkippedFile]
        if file.format == "parquet" and file.part is not None:
            items = parquet_part(handle, raw, file, options.batch_rows)
        else:
            items = FORMATS[file.format](
                stream,
                file.label,
                text_unit=options.text_unit,
                batch_rows=options.batch_rows,
                forced_format=options.format,
                max_bytes=options.max_doc_bytes,
                max_inflate_ratio=options.max_inflate_ratio,
                reopen=partial(reopen, file, options),
                warc=options.warc,
                table=options.table,
                byte_offset=byte_offset,
            )
        for item in guarded(items, file):
            if isinstance(item, Skip):
                stats.passed_over[item.reason] = stats.passed_over.get(item.reason, 0) + 1
                continue
            if isinstance(item, SkippedFile):
                stats.skipped_members.append({"path": display_root + item.label, "reason": item.reason})
                continue
            stats.rows += 1
            if isinstance(item, Problem):
                stats.quarantined += 1
                quarantine.add(display_root + item.label, item.position, item.field, item.error, item.raw)
                continue
            try:
                row = mapper.map(item.record, f"{item.label}{separator}{item.position}", file.source)
            except FieldError as error:
                stats.quarantined += 1
                raw_bytes = item.raw if item.raw is not None else raw_json(item.record)
                quarantine.add(display_root + item.label, item.position, error.field, error.message, raw_bytes)
                continue
            batch = builder.add(row)
            if batch is not None:
                stats.bytes = raw.bytes_read  # so far: what live progress shows
                yield batch
        rest = builder.flush()
        if rest is not None:
            yield rest
        if truncated(stream):
            stats.rows += 1
            stats.quarantined += 1
            quarantine.add(
                path,
                stats.rows,
                None,
                "truncated or corrupt stream: compressed data ended before its end-of-stream marker",
                b"",
            )
        while not (file.format == "parquet" and file.part) and raw.read(
            1 << 20
        ):  # hash whatever the format did not need to read
            pass
    stats.bytes, stats.sha256, stats.xxh3 = raw.bytes_read, raw.sha256.hexdigest(), raw.xxh3.hexdigest()


def parquet_part(handle: Any, raw: HashingReader, file: InputFile, batch_rows: int) -> Iterator[Item | Problem]:
    """The rows of row groups [start, end) of a Parquet file: their bytes are read once, through
    `raw` (hashed: what a rerun checks), and parsed with the footer's metadata."""
    import pyarrow.parquet as pq

    assert file.part is not None
    first, last = file.part
    try:
        metadata = pq.read_metadata(handle)
        start, end = parquet_span(metadata, first, last)
        handle.seek(start)
        data = raw.read(end - start)
        parquet = pq.ParquetFile(SpanFile(handle, data, start, file.size), metadata=metadata)
        batches = parquet.iter_batches(batch_size=batch_rows, row_groups=range(first, last))
    except (OSError, pa.ArrowInvalid, EOFError) as error:
        yield Problem(file.first_row + 1, file.label, f"not a readable Parquet file: {error}")
        return
    yield from columnar_batches(batches, file.label, file.first_row)


def guarded(
    items: Iterator[Item | Problem | Skip | SkippedFile], file: InputFile
) -> Iterator[Item | Problem | Skip | SkippedFile]:
    """A format's items; if its parser fails on hostile input in a way it does not report as a
    Problem, the rest of the file becomes one Problem (the traceback goes to the task's log)."""
    position = 0
    try:
        for item in items:
            if isinstance(item, (Item, Problem)):
                position = item.position
            yield item
    except (ThresherError, MemoryError):
        raise
    except Exception as error:
        logger.warning("%s: the %s reader failed after item %d", file.path, file.format, position, exc_info=True)
        yield Problem(position + 1, file.label, f"unreadable from here: {type(error).__name__}: {error}")


@contextmanager
def reopen(file: InputFile, options: ReadOptions) -> Iterator[io.BufferedIOBase]:
    """The file's decompressed content again, for formats that need a second pass (links in a tar)."""
    with fs.open_binary(file.path) as handle:
        yield open_decompressed(handle, file.name, options.max_inflate_ratio)


def dataset_schema(folder: str) -> pa.Schema:
    """The data schema of a dataset folder Thresher wrote (its shards may be Parquet or JSON lines);
    read once per process and manifest version (every batch of its shards asks). Local or remote."""
    from curate.manifest import MANIFEST

    found = fs.stat(fs.join(folder, MANIFEST))
    return manifest_schema(folder, found.version, found.size)


@lru_cache(maxsize=64)
def manifest_schema(folder: str, version: str, size: int) -> pa.Schema:
    from curate.manifest import Manifest

    return Manifest.read(folder).data_schema(folder).remove_metadata()


def input_schema(files: list[InputFile], mapper: RecordMapper) -> tuple[pa.Schema, str]:
    """The declared schema (and kind) of the rows the inputs give.

    Raw files give the mapper's schema; Thresher dataset folders give the schema their shards
    were written with (every dataset in one run must have the same).
    """
    from curate.manifest import Manifest

    datasets = sorted({dataset_of(f) for f in files if f.format == "dataset"})
    if not datasets:
        return mapper.schema(), mapper.kind
    if any(f.format != "dataset" for f in files):
        raise ConfigError("input.paths: Thresher dataset folders cannot be mixed with raw input files in one run")
    found = {folder: (dataset_schema(folder), Manifest.read(folder).kind) for folder in datasets}
    first_folder, first = next(iter(found.items()))
    for folder, value in found.items():
        if value != first:
            raise ConfigError(f"input.paths: dataset '{folder}' has a different schema or kind from '{first_folder}'")
    return first


def dataset_of(file: InputFile) -> str:
    """The dataset folder a shard belongs to (shards are `<folder>/data/<name>.arrow`)."""
    return fs.parent(fs.parent(file.path))
