"""FineWeb's quality rules (Penedo et al. 2024, "The FineWeb Datasets", section 3.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import pyarrow as pa
import pyarrow.compute as pc

from curate.stages.rules import Rule, RuleFilter, texts_of
from curate.text_stats import TERMINAL_PUNCTUATION, duplicates, word_ids


@dataclass
class FineWebQuality(RuleFilter):
    """FineWeb's line-structure rules: drop pages made of fragments, lists or repeated lines.

    Over the page's non-blank lines, a page is dropped (first rule broken, in this order) if it
    has no line (`fineweb_empty`); fewer than `line_punct_thr` of its lines end in terminal
    punctuation (`fineweb_line_punct_ratio`; with `line_punct_exclude_zero`, pages with no such
    line are exempt); more than `short_line_thr` of its lines are at most `short_line_length`
    characters (`fineweb_short_line_ratio`); more than `char_duplicates_ratio` of its characters
    are in lines repeating an earlier line (`fineweb_char_dup_ratio`); more than `new_line_ratio`
    newlines per word (`fineweb_list_ratio`). Set a threshold to null to disable its rule.

    Defaults: Penedo et al. 2024 (FineWeb), as datatrove's FineWebQualityFilter: 0.12, 0.67 of
    lines <= 30 characters, 0.01, 0.3; terminal punctuation = Unicode's Sentence_Terminal set.
    Run it after `c4`, as FineWeb did. Score columns: fineweb_lines, fineweb_line_punct_ratio,
    fineweb_short_line_ratio, fineweb_char_dup_ratio, fineweb_newline_ratio.
    """

    config_name: ClassVar[str] = "fineweb_quality"
    provides: ClassVar[dict[str, pa.DataType]] = {
        "fineweb_lines": pa.int32(),
        "fineweb_line_punct_ratio": pa.float64(),
        "fineweb_short_line_ratio": pa.float64(),
        "fineweb_char_dup_ratio": pa.float64(),
        "fineweb_newline_ratio": pa.float64(),
    }

    line_punct_thr: Optional[float] = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: Optional[float] = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: Optional[float] = 0.01
    new_line_ratio: Optional[float] = 0.3
    stop_chars: Optional[list[str]] = None  # line endings that count as punctuation; default: sentence terminals

    def __post_init__(self) -> None:
        self._stop_chars = tuple(self.stop_chars) if self.stop_chars else tuple(sorted(TERMINAL_PUNCTUATION))

    def validate(self) -> None:
        if self.short_line_length < 0:
            raise ValueError("short_line_length: must be >= 0")

    def score(self, batch: pa.RecordBatch) -> dict[str, list]:
        texts = texts_of(batch)
        words = word_ids(texts).counts().tolist()
        return self.score_columns([self.document_stats(text, n) for text, n in zip(texts, words)])

    def document_stats(self, text: str, words: int) -> tuple:
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            return 0, 0.0, 0.0, 0.0, 0.0
        n = len(lines)
        chars = len(text) - text.count("\n")
        return (
            n,
            sum(1 for line in lines if line.endswith(self._stop_chars)) / n,
            sum(1 for line in lines if len(line) <= self.short_line_length) / n,
            duplicates(lines)[1] / chars,
            text.count("\n") / words if words else 0.0,
        )

    def rules(self) -> list[Rule]:
        return [
            Rule("fineweb_empty", "fineweb_lines", "<", 1),
            Rule("fineweb_line_punct_ratio", "fineweb_line_punct_ratio", "<", self.line_punct_thr),
            Rule("fineweb_short_line_ratio", "fineweb_short_line_ratio", ">", self.short_line_thr),
            Rule("fineweb_char_dup_ratio", "fineweb_char_dup_ratio", ">", self.char_duplicates_ratio),
            Rule("fineweb_list_ratio", "fineweb_newline_ratio", ">", self.new_line_ratio),
        ]

    def decide(self, batch: pa.RecordBatch) -> pa.Array:
        if self.line_punct_exclude_zero:
            # Pages without a single punctuated line are exempt from the punctuation rule.
            index = batch.schema.get_field_index("fineweb_line_punct_ratio")
            ratio = batch.column(index)
            exempt = pc.if_else(pc.equal(ratio, 0.0), float("inf"), ratio)
            batch = batch.set_column(index, batch.schema.field(index), exempt)
        return super().decide(batch)
