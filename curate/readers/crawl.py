"""Web archives: WARC, WET and ARC files, streamed one record at a time.

WARC (`.warc`, `.warc.gz`, `.warc.zst`, `.warc.lz4`) and WET (`.warc.wet.gz`) files are parsed by
fastwarc; ARC files (`.arc`, `.arc.gz`, the Internet Archive's format before WARC) by warcio,
because fastwarc does not read ARC. The compression is told from the first bytes, not the name.

A record becomes a row when it passes the selection (`input.warc`): its WARC-Type, its HTTP
status and its MIME type (CC's `WARC-Identified-Payload-Type` when present, otherwise the HTTP
Content-Type, otherwise the WARC Content-Type). Records passed over are counted by reason in the
dataset's `inputs.arrow` as `passed_over` (`record_type:request`, `http_status:404`, `mime_type:image/png`,
`empty_payload`). Defaults per format: WARC and ARC keep `response` records with status 200 and
an HTML type; WET keeps `conversion` records of type text/plain.

A kept record's payload is decoded from its transfer and content encodings, then to text: a
byte-order mark wins; a payload that is valid UTF-8 is UTF-8 (whatever is declared: valid UTF-8
with non-ASCII bytes is almost never another charset, and ASCII reads the same in all of them);
otherwise the HTTP header's charset, then the page's `<meta>` charset or, without one, the
charset detected by resiliparse (uchardet), then cp1252 (HTML5's default) — each strictly. The
`charset` column names the codec that decoded it.

Bad records are `Problem`s with the record's byte offset in the file (the gzip member's offset for
per-record gzip, Common Crawl's layout, so `offset` is what the CC index calls it): a payload
shorter than its Content-Length (a clipped record, a file cut short), a binary payload under a text
type, undecodable text or encodings. Where the stream itself breaks (corrupt gzip data, an invalid
WARC header), the bytes up to the next record start (the next gzip member, or `WARC/1.` in an
uncompressed file) are quarantined and reading goes on from there: a bad member costs one record,
not the rest of the file. ARC files: the records before the break are kept.
"""

from __future__ import annotations

import codecs
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from curate.readers.items import Item, Problem, Skip

# Metadata columns every web-archive row carries (name -> type name, as `input.columns`).
CRAWL_COLUMNS = {
    "url": "string",
    "date": "string",
    "warc_record_id": "string",
    "content_type": "string",
    "charset": "string",
}
HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_DECODED_PAYLOAD = 64 << 20  # a content-encoded payload inflating past this is bad input
BINARY_SAMPLE = 4096
MAX_CONTROL_BYTES = 0.05  # share of control bytes in the first BINARY_SAMPLE above which a payload is binary
CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"

