"""Container formats: each yields the raw records of one input file, with their positions.

A format yields `Item`s: a record (dict) to map, or a `Problem` found while parsing (bad UTF-8,
bad JSON, a truncated stream), which the reader quarantines with file and position. `FORMATS`
names every format, the scientific ones (`readers.science`) included.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import cast

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from curate.readers.crawl import web_archive
from curate.readers.files import (
    INFLATE_GRACE_BYTES,
    MAX_INFLATE_RATIO,
    InflateLimit,
    Link,
    Member,
    code_language,
    detect_format,
    iter_tar,
    open_decompressed,
    skipped_member,
    split_compression,
)
from curate.readers.items import (
    BOM,
    RAW_KEPT,
    Item,
    Problem,
    Skip,
    SkippedFile,
    decode_utf8,
    raw_lines,
    read_whole,
    stream_problem,
)
from curate.readers.science import embl, fasta, fastq, genbank, smiles_table, swissprot


def jsonl(
    stream: io.BufferedIOBase, label: str, max_bytes: int = 64 << 20, byte_offset: int | None = None, **_
) -> Iterator[Item | Problem]:
    """JSON lines, one record per line (`byte_offset`: the stream is a part of a split file)."""
    for entry in raw_lines(stream, label, max_bytes, byte_offset):
        if isinstance(entry, Problem):
            yield entry
            if entry.raw:  # an oversized line: skipped, the next one is read
                continue
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


def json_file(stream: io.BufferedIOBase, label: str, **options) -> Iterator[Item | Problem]:
    """A .json file: a JSON array of objects (one record each, streamed with ijson: memory holds one
    item, never the whole array), a single JSON object (one record), or JSON lines (several objects,
    one per line)."""
    import ijson

    buffered = cast(io.BufferedReader, stream)  # readers hand formats buffered streams (peek)
    if buffered.peek(3)[:3] == BOM:
        stream.read(3)
    if (
        buffered.peek(64)[:64].lstrip()[:1] != b"["
    ):  # one object, or JSON lines under a .json name (the line reader bounds each)
        yield from one_object_or_lines(stream, label, **options)
        return
    position = 0
    try:
        for record in ijson.items(stream, "item", use_float=True):
            position += 1
            if isinstance(record, dict):
                yield Item(position, record, label)
            else:
                yield Problem(
                    position, label, f"item is a JSON {type(record).__name__}, expected an object", raw_json(record)
                )
    except ijson.JSONError as error:
        yield Problem(position + 1, label, f"malformed JSON after item {position}: {error}")
    except (EOFError, OSError) as error:
        yield stream_problem(position + 1, label, error)


def one_object_or_lines(stream: io.BufferedIOBase, label: str, **options) -> Iterator[Item | Problem]:
    """A .json file that is not an array: one JSON object (read whole), or JSON lines."""
    data = read_whole(stream, label)
    if isinstance(data, Problem):
        yield data
        return
    try:
        record = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        if data.lstrip()[:1] == b"{":  # several objects: JSON lines under a .json name
            yield from jsonl(io.BufferedReader(io.BytesIO(data)), label, **options)
        else:
            yield Problem(1, label, f"malformed JSON: {error}", data[:RAW_KEPT])
        return
    if isinstance(record, dict):
        yield Item(1, record, label, data)
    else:
        yield Problem(
            1, label, f"file is a JSON {type(record).__name__}, expected an array of objects", data[:RAW_KEPT]
        )


def raw_json(record: object) -> bytes:
    """A parsed record as JSON bytes, for the quarantine (orjson refuses nesting beyond 254 levels)."""
    try:
        return orjson.dumps(record, default=str)
    except TypeError:
        return repr(record)[:RAW_KEPT].encode("utf-8", "replace")


def read_all(stream: io.BufferedIOBase, label: str, max_bytes: int | None = None) -> str | Problem:
    """The whole stream as text (one document: at most `max_bytes`), or the Problem that stopped
    reading or decoding it."""
    data = read_whole(stream, label, max_bytes)
    if isinstance(data, Problem):
        return data
    try:
        return decode_utf8(data)
    except ValueError as error:
        return Problem(1, label, str(error), data[:RAW_KEPT])


def text(
    stream: io.BufferedIOBase,
    label: str,
    text_unit: str = "file",
    max_bytes: int = 64 << 20,
    byte_offset: int | None = None,
    **_,
) -> Iterator[Item | Problem]:
    """Plain text: the whole file is one document, or one per line, or one per blank-line paragraph
    (lines and paragraphs are streamed: memory holds one paragraph, at most `max_bytes`)."""
    if text_unit == "file":
        content = read_all(stream, label, max_bytes)
        if isinstance(content, Problem):
            yield content
        else:
            yield Item(1, {"text": content}, label)
        return
    start, size, skipping = 1, 0, False
    block: list[str] = []
    for entry in raw_lines(stream, label, max_bytes, byte_offset):
        if isinstance(entry, Problem):
            yield entry
            if entry.raw:  # an oversized line: skipped
                continue
            return
        position, raw = entry
        try:
            line = decode_utf8(raw)
        except ValueError as error:
            yield Problem(position, label, str(error), raw)
            continue
        if text_unit == "line":
            if line.strip():
                yield Item(position, {"text": line.rstrip("\r\n")}, label)
            continue
        if line.strip():
            if skipping:  # the rest of an oversized paragraph
                continue
            if not block:
                start = position
            block.append(line)
            size += len(raw)
            if size <= max_bytes:
                continue
            yield Problem(
                start, label, f"paragraph exceeds input.max_doc_mb ({max_bytes} bytes)", block[0][:RAW_KEPT].encode()
            )
            skipping = True
        elif block:
            yield Item(start, {"text": "".join(block).rstrip("\r\n")}, label)
        else:
            skipping = False
        block, size = [], 0
    if block:
        yield Item(start, {"text": "".join(block).rstrip("\r\n")}, label)


def code(stream: io.BufferedIOBase, label: str, max_bytes: int | None = None, **_) -> Iterator[Item | Problem]:
    """A source file: one document, with its path and language; binary files are bad input."""
    content = read_all(stream, label, max_bytes)
    if isinstance(content, Problem):
        yield content
        return
    if "\x00" in content:
        yield Problem(1, label, "binary file (contains NUL bytes)", content.encode()[:RAW_KEPT])
        return
    yield Item(1, {"id": label, "text": content, "path": label, "language": code_language(label)}, label)


def columnar_batches(batches: Iterator[pa.RecordBatch], label: str, first_row: int = 0) -> Iterator[Item | Problem]:
    """The rows of record batches as records; positions count from row `first_row` of the file."""
    position = first_row
    try:
        for batch in batches:
            for record in batch.to_pylist():
                position += 1
                yield Item(position, record, label)
    except (OSError, pa.ArrowInvalid, EOFError) as error:
        yield Problem(position + 1, label, f"truncated or corrupt file: {error}")


def parquet(stream: io.BufferedIOBase, label: str, batch_rows: int = 1000, **_) -> Iterator[Item | Problem]:
    data = read_whole(stream, label)
    if isinstance(data, Problem):
        yield data
        return
    try:
        parquet_file = pq.ParquetFile(pa.BufferReader(data))
    except (OSError, pa.ArrowInvalid, EOFError) as error:
        yield Problem(1, label, f"not a readable Parquet file: {error}")
        return
    yield from columnar_batches(parquet_file.iter_batches(batch_size=batch_rows), label)


def arrow(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """Arrow IPC, file or stream format (told apart by the file format's magic bytes)."""
    whole = read_whole(stream, label)
    if isinstance(whole, Problem):
        yield whole
        return
    try:
        data = pa.BufferReader(whole)
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
    stream: io.BufferedIOBase,
    label: str,
    forced_format: str = "auto",
    reopen: Callable[[], AbstractContextManager[io.BufferedIOBase]] | None = None,
    **options,
) -> Iterator[Item | Problem | Skip | SkippedFile]:
    """A tar archive: each member is read by the format its name implies (the others are
    `SkippedFile`s: listed, not read).

    Links (hard and symbolic) to a file in the archive are read as that file, under the link's
    name: the archive is streamed, so their targets are read in a second pass over it (`reopen`),
    one more pass per further link to the same target. A link to nothing in the archive (or
    outside it) is a Problem."""
    inner_format = forced_format if forced_format != "tar" else "auto"
    files: set[str] = set()
    links: dict[str, Link] = {}
    for member in tar_members(stream, label, inner_format, links, files):
        yield from read_member(member, inner_format, options)
    if not links:
        return
    rounds: dict[str, list[Link]] = {}  # a file's name -> the links that read it
    for link in links.values():
        if unread_member(link.name, inner_format) is not None:  # a link we would not read anyway
            continue
        target = resolve_link(link, links, files)
        if target is None:
            yield Problem(1, link.label, f"link to '{link.target}', which is not a file in the archive")
        else:
            rounds.setdefault(target, []).append(link)
    if reopen is None:  # a stream that cannot be read twice (a tar inside a tar): say so per link
        for link in (link for group in rounds.values() for link in group):
            yield Problem(1, link.label, f"link to '{link.target}' cannot be followed in this stream")
        return
    for index in range(max((len(group) for group in rounds.values()), default=0)):
        wanted = {target: group[index] for target, group in rounds.items() if index < len(group)}
        with reopen() as again:
            for member in tar_members(again, label, inner_format, None, None):
                if isinstance(member, Member) and member.name in wanted:
                    link = wanted[member.name]
                    yield from read_member(Member(link.name, link.label, member.stream), inner_format, options)


