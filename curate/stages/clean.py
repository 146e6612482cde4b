"""Text cleanup: unicode normalisation, whitespace cleanup, and length bounds (the `clean` recipe)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import ClassVar, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc

from curate.stages.base import FilterStage, MapStage
from curate.stages.rules import Rule, first_broken

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TRAILING_SPACES = re.compile(r"[ \t]+$", re.MULTILINE)


@dataclass
class NormalizeText(MapStage):
    """Normalise unicode and whitespace in `text`, losslessly for prose.

    Defaults: NFC (canonical composition: the same characters, one encoding; NFKC also folds
    compatibility forms such as full-width letters and ligatures, as Galactica did, but changes
    meaning in maths and code). Newlines become "\\n"; control characters other than tab and
    newline are removed; trailing spaces are stripped and runs of blank lines are capped at
    `max_blank_lines`. Not for source code, whose whitespace is meaningful (see the code recipe).
    """

    config_name: ClassVar[str] = "normalize"

    unicode_form: str = "NFC"  # NFC, NFKC, NFD, NFKD, or "none"
    normalize_newlines: bool = True
    remove_control_chars: bool = True
    strip_trailing_spaces: bool = True
    max_blank_lines: int = 2  # -1 keeps every blank line

    def validate(self) -> None:
        if self.unicode_form not in ("NFC", "NFKC", "NFD", "NFKD", "none"):
            raise ValueError("unicode_form: must be one of NFC, NFKC, NFD, NFKD, none")

    def clean(self, text: str) -> str:
        if self.unicode_form != "none":
            form = cast(Literal["NFC", "NFKC", "NFD", "NFKD"], self.unicode_form)  # a str option, checked by validate
            text = unicodedata.normalize(form, text)
        if self.normalize_newlines:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if self.remove_control_chars:
            text = CONTROL_CHARS.sub("", text)
        if self.strip_trailing_spaces:
            text = TRAILING_SPACES.sub("", text)
        if self.max_blank_lines >= 0:
            text = re.sub(rf"\n{{{self.max_blank_lines + 2},}}", "\n" * (self.max_blank_lines + 1), text)
        return text.strip()

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        index = batch.schema.get_field_index("text")
        cleaned = pa.array([self.clean(t) for t in batch.column(index).to_pylist()], pa.string())
        return batch.set_column(index, batch.schema.field(index), cleaned)


@dataclass
class LengthFilter(FilterStage):
    """Keep documents whose length in characters is within [min_chars, max_chars].

    Defaults: 50 .. 1,000,000 characters — engineering bounds that remove empty stubs and
    pathological giants; the published word-count rules are in `gopher_quality` (50..100,000
    words, Rae et al. 2021). Score column: `n_chars`.
    """

    config_name: ClassVar[str] = "length_filter"
    provides: ClassVar[dict[str, pa.DataType]] = {"n_chars": pa.int64()}

    min_chars: int = 50
    max_chars: int = 1_000_000

    def validate(self) -> None:
        if not 0 <= self.min_chars <= self.max_chars:
            raise ValueError("min_chars: must be >= 0 and <= max_chars")

    def score(self, batch: pa.RecordBatch) -> dict:
        return {"n_chars": pc.utf8_length(batch.column("text")).cast(pa.int64())}

    def decide(self, batch: pa.RecordBatch) -> pa.Array:
        return first_broken(batch, self.rules())

    def rules(self) -> list[Rule]:
        return [Rule("too_short", "n_chars", "<", self.min_chars), Rule("too_long", "n_chars", ">", self.max_chars)]
