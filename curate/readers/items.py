"""What container formats yield: `Item`s (a raw record with its position), `Problem`s (bad
input found while parsing, quarantined with file and position) and `Skip`s (records a format
passes over on purpose, counted by reason), and the line helpers they share."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass


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


@dataclass
class Skip:
    """A record passed over on purpose (a WARC request record, a 404 response): not a row, not bad
    input; counted by reason in the manifest's `inputs[].skipped`."""

    reason: str


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"invalid UTF-8 at byte {error.start}") from None


def raw_lines(stream: io.BufferedIOBase, label: str) -> Iterator[tuple[int, bytes] | Problem]:
    """(line number, bytes) of each line; a stream that breaks off is a Problem, and the end."""
    position = 0
    while True:
        try:
            line = stream.readline()
        except (EOFError, OSError) as error:
            yield Problem(position + 1, label, f"truncated or corrupt stream: {error}")
            return
        if not line:
            return
        position += 1
        yield position, line