def tar_members(
    stream: io.BufferedIOBase, label: str, inner_format: str, links: dict[str, Link] | None, files: set[str] | None
) -> Iterator[Member | Problem | SkippedFile]:
    """The archive's regular members of a readable format; its links go to `links` and the members
    it does not read are `SkippedFile`s (the first pass: `files` is given)."""
    try:
        for entry in iter_tar(stream, label):
            if isinstance(entry, Link):
                if links is not None:
                    links[entry.name] = entry
                continue
            if files is not None:
                files.add(entry.name)
            reason = unread_member(entry.name, inner_format)
            if reason is None:
                yield entry
            elif files is not None:
                yield SkippedFile(entry.label, reason)
    except (tarfile.TarError, EOFError, OSError) as error:
        message = str(error) if isinstance(error, InflateLimit) else f"truncated or corrupt archive: {error}"
        yield Problem(0, label, message)


ARCHIVE_FORMATS = ("tar", "zip")


def unread_member(name: str, inner_format: str) -> str | None:
    """Why an archive member is not read (None: it is read by its format)."""
    fmt = detect_format(name, inner_format)
    if fmt is None:
        return "unknown format"
    if fmt in ARCHIVE_FORMATS:
        return "archive inside an archive (not read)"
    return None


def read_member(
    member: Member | Problem | SkippedFile, inner_format: str, options: dict
) -> Iterator[Item | Problem | Skip | SkippedFile]:
    if isinstance(member, (Problem, SkippedFile)):
        yield member
        return
    fmt = detect_format(member.name, inner_format)
    assert fmt is not None
    compressed = split_compression(member.name)[1] is not None
    ratio = options.get("max_inflate_ratio", MAX_INFLATE_RATIO)
    inner = open_decompressed(member.stream, member.name, ratio) if compressed else member.stream
    yield from FORMATS[fmt](inner, member.label, **options)


