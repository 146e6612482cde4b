"""C4's cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", section 2.2).

C4 cleans a page line by line, then keeps or drops the page: it keeps only lines that end in
terminal punctuation and have at least 3 words, removes lines mentioning javascript or cookie
and policy notices, drops pages with "lorem ipsum" or a curly bracket, and pages left with
fewer than 5 sentences. This stage rewrites `text` to the kept lines, so run it after the rules
that need the page as it was (Gopher's), and before the ones that should see the cleaned page
(FineWeb's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

import pyarrow as pa
import pyarrow.compute as pc

from curate.stages.base import RowResult, split_by_reason, with_columns
from curate.stages.rules import Rule, RuleFilter
from curate.text_stats import count_sentences

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


def load_bad_words(path: str | Path) -> list[str]:
    """A bad-words list: one word or phrase per line (the LDNOOBW format C4 used); blanks and '#' comments skipped."""
    words = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        word = line.strip().lower()
        if word and not word.startswith("#"):
            words.append(word)
    return words


@dataclass
class C4Filter(RuleFilter):
    """C4's line cleaning and page rules; rewrites `text` to the lines it keeps.

    Line by line (after stripping): a line with a word longer than `max_word_length` characters
    is removed; Wikipedia-style citations ("[1]", "[edit]", "[citation needed]") are removed from
    it (`remove_citations`); it is removed unless it ends in terminal punctuation (. ? ! " ') and
    not in an ellipsis (`filter_no_terminal_punct`), or if it has fewer than
    `min_words_per_line` words, mentions "javascript" (`filter_javascript`) or a cookie / terms /
    privacy notice (`filter_policy`). The page is dropped as soon as a remaining line contains
    "lorem ipsum" (`c4_lorem_ipsum`) or "{" (`c4_curly_bracket`); then if the kept lines hold
    fewer than `min_num_sentences` sentences (`c4_too_few_sentences`; sentences counted as
    spaCy's sentencizer does); then if nothing is left (`c4_empty`, with `drop_empty`); then, if `bad_words_path`
    is set, if the page contains a word of that list (`c4_bad_words`). Dropped rows keep their
    original text in the rejects.

    Defaults: Raffel et al. 2020, section 2.2, and TensorFlow Datasets' c4_utils, as datatrove's
    C4QualityFilter: terminal punctuation required, >= 3 words per line, >= 5 sentences, words
    <= 1000 characters. The bad-words rule (C4 used the LDNOOBW list) is off by default: nothing
    is downloaded at run time, so point `bad_words_path` at a local copy of the list.
    Score columns: c4_kept_lines, c4_removed_lines, c4_sentences, c4_lorem_ipsum,
    c4_curly_bracket, c4_bad_words.
    """

    config_name: ClassVar[str] = "c4"
    provides: ClassVar[dict[str, pa.DataType]] = {
        "c4_kept_lines": pa.int32(),
        "c4_removed_lines": pa.int32(),
        "c4_sentences": pa.int32(),
        "c4_lorem_ipsum": pa.bool_(),
        "c4_curly_bracket": pa.bool_(),
        "c4_bad_words": pa.bool_(),
    }

    remove_citations: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: Optional[int] = 5
    min_words_per_line: Optional[int] = 3
    max_word_length: Optional[int] = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True
    drop_empty: bool = True  # drop pages with no line left (matters only if min_num_sentences is off)
    bad_words_path: Optional[str] = None
    bad_words_match_words: bool = True  # match whole words only; False for languages without spaces (ja, th, zh)

    def validate(self) -> None:
        if self.bad_words_path is not None:
            path = Path(self.bad_words_path)
            if not path.is_file():
                raise ValueError(f"bad_words_path: no such file: {path}")
            if not load_bad_words(path):
                raise ValueError(f"bad_words_path: {path} holds no words")

    def __post_init__(self) -> None:
        self._bad_words: re.Pattern | None = None

    def setup(self) -> None:
        if self.bad_words_path is not None:
            alternatives = "|".join(
                re.escape(w) for w in sorted(load_bad_words(self.bad_words_path), key=len, reverse=True)
            )
            pattern = rf"(?:\W|^)(?:{alternatives})(?:\W|$)" if self.bad_words_match_words else alternatives
            self._bad_words = re.compile(pattern)

    def clean(self, text: str) -> tuple[str, tuple]:
        """The kept lines of `text`, and its score row."""
        kept: list[str] = []
        sentences = removed = 0
        lorem = curly = False
        for line in text.splitlines():
            line = line.strip()
            words = line.split()
            if self.max_word_length is not None and any(len(w) > self.max_word_length for w in words):
                removed += 1
                continue
            if self.remove_citations:
                line = CITATION.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                removed += 1
                continue
            if self.min_words_per_line is not None and len(words) < self.min_words_per_line:
                removed += 1
                continue
            lower = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in lower:
                lorem = True
                break
            if self.filter_javascript and "javascript" in lower:
                removed += 1
                continue
            if self.filter_curly_bracket and "{" in line:
                curly = True
                break
            if self.filter_policy and any(phrase in lower for phrase in POLICY_PHRASES):
                removed += 1
                continue
            sentences += count_sentences(line)
            kept.append(line)
        cleaned = "\n".join(kept).strip()
        bad = bool(self._bad_words is not None and self._bad_words.search(cleaned.lower()))
        return cleaned, (len(kept), removed, sentences, lorem, curly, bad)

    def score(self, batch: pa.RecordBatch) -> dict:
        return self._clean_batch(batch)[1]

    def _clean_batch(self, batch: pa.RecordBatch) -> tuple[list[str], dict]:
        results = [self.clean(text) for text in batch.column("text").to_pylist()]
        return [r[0] for r in results], self.score_columns([r[1] for r in results])

    def rules(self) -> list[Rule]:
        return [
            Rule("c4_lorem_ipsum", "c4_lorem_ipsum", "==", True if self.filter_lorem_ipsum else None),
            Rule("c4_curly_bracket", "c4_curly_bracket", "==", True if self.filter_curly_bracket else None),
            Rule("c4_too_few_sentences", "c4_sentences", "<", self.min_num_sentences),
            Rule("c4_empty", "c4_kept_lines", "<", 1 if self.drop_empty else None),
            Rule("c4_bad_words", "c4_bad_words", "==", True if self.bad_words_path else None),
        ]

    def process(self, batch: pa.RecordBatch) -> RowResult:
        cleaned, columns = self._clean_batch(batch)
        batch = with_columns(batch, columns, self.provided_columns())
        reasons = self.decide(batch)
        # Kept rows get the cleaned text; dropped rows keep the page as it was, for inspection.
        index = batch.schema.get_field_index("text")
        text = pc.if_else(pc.is_null(reasons), pa.array(cleaned, pa.string()), batch.column(index))
        batch = batch.set_column(index, batch.schema.field(index), text)
        return split_by_reason(batch, reasons)
