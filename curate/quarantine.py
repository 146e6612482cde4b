"""Reading the quarantine back: bad input rows grouped by reason, each group with its first row as
an example. What the end-of-run summary, the quarantine-share check (`input.max_quarantine_frac`),
`thresher inspect` and the report show.

Errors are grouped by field and message with the particulars folded (numbers become `N`, quoted
values `'…'`): "line 17: malformed JSON ... column 5" and "... column 9" are one reason. Grouping is
vectorised (pyarrow compute) and reads the quarantine files one at a time without their raw bytes,
so it stays quick for millions of bad rows; only the examples' raw bytes are read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from curate import fs
from curate.arrow_io import read_table

EXAMPLE_CHARS = 160  # of an example row's raw bytes, shown in messages


@dataclass
class QuarantineReason:
    """One kind of bad input: how many rows, and the first of them (file, position, raw bytes)."""

    field: str | None
    error: str  # the first row's message, as written
    count: int
    file: str
    position: int
    raw: bytes = b""

    def describe(self) -> str:
        return f"field '{self.field}': {self.error}" if self.field else self.error

    def example(self) -> str:
        """`file:position: raw bytes` (cut, one line)."""
        where = f"{self.file}:{self.position}" if self.position else self.file
        text = self.raw.decode("utf-8", "replace").strip().replace("\n", "\\n")
        if len(text) > EXAMPLE_CHARS:
            text = text[:EXAMPLE_CHARS] + "…"
        return f"{where}: {text}" if text else where

    def line(self) -> str:
        """`N × reason (e.g. file:position: raw)`, the way messages list a reason."""
        return f"{self.count:,} × {self.describe()} (e.g. {self.example()})"


def reason_keys(table: pa.Table) -> pa.Array:
    """The grouping key of each quarantined row: its field and its message with the particulars folded."""
    error = pc.fill_null(table.column("error"), "")
    error = pc.replace_substring_regex(error, r"'[^']*'|\"[^\"]*\"", "'…'")
    error = pc.utf8_slice_codeunits(pc.replace_substring_regex(error, r"\d+", "N"), 0, 160)
    field = pc.fill_null(table.column("field"), "")
    return pc.binary_join_element_wise(field, error, "\x00")


def quarantine_reasons(paths: Iterable[Path | str], top: int = 5) -> list[QuarantineReason]:
    """The `top` most frequent reasons in the quarantine files `paths` (Arrow streams of
    `curate.schema.QUARANTINE`, local or on object storage), largest first, each with its first row
    as an example."""
    counts: Counter[str] = Counter()
    first: dict[str, tuple[Path | str, int, dict]] = {}
    for path in paths:
        if not fs.is_file(path) or not fs.stat(path).size:
            continue
        table = read_table(path, ["file", "position", "field", "error"])
        if not table.num_rows:
            continue
        keys = reason_keys(table)
        for item in pc.value_counts(keys).to_pylist():
            key, count = item["values"], item["counts"]
            counts[key] += count
            if key not in first:
                index = pc.index(keys, key).as_py()
                first[key] = (path, index, table.slice(index, 1).to_pylist()[0])
    reasons = []
    for key, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]:
        path, index, row = first[key]
        raw = read_table(path, ["raw"]).column("raw")[index].as_py() or b""
        reasons.append(QuarantineReason(row["field"], row["error"] or "", count, row["file"], row["position"], raw))
    return reasons