MAGIC = {b"\x1f\x8b\x08": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4"}
RESYNC_WINDOW = 16 << 20  # bytes kept behind the read position, to restart after a corrupt record
MAX_QUARANTINED_BYTES = 1 << 20  # of a bad record's (or skipped region's) bytes, this much is quarantined


@dataclass(frozen=True)
class WarcSelection:
    """`input.warc`: which records of a web archive become rows; `None` takes the format's default."""

    record_types: tuple[str, ...] | None = None
    http_status: tuple[int, ...] | None = None  # () keeps any status
    mime_types: tuple[str, ...] | None = None  # () keeps any type; "text/*" matches a prefix

    def for_format(self, fmt: str) -> RecordFilter:
        wet = fmt == "wet"
        return RecordFilter(
            self.record_types if self.record_types is not None else (("conversion",) if wet else ("response",)),
            self.http_status if self.http_status is not None else (() if wet else (200,)),
            self.mime_types if self.mime_types is not None else (("text/plain",) if wet else HTML_TYPES),
        )


@dataclass(frozen=True)
class RecordFilter:
    """The selection for one format, defaults filled in."""

    record_types: tuple[str, ...]
    http_status: tuple[int, ...]
    mime_types: tuple[str, ...]

    def mime_matches(self, mime: str) -> bool:
        return not self.mime_types or any(
            mime == wanted or (wanted.endswith("/*") and mime.startswith(wanted[:-1])) for wanted in self.mime_types
        )


@dataclass
class ArchiveRecord:
    """What the selection and decoding need from one record, whichever library parsed it."""

    offset: int
    record_type: str
    record_id: str | None
    url: str | None
    date: str | None
    status: int | None  # None: not an HTTP record
    mime: str | None  # the type the selection reads (see the module docstring)
    charset: str | None  # declared in the HTTP Content-Type
    encodings: tuple[str, ...]  # transfer and content encodings still to undo, in order
    truncated: str | None  # WARC-Truncated: the crawler cut the payload (length, time, ...)
    languages: str | None  # WARC-Identified-Content-Language (WET)
    read_payload: Callable[[], tuple[bytes, int]]  # the payload and how many bytes are missing


def web_archive(fmt: str) -> Callable[..., Iterator[Item | Problem | Skip]]:
    """The reader of format `fmt` (warc, wet or arc) for `curate.readers.formats.FORMATS`."""

    def read(
        stream: io.BufferedIOBase, label: str, warc: WarcSelection | None = None, **_: Any
    ) -> Iterator[Item | Problem | Skip]:
        selection = (warc or WarcSelection()).for_format(fmt)
        records = arc_records(stream, label) if fmt == "arc" else warc_records(stream, label)
        for record in records:
            if isinstance(record, Problem):
                yield record
            else:
                yield to_item(record, label, selection)

    read.__name__ = read.__qualname__ = fmt
    read.__doc__ = f"{fmt.upper()} files: one row per selected record (see curate.readers.crawl)."
    return read


def to_item(record: ArchiveRecord, label: str, selection: RecordFilter) -> Item | Problem | Skip:
    """One record: passed over (`Skip`), bad (`Problem`), or a row's raw record (`Item`)."""
    if record.record_type not in selection.record_types:
        return Skip(f"record_type:{record.record_type}")
    if selection.http_status and record.status is not None and record.status not in selection.http_status:
        return Skip(f"http_status:{record.status}")
    if record.mime is not None and not selection.mime_matches(record.mime):  # passed over unread
        return Skip(f"mime_type:{record.mime}")
    where = f"record at byte {record.offset}"
    try:
        payload, missing = record.read_payload()
    except OSError as error:  # the stream broke inside this record
        return Problem(record.offset, label, f"{where}: unreadable payload: {error}")
    kept = payload[:MAX_QUARANTINED_BYTES]
    if missing:
        return Problem(record.offset, label, f"{where}: clipped: {missing} bytes missing of its declared length", kept)
    try:
        payload = undo_encodings(payload, record.encodings)
    except (OSError, zlib.error, ValueError) as error:
        return Problem(record.offset, label, f"{where}: {error}", kept)
    if not payload.strip():
        return Skip("empty_payload")
    mime = record.mime or sniff_mime(payload)
    if not selection.mime_matches(mime):
        return Skip(f"mime_type:{mime}")
    if is_binary(payload, record.charset):
        return Problem(record.offset, label, f"{where}: binary payload declared as {mime}", kept)
    decoded = decode_text(payload, record.charset)
    if isinstance(decoded, str):
        return Problem(record.offset, label, f"{where}: {decoded}", kept)
    text, charset = decoded
    row: dict[str, Any] = {
        "id": record.record_id or f"{label}:{record.offset}",
        "text": text,
        "url": record.url,
        "date": record.date,
        "warc_record_id": record.record_id,
        "content_type": mime,
        "charset": charset,
        "offset": record.offset,  # the rest lands in `meta`
    }
    if record.status is not None:
        row["http_status"] = record.status
    if record.truncated:
        row["warc_truncated"] = record.truncated
    if record.languages:
        row["languages"] = record.languages
    return Item(record.offset, row, label)


def mime_of(content_type: str | None) -> str | None:
    """'text/html; charset=UTF-8' -> 'text/html'."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return mime or None


def sniff_mime(payload: bytes) -> str:
    """A type for a record that declares none: HTML if it opens like HTML, text if it is text."""
    head = payload[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "text/html"
    return "application/octet-stream" if is_binary(payload, None) else "text/plain"


def is_binary(payload: bytes, declared_charset: str | None) -> bool:
    """Control bytes (NUL, ...) in more than 5% of the first 4 KiB: not text (unless UTF-16/32,
    which has NULs, is declared or announced by a byte-order mark)."""
    if (declared_charset or "").lower().startswith(("utf-16", "utf-32")) or bom_codec(payload):
        return False
    sample = payload[:BINARY_SAMPLE]
    return len(sample) - len(sample.translate(None, CONTROL_BYTES)) > MAX_CONTROL_BYTES * len(sample)


def undo_encodings(payload: bytes, encodings: tuple[str, ...]) -> bytes:
    """Undo HTTP transfer and content encodings (chunked, gzip, deflate, br), as fastwarc reads them."""
    from fastwarc.stream_io import BrotliReader, ChunkedReader

    for encoding in encodings:
        if encoding == "chunked":
            payload = ChunkedReader(io.BytesIO(payload)).read()
        elif encoding in ("gzip", "x-gzip", "deflate"):
            payload = inflate(payload, encoding)
        elif encoding == "br":
            payload = BrotliReader(io.BytesIO(payload)).read(MAX_DECODED_PAYLOAD + 1)
            if len(payload) > MAX_DECODED_PAYLOAD:
                raise ValueError(f"content-encoding br: inflates past {MAX_DECODED_PAYLOAD} bytes")
        elif encoding not in ("identity", ""):
            raise ValueError(f"unsupported encoding '{encoding}'")
    return payload


def inflate(payload: bytes, encoding: str) -> bytes:
    # wbits 47 reads gzip or zlib headers; servers that say deflate often send raw deflate (-15)
    for wbits in (47, -15) if encoding == "deflate" else (31,):
        decompressor = zlib.decompressobj(wbits)
        try:
            data = decompressor.decompress(payload, MAX_DECODED_PAYLOAD + 1)
        except zlib.error as error:
            last: Exception = error
            continue
        if len(data) > MAX_DECODED_PAYLOAD:
            raise ValueError(f"content-encoding {encoding}: inflates past {MAX_DECODED_PAYLOAD} bytes")
        return data
    raise ValueError(f"content-encoding {encoding}: corrupt data ({last})")


BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def bom_codec(payload: bytes) -> str | None:
    return next((name for bom, name in BOMS if payload.startswith(bom)), None)


def codec_name(label: str | None) -> str | None:
    """Python's codec for a charset label, as browsers map it (HTML5: iso-8859-1 reads as cp1252)."""
    if not label:
        return None
    from resiliparse.parse.encoding import map_encoding_to_html5

    name = map_encoding_to_html5(label.strip().strip("\"'"), fallback_utf8=False)
    try:
        return codecs.lookup(name).name if name else None
    except LookupError:
        return None


def decode_text(payload: bytes, declared: str | None) -> tuple[str, str] | str:
    """(text, codec) of a payload, or why it cannot be decoded (see the module docstring)."""
    bom = bom_codec(payload)
    if bom:
        bom_length = next(len(mark) for mark, name in BOMS if name == bom)
        try:
            return payload[bom_length:].decode(bom), bom
        except UnicodeDecodeError as error:
            return f"invalid {bom} after its byte-order mark at byte {error.start + bom_length}"
    tried: list[str] = []
    for name in charset_candidates(payload, codec_name(declared)):
        if name in tried:
            continue
        tried.append(name)
        try:
            return payload.decode(name), name
        except UnicodeDecodeError:
            continue
    return f"not decodable as any of {', '.join(tried)} (declared: {declared or 'none'})"


def charset_candidates(payload: bytes, declared: str | None) -> Iterator[str]:
    """The codecs to try, in order; the detection runs only if the earlier ones fail."""
    from resiliparse.parse.encoding import detect_encoding

    if declared and declared.startswith(("utf-16", "utf-32")):
        yield declared
    yield "utf-8"
    if declared:
        yield declared
    found = codec_name(detect_encoding(payload, from_html_meta=True))  # <meta> charset, else uchardet's guess
    if found:
        yield found
    yield "cp1252"


# --- WARC and WET: fastwarc --------------------------------------------------------------------


class RewindableReader:
    """A forward-only stream that knows its position and keeps its last `window` bytes, so that
    reading can restart a little further on after a corrupt record without seeking the file (the
    engine's hashing reader cannot seek). It is what fastwarc needs of a Python stream: `read`
    and `tell` (fastwarc reports record offsets from `tell`)."""

    def __init__(self, stream: io.BufferedIOBase, window: int = RESYNC_WINDOW):
        self.stream = stream
        self.window = window
        self.position = 0  # offset of the next byte `read` returns
        self.chunks: list[tuple[int, bytes]] = []  # (offset, bytes) read lately, in order
        self.kept = 0
        self.pending = b""  # bytes to return again after a rewind, before the stream's

    def read(self, size: int = -1) -> bytes:
        if self.pending:
            data = self.pending if size < 0 else self.pending[:size]
            self.pending = self.pending[len(data) :]
        else:
            data = self.stream.read(size)
            self.remember(self.position, data)
        self.position += len(data)
        return data

    def remember(self, offset: int, data: bytes) -> None:
        if data:
            self.chunks.append((offset, data))
            self.kept += len(data)
        while self.chunks and self.kept - len(self.chunks[0][1]) >= self.window:
            self.kept -= len(self.chunks.pop(0)[1])

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if (offset, whence) in ((0, io.SEEK_CUR), (self.position, io.SEEK_SET)):
            return self.position
        raise OSError("a web archive is read forward only")

    def close(self) -> None:  # the engine closes the file
        pass

    def resync(self, after: int, magic: bytes) -> tuple[int, bytes] | None:
        """Rewind to the first occurrence of `magic` after offset `after`; return its offset and the
        bytes skipped before it (as far as the window kept them), or None at the end of the file."""
        kept = [(offset, data) for offset, data in self.chunks if offset + len(data) > after]
        if not kept or kept[0][0] > after + 1:
            return None  # the failure is further back than the window reaches
        base = kept[0][0]
        buffer = b"".join(data for _, data in kept) + self.pending
        self.pending = b""
        searched = after + 1 - base
        while True:
            found = buffer.find(magic, searched)
            if found >= 0:
                resume = base + found
                self.pending = buffer[found:]
                self.position = resume
                return resume, buffer[after - base : found][:MAX_QUARANTINED_BYTES]
            searched = max(searched, len(buffer) - len(magic) + 1)
            more = self.stream.read(1 << 20)
            if not more:
                return None
            self.remember(base + len(buffer), more)
            buffer += more
            if len(buffer) > 2 * self.window:  # skip far ahead without holding it all
                drop = len(buffer) - self.window
                buffer, base, searched = buffer[drop:], base + drop, max(0, searched - drop)


def head_bytes(stream: io.BufferedIOBase, n: int) -> bytes:
    return stream.peek(n)[:n] if isinstance(stream, io.BufferedReader) else b""


def archive_codec(stream: io.BufferedIOBase) -> str | None:
    """gzip, zstd or lz4 by the first bytes of `stream`, or None (uncompressed)."""
    head = head_bytes(stream, 4)
    return next((name for magic, name in MAGIC.items() if head.startswith(magic)), None)


def decompressing(codec: str | None, reader: RewindableReader) -> Any:
    """A fastwarc reader of `reader` for its codec (None: the reader itself)."""
    from fastwarc.stream_io import GzipReader, Lz4Reader, ZstdReader

    return {"gzip": GzipReader, "zstd": ZstdReader, "lz4": Lz4Reader}[codec](reader) if codec else reader


def warc_records(stream: io.BufferedIOBase, label: str) -> Iterator[ArchiveRecord | Problem]:
    """The records of a WARC or WET file. Where the stream breaks (corrupt compressed data, an
    invalid WARC header), the bytes up to the next record start (the next gzip member or
    compressed frame, or `WARC/1.` for an uncompressed file) are quarantined and reading goes on."""
    from fastwarc.warc import ArchiveIterator

    codec = archive_codec(stream)
    magic = next((m for m, name in MAGIC.items() if name == codec), b"WARC/1.")
    reader = RewindableReader(stream)
    while True:
        source = decompressing(codec, reader)
        last = reader.tell() - 1
        try:
            for record in ArchiveIterator(source, parse_http=True, stream_detect=False, auto_decode="none"):
                last = record.stream_pos
                yield fastwarc_record(record)
            return
        except OSError as error:
            frame = source.frame_start_position() if codec else None
            if frame is not None and frame > last:  # a compressed member or frame: its start is known
                broken, where = frame, f"bytes from {frame}"
            else:  # somewhere after the last good record (uncompressed: no boundary to tell)
                broken, where = last + 1, f"data after the record at byte {last}" if last >= 0 else "data"
            found = reader.resync(broken, magic)
            if found is None:
                yield Problem(broken, label, f"unreadable {where} to the end of the file ({error})")
                return
            resume, skipped = found
            yield Problem(broken, label, f"unreadable {where} to byte {resume} ({error}); read on from there", skipped)


def fastwarc_record(record: Any) -> ArchiveRecord:
    headers = record.headers
    http = record.is_http and record.http_headers.status_code is not None
    http_headers = record.http_headers if http else None
    identified = mime_of(headers.get("WARC-Identified-Payload-Type"))
    declared = mime_of((http_headers if http_headers is not None else headers).get("Content-Type"))
    encodings: tuple[str, ...] = ()
    if http_headers is not None:
        transfer = [e.strip().lower() for e in (http_headers.get("Transfer-Encoding") or "").split(",") if e.strip()]
        content = [e.strip().lower() for e in (http_headers.get("Content-Encoding") or "").split(",") if e.strip()]
        encodings = (*transfer[::-1], *content[::-1])  # undone last-applied first

    def read_payload() -> tuple[bytes, int]:
        payload = record.reader.read()
        return payload, max(0, record.content_length - len(payload))

    return ArchiveRecord(
        offset=record.stream_pos,
        record_type=str(record.record_type),
        record_id=headers.get("WARC-Record-ID"),
        url=target_uri(headers.get("WARC-Target-URI")),
        date=headers.get("WARC-Date"),
        status=http_headers.status_code if http_headers is not None else None,
        mime=identified or declared,
        charset=record.http_charset if http else None,
        encodings=encodings,
        truncated=headers.get("WARC-Truncated"),
        languages=headers.get("WARC-Identified-Content-Language"),
        read_payload=read_payload,
    )


def target_uri(uri: str | None) -> str | None:
    """WARC 1.0 wrote the target URI in angle brackets (wget still does): drop them."""
    if uri and uri.startswith("<") and uri.endswith(">"):
        return uri[1:-1]
    return uri


# --- ARC: warcio -------------------------------------------------------------------------------


def arc_records(stream: io.BufferedIOBase, label: str) -> Iterator[ArchiveRecord | Problem]:
    """ARC records through warcio (which presents them as WARC `response` records). warcio reads
    only per-record gzip, so gzip is decompressed here first: ARC offsets are in the decompressed
    stream. ARC has no record ids (warcio would invent random ones): rows get `<file>:<offset>`."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    source: Any = stream
    if head_bytes(stream, 2) == b"\x1f\x8b":
        from fastwarc.stream_io import GzipReader

        source = GzipReader(RewindableReader(stream, window=0))
    records = ArchiveIterator(source, arc2warc=True)
    iterator = iter(records)
    offset = 0
    while True:
        try:
            record = next(iterator)
            # the payload first: warcio finds a record's offset by reading it to its end
            payload = record.content_stream().read()  # chunked and content encodings undone
            missing = max(0, int(getattr(record.raw_stream, "limit", 0)))
            offset = records.get_record_offset()
        except StopIteration:
            return
        except (ArchiveLoadFailed, OSError, EOFError, ValueError) as error:
            yield Problem(offset, label, f"unreadable after byte {offset} ({error}); the rest of the file is not read")
            return
        yield warcio_record(record, offset, payload, missing)


def warcio_record(record: Any, offset: int, payload: bytes, missing: int) -> ArchiveRecord:
    http_headers = record.http_headers
    status = http_headers.get_statuscode() if http_headers is not None else None
    content_type = http_headers.get_header("Content-Type") if http_headers is not None else None
    content_type = content_type or record.rec_headers.get_header("Content-Type")
    charset = None
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip()
    return ArchiveRecord(
        offset=offset,
        record_type=record.rec_type,
        record_id=None,
        url=record.rec_headers.get_header("WARC-Target-URI"),
        date=record.rec_headers.get_header("WARC-Date"),
        status=int(status) if status and str(status).isdigit() else None,
        mime=mime_of(content_type),
        charset=charset,
        encodings=(),
        truncated=None,
        languages=None,
        read_payload=lambda: (payload, missing),
    )
