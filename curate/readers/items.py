"""What container formats yield: `Item`s (a raw record with its position), `Problem`s (bad
input found while parsing, quarantined with file and position), `Skip`s (records a format
passes over on purpose, counted by reason) and `SkippedFile`s (archive members not read, listed
with the input files), and the line helpers they share."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

from curate.readers.files import InflateLimit


@dataclass
class Item:
    position: int  # line for line formats, item/row index (1-based) otherwise
    record: dict
    label: str  # the file (or archive member) the record came from
    raw: bytes | None = None  # the raw bytes, kept for quarantine; built lazily for columnar rows


@dataclass
class Problem:
    position: int
    label: str
    error: str
    raw: bytes = b""
    field: str | None = None


BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark: some editors and exporters start files with it
RAW_KEPT = 1 << 16  # bytes of an oversized line or file kept in the quarantine (its file and position find the rest)


@dataclass
class Skip:
    """A record passed over on purpose (a WARC request record, a 404 response): not a row, not bad
    input; counted by reason in the dataset's `inputs.arrow` (`passed_over`)."""

    reason: str


@dataclass
class SkippedFile:
    """A file inside an archive that is not read (a name of no known format, an archive inside the
    archive): listed in the dataset's `inputs.arrow` as `<archive path>/<member path>` with the
    reason, as a file found in a folder is."""

    label: str  # the archive's label / the member's path in the archive
    reason: str


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"invalid UTF-8 at byte {error.start}") from None


def stream_problem(position: int, label: str, error: Exception) -> Problem:
    """The Problem for a stream that stopped: an inflate bound hit, or a truncated or corrupt stream."""
    if isinstance(error, InflateLimit):
        return Problem(position, label, str(error))
    return Problem(position, label, f"truncated or corrupt stream: {error}")


def raw_lines(
    stream: io.BufferedIOBase, label: str, max_bytes: int = 64 << 20, byte_offset: int | None = None
) -> Iterator[tuple[int, bytes] | Problem]:
    """(line number, bytes) of each line, without a leading byte order mark. A line longer than
    `max_bytes` is a Problem (its start kept) and is skipped without being held in memory; a stream
    that breaks off is a Problem, and the end. With `byte_offset` (the stream is a part of a file
    that starts at that byte), positions are the lines' byte offsets in the file instead."""
    number, offset = 0, byte_offset or 0

    def position() -> int:
        return number if byte_offset is None else offset

    while True:
        try:
            line = stream.readline(max_bytes + 1)
            if len(line) > max_bytes and not line.endswith(b"\n"):
                size = len(line) + skip_line(stream)
                number += 1
                yield Problem(
                    position(),
                    label,
                    f"line of {size} bytes exceeds input.max_doc_mb ({max_bytes} bytes); "
                    f"its first {RAW_KEPT} bytes are kept",
                    line[:RAW_KEPT],
                )
                offset += size
                continue
        except (EOFError, OSError) as error:
            number += 1
            yield stream_problem(position(), label, error)
            return
        if not line:
            return
        number += 1
        yield position(), line.removeprefix(BOM) if number == 1 and not offset else line
        offset += len(line)


def skip_line(stream: io.BufferedIOBase, chunk: int = 1 << 20) -> int:
    """Read past the end of the current line; return how many bytes were skipped."""
    skipped = 0
    while True:
        part = stream.readline(chunk)
        skipped += len(part)
        if not part or part.endswith(b"\n"):
            return skipped


def read_whole(stream: io.BufferedIOBase, label: str, max_bytes: int | None = None) -> bytes | Problem:
    """The whole stream without a leading byte order mark (at most `max_bytes`: more is a Problem),
    or the Problem that stopped reading it."""
    try:
        data = stream.read() if max_bytes is None else stream.read(max_bytes + 1)
    except (EOFError, OSError) as error:
        return stream_problem(1, label, error)
    if max_bytes is not None and len(data) > max_bytes:
        return Problem(
            1, label, f"file of more than {max_bytes} bytes exceeds input.max_doc_mb for one document", data[:RAW_KEPT]
        )
    return data.removeprefix(BOM)
