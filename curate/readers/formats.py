"""Container formats: each yields the raw records of one input file, with their positions.

A format yields `Item`s: a record (dict) to map, or a `Problem` found while parsing (bad UTF-8,
bad JSON, a truncated stream), which the reader quarantines with file and position. `FORMATS`
names every format, the scientific ones (`readers.science`) included.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from curate.readers.crawl import web_archive
from curate.readers.files import code_language, detect_format, iter_tar, open_decompressed, split_compression
from curate.readers.items import Item, Problem, Skip, decode_utf8, raw_lines
from curate.readers.science import fasta, genbank, smiles_table, swissprot


def jsonl(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    for entry in raw_lines(stream, label):
        if isinstance(entry, Problem):
            yield entry
            return
        position, line = entry
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            try:
                decode_utf8(line)
                message = f"malformed JSON: {error}"
            except ValueError as utf8_error:
                message = str(utf8_error)
            yield Problem(position, label, message, line)
            continue
        if not isinstance(record, dict):
            yield Problem(position, label, f"line is a JSON {type(record).__name__}, expected an object", line)
            continue
        yield Item(position, record, label, line)


def json_file(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """A .json file: a JSON array of objects (one record each), a single JSON object (one record),
    or JSON lines (a file of several objects, one per line). The file is read whole."""
    try:
        data = stream.read()
    except (EOFError, OSError) as error:
        yield Problem(1, label, f"truncated or corrupt stream: {error}")
        return
    try:
        items = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if data.lstrip()[:1] == b"{":  # several objects: JSON lines under a .json name
            yield from jsonl(io.BufferedReader(io.BytesIO(data)), label)
        else:
            yield Problem(1, label, f"malformed JSON: {error}", data)
        return
    if isinstance(items, dict):
        yield Item(1, items, label, data)
        return
    if not isinstance(items, list):
        yield Problem(1, label, f"file is a JSON {type(items).__name__}, expected an array of objects", data)
        return
    for position, record in enumerate(items, 1):
        if isinstance(record, dict):
            yield Item(position, record, label)
        else:
            yield Problem(
                position, label, f"item is a JSON {type(record).__name__}, expected an object", orjson.dumps(record)
            )


def read_all(stream: io.BufferedIOBase, label: str) -> str | Problem:
    """The whole stream as text, or the Problem that stopped reading or decoding it."""
    try:
        data = stream.read()
    except (EOFError, OSError) as error:
        return Problem(1, label, f"truncated or corrupt stream: {error}")
    try:
        return decode_utf8(data)
    except ValueError as error:
        return Problem(1, label, str(error), data)


def text(stream: io.BufferedIOBase, label: str, text_unit: str = "file", **_) -> Iterator[Item | Problem]:
    """Plain text: the whole file is one document, or one per line, or one per blank-line paragraph."""
    content = read_all(stream, label)
    if isinstance(content, Problem):
        yield content
        return
    if text_unit == "file":
        yield Item(1, {"text": content}, label)
        return
    lines = content.splitlines(keepends=True)
    if text_unit == "line":
        for position, line in enumerate(lines, 1):
            if line.strip():
                yield Item(position, {"text": line.rstrip("\r\n")}, label)
        return
    start = 1
    block: list[str] = []
    for position, line in enumerate(lines + ["\n"], 1):
        if line.strip():
            if not block:
                start = position
            block.append(line)
        elif block:
            yield Item(start, {"text": "".join(block).rstrip("\r\n")}, label)
            block = []


def code(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """A source file: one document, with its path and language; binary files are bad input."""
    content = read_all(stream, label)
    if isinstance(content, Problem):
        yield content
        return
    if "\x00" in content:
        yield Problem(1, label, "binary file (contains NUL bytes)", content.encode())
        return
    yield Item(1, {"id": label, "text": content, "path": label, "language": code_language(label)}, label)


def columnar_batches(batches: Iterator[pa.RecordBatch], label: str) -> Iterator[Item | Problem]:
    position = 0
    try:
        for batch in batches:
            for record in batch.to_pylist():
                position += 1
                yield Item(position, record, label)
    except (OSError, pa.ArrowInvalid, EOFError) as error:
        yield Problem(position + 1, label, f"truncated or corrupt file: {error}")


def parquet(stream: io.BufferedIOBase, label: str, batch_rows: int = 1000, **_) -> Iterator[Item | Problem]:
    try:
        parquet_file = pq.ParquetFile(pa.BufferReader(stream.read()))
    except (OSError, pa.ArrowInvalid, EOFError) as error:
        yield Problem(1, label, f"not a readable Parquet file: {error}")
        return
    yield from columnar_batches(parquet_file.iter_batches(batch_size=batch_rows), label)


def arrow(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """Arrow IPC, file or stream format (told apart by the file format's magic bytes)."""
    try:
        data = pa.BufferReader(stream.read())
        reader = pa.ipc.open_file(data) if data.read(6) == b"ARROW1" else None
        if reader is None:
            data.seek(0)
            reader = pa.ipc.open_stream(data)
            batches = iter(reader)
        else:
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
    except (OSError, pa.ArrowInvalid, EOFError) as error:
        yield Problem(1, label, f"not a readable Arrow IPC file: {error}")
        return
    yield from columnar_batches(batches, label)


def tar(
    stream: io.BufferedIOBase, label: str, forced_format: str = "auto", **options
) -> Iterator[Item | Problem | Skip]:
    """A tar archive: each member is read by the format its name implies (unknown names are skipped)."""
    import tarfile

    try:
        for member in iter_tar(stream, label):
            fmt = detect_format(member.name, forced_format if forced_format != "tar" else "auto")
            if fmt is None or fmt == "tar":
                continue
            compressed = split_compression(member.name)[1] is not None
            inner = open_decompressed(member.stream, member.name) if compressed else member.stream
            yield from FORMATS[fmt](inner, member.label, **options)
    except (tarfile.TarError, EOFError, OSError) as error:
        yield Problem(0, label, f"truncated or corrupt archive: {error}")


def xml_rows(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """XML row dumps (Stack Exchange's Posts.xml and friends): each child of the root element is a
    record of its attributes. Parsed with defusedxml, streaming, so dumps of any size fit in memory."""
    from xml.etree.ElementTree import ParseError

    from defusedxml.ElementTree import iterparse

    position, depth = 0, 0
    try:
        for event, element in iterparse(stream, events=("start", "end")):
            if event == "start":
                depth += 1
                continue
            depth -= 1
            if depth == 1:
                position += 1
                record = dict(element.attrib)
                if element.text and element.text.strip():
                    record.setdefault("text", element.text)
                yield Item(position, record, label)
                element.clear()
    except (ParseError, EOFError, OSError) as error:
        yield Problem(position + 1, label, f"malformed or truncated XML: {error}")


# A format: (stream, label, **options) -> records, bad input and records passed over, in order.
Format = Callable[..., Iterator[Item | Problem | Skip]]
FORMATS: dict[str, Format] = {
    "jsonl": jsonl,
    "json": json_file,
    "text": text,
    "code": code,
    "parquet": parquet,
    "arrow": arrow,
    "tar": tar,
    "xml": xml_rows,
    "fasta": fasta,
    "genbank": genbank,
    "swissprot": swissprot,
    "smiles": smiles_table,
    "warc": web_archive("warc"),
    "wet": web_archive("wet"),
    "arc": web_archive("arc"),
}
# Formats handed the file's raw bytes: they tell the compression from the content and report
# offsets in the compressed file (what Common Crawl's index gives).
SELF_DECOMPRESSING = ("warc", "wet", "arc")