@contextmanager
def seekable(stream: io.BufferedIOBase, reopen: Callable[[], AbstractContextManager[io.BufferedIOBase]] | None):
    """`stream` where it can seek; else the file again (`reopen`: a plain file seeks); else its
    bytes spooled to a temporary file (memory holds at most SPOOL_BYTES of them)."""
    if stream.seekable():
        yield stream
        return
    if reopen is not None:
        with reopen() as again:
            if again.seekable():
                yield again
                return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        shutil.copyfileobj(stream, spool, 1 << 20)
        spool.seek(0)
        yield cast(io.BufferedIOBase, spool)


SPOOL_BYTES = 64 << 20


def zip_archive(
    stream: io.BufferedIOBase,
    label: str,
    forced_format: str = "auto",
    reopen: Callable[[], AbstractContextManager[io.BufferedIOBase]] | None = None,
    **options,
) -> Iterator[Item | Problem | Skip | SkippedFile]:
    """A zip archive: each member is read by the format its name implies, as in a tar; members of
    no known format (and archives inside it) are `SkippedFile`s. Zip needs to seek (its directory
    is at the end): the file is opened again, or a stream spooled to a temporary file.

    Bad input: an unreadable archive, an encrypted member, a member failing its CRC (the rows
    before are kept), and a member declaring more than `max_inflate_ratio` times its compressed
    size, or members together more than that times the archive (a zip bomb, overlapping entries
    included) are Problems; zipfile never inflates a member beyond its declared size."""
    inner_format = forced_format if forced_format != "zip" else "auto"
    ratio = options.get("max_inflate_ratio", MAX_INFLATE_RATIO)
    with seekable(stream, reopen) as source:
        size = source.seek(0, io.SEEK_END)
        source.seek(0)
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
            yield Problem(0, label, f"not a readable zip archive: {error}")
            return
        inflated = 0
        with archive:
            for info in archive.infolist():
                if info.is_dir() or skipped_member(info.filename):
                    continue
                member_label = f"{label}/{info.filename}"
                reason = unread_member(info.filename, inner_format)
                if reason is not None:
                    yield SkippedFile(member_label, reason)
                    continue
                inflated += info.file_size
                problem = zip_member_problem(info, inflated, size, ratio)
                if problem:
                    yield Problem(1, member_label, problem)
                    continue
                try:
                    with archive.open(info) as handle:
                        member = Member(info.filename, member_label, cast(io.BufferedIOBase, handle))
                        yield from read_member(member, inner_format, options)
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as error:
                    yield Problem(1, member_label, f"corrupt zip member: {error}")


def zip_member_problem(info: zipfile.ZipInfo, inflated: int, archive_bytes: int, ratio: float) -> str | None:
    """Why a zip member is not read (encrypted, a bomb by its declared sizes), or None."""
    if info.flag_bits & 0x1:
        return "encrypted zip member (not read)"
    if not ratio or info.file_size <= INFLATE_GRACE_BYTES:
        return None
    if info.file_size > ratio * max(info.compress_size, 1) or inflated > ratio * max(archive_bytes, 1):
        return (
            f"zip member declares {info.file_size} bytes from {info.compress_size} ({inflated} for the archive's "
            f"members so far, from {archive_bytes}): beyond {ratio:g}x, a decompression bomb? (input.max_inflate_ratio)"
        )
    return None


def resolve_link(link: Link, links: dict[str, Link], files: set[str], hops: int = 8) -> str | None:
    """The regular file a link (or a chain of links) names, or None."""
    target = link.target
    for _ in range(hops):
        if target in files:
            return target
        if target not in links:
            return None
        target = links[target].target
    return None


def xml_rows(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """XML row dumps (Stack Exchange's Posts.xml and friends): each child of the root element is a
    record of its attributes. Parsed with defusedxml, streaming, so dumps of any size fit in memory;
    a document declaring entities (a DTD: billion laughs, external files) is refused as bad input."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
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
    except DefusedXmlException as error:
        yield Problem(position + 1, label, f"XML refused: {error} (entities and DTDs are not read, for safety)")
    except InflateLimit as error:
        yield Problem(position + 1, label, str(error))
    except (ParseError, EOFError, OSError) as error:
        yield Problem(position + 1, label, f"malformed or truncated XML: {error}")


# A format: (stream, label, **options) -> records, bad input, records passed over and archive
# members not read, in order.
Format = Callable[..., Iterator[Item | Problem | Skip | SkippedFile]]
FORMATS: dict[str, Format] = {
    "jsonl": jsonl,
    "json": json_file,
    "text": text,
    "code": code,
    "parquet": parquet,
    "arrow": arrow,
    "tar": tar,
    "zip": zip_archive,
    "xml": xml_rows,
    "fasta": fasta,
    "fastq": fastq,
    "genbank": genbank,
    "embl": embl,
    "swissprot": swissprot,
    "smiles": smiles_table,
    "warc": web_archive("warc"),
    "wet": web_archive("wet"),
    "arc": web_archive("arc"),
}
# Formats handed the file's raw bytes: they tell the compression from the content and report
# offsets in the compressed file (what Common Crawl's index gives).
SELF_DECOMPRESSING = ("warc", "wet", "arc")
