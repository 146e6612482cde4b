"""Gopher's quality and repetition rules (Rae et al. 2021, "Scaling Language Models", appendix A1).

Two filters, each a score columns + rules stage: `gopher_quality` (length, word length, symbols,
bullets, ellipses, alphabetic words, stop words) and `gopher_repetition` (duplicate lines and
paragraphs, most frequent n-grams, duplicated n-grams). Defaults are the paper's, as published
in datatrove (GopherQualityFilter, GopherRepetitionFilter); each rule checks in datatrove's order
and reports the first it breaks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar, Optional

import pyarrow as pa

from curate.stages.rules import Rule, RuleFilter
from curate.text_stats import (
    PUNCTUATION_CHARS,
    NGrams,
    duplicates,
    split_lines,
    split_paragraphs,
    words_of,
)

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


def has_letter(word: str) -> bool:
    return word.isalpha() or any(map(str.isalpha, word))


@dataclass
class GopherQuality(RuleFilter):
    """Gopher's quality rules: drop documents that do not look like prose.

    A document is dropped (first rule broken, in this order) if it has fewer than `min_doc_words`
    or more than `max_doc_words` words (tokens with a character that is not punctuation); a mean
    word length outside [`min_avg_word_length`, `max_avg_word_length`]; more than
    `max_symbol_word_ratio` "#" or ellipses per token; more than `max_bullet_lines_ratio` of its
    lines starting with a bullet ("•", "-") or `max_ellipsis_lines_ratio` ending with an
    ellipsis; fewer than `min_alpha_words_ratio` of its tokens containing a letter; fewer than
    `min_stop_words` distinct `stop_words`. Words are cut as spaCy's English tokenizer does
    (`curate.text_stats.split_words`). Set a threshold to null to disable its rule.

    Defaults: Rae et al. 2021 (Gopher), table A1, as datatrove's GopherQualityFilter: 50..100,000
    words, mean word length 3..10, symbol/word <= 0.1, bullet lines <= 0.9, ellipsis lines <= 0.3,
    >= 80% words with a letter, >= 2 of {the, be, to, of, and, that, have, with}.
    Score columns: gopher_words, gopher_mean_word_length, gopher_hash_ratio,
    gopher_ellipsis_ratio, gopher_bullet_lines, gopher_end_ellipsis_lines, gopher_alpha_words,
    gopher_stop_words.
    """

    config_name: ClassVar[str] = "gopher_quality"
    provides: ClassVar[dict[str, pa.DataType]] = {
        "gopher_words": pa.int32(),
        "gopher_mean_word_length": pa.float64(),
        "gopher_hash_ratio": pa.float64(),
        "gopher_ellipsis_ratio": pa.float64(),
        "gopher_bullet_lines": pa.float64(),
        "gopher_end_ellipsis_lines": pa.float64(),
        "gopher_alpha_words": pa.float64(),
        "gopher_stop_words": pa.int32(),
    }

    min_doc_words: Optional[int] = 50
    max_doc_words: Optional[int] = 100_000
    min_avg_word_length: Optional[float] = 3.0
    max_avg_word_length: Optional[float] = 10.0
    max_symbol_word_ratio: Optional[float] = 0.1
    max_bullet_lines_ratio: Optional[float] = 0.9
    max_ellipsis_lines_ratio: Optional[float] = 0.3
    min_alpha_words_ratio: Optional[float] = 0.8
    min_stop_words: Optional[int] = 2
    stop_words: list[str] = field(default_factory=lambda: list(GOPHER_STOP_WORDS))

    def validate(self) -> None:
        if (
            self.min_doc_words is not None
            and self.max_doc_words is not None
            and self.min_doc_words > self.max_doc_words
        ):
            raise ValueError("min_doc_words: must be <= max_doc_words")
        if (
            self.min_avg_word_length is not None
            and self.max_avg_word_length is not None
            and self.min_avg_word_length > self.max_avg_word_length
        ):
            raise ValueError("min_avg_word_length: must be <= max_avg_word_length")
        if self.min_stop_words and not self.stop_words:
            raise ValueError("stop_words: give at least one stop word, or set min_stop_words=null")

    def __post_init__(self) -> None:
        self._stop_words = frozenset(self.stop_words)

    def document_stats(self, text: str) -> tuple:
        words = words_of(text)
        n_tokens = len(words)
        # each distinct token once (counted in C): text repeats its words
        n_words = word_chars = alpha_words = 0
        for word, times in Counter(words).items():
            if word.strip(PUNCTUATION_CHARS):
                n_words += times
                word_chars += times * len(word)
            if has_letter(word):
                alpha_words += times
        lines = text.splitlines() or [""]
        per_token = 1.0 / n_tokens if n_tokens else 0.0
        return (
            n_words,
            word_chars / n_words if n_words else 0.0,
            text.count("#") * per_token,
            (text.count("...") + text.count("…")) * per_token,
            sum(line.lstrip().startswith(("•", "-")) for line in lines) / len(lines),
            sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines),
            alpha_words * per_token,
            len(self._stop_words.intersection(words)),
        )

    def rules(self) -> list[Rule]:
        return [
            Rule("gopher_short_doc", "gopher_words", "<", self.min_doc_words),
            Rule("gopher_long_doc", "gopher_words", ">", self.max_doc_words),
            Rule("gopher_short_words", "gopher_mean_word_length", "<", self.min_avg_word_length),
            Rule("gopher_long_words", "gopher_mean_word_length", ">", self.max_avg_word_length),
            Rule("gopher_too_many_hashes", "gopher_hash_ratio", ">", self.max_symbol_word_ratio),
            Rule("gopher_too_many_ellipsis", "gopher_ellipsis_ratio", ">", self.max_symbol_word_ratio),
            Rule("gopher_too_many_bullets", "gopher_bullet_lines", ">", self.max_bullet_lines_ratio),
            Rule("gopher_too_many_end_ellipsis", "gopher_end_ellipsis_lines", ">", self.max_ellipsis_lines_ratio),
            Rule("gopher_few_alpha_words", "gopher_alpha_words", "<", self.min_alpha_words_ratio),
            Rule("gopher_few_stop_words", "gopher_stop_words", "<", self.min_stop_words),
        ]


TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)


@dataclass
class GopherRepetition(RuleFilter):
    """Gopher's repetition rules: drop documents that repeat themselves.

    Over paragraphs (split at blank lines) and lines: the fraction of items that repeat an
    earlier one, and the fraction of the document's characters in them. Over words: the share of
    characters covered by the most frequent 2-, 3- and 4-gram (its length times its count), and by
    duplicated 5- to 10-grams (n-grams equal to an earlier one, overlaps counted once). A
    document is dropped for the first fraction above its threshold, in the order of the options.
    Set a threshold to null to disable its rule.

    Defaults: Rae et al. 2021 (Gopher), table A1, as datatrove's GopherRepetitionFilter:
    duplicate lines 0.3, paragraphs 0.3, line chars 0.2, paragraph chars 0.2; top 2/3/4-gram
    chars 0.20/0.18/0.16; duplicated 5..10-gram chars 0.15, 0.14, 0.13, 0.12, 0.11, 0.10.
    Score columns: gopher_dup_para_frac, gopher_dup_para_char_frac, gopher_dup_line_frac,
    gopher_dup_line_char_frac, gopher_top_{2,3,4}gram_frac, gopher_dup_{5..10}gram_frac.
    """

    config_name: ClassVar[str] = "gopher_repetition"
    provides: ClassVar[dict[str, pa.DataType]] = {
        "gopher_dup_para_frac": pa.float64(),
        "gopher_dup_para_char_frac": pa.float64(),
        "gopher_dup_line_frac": pa.float64(),
        "gopher_dup_line_char_frac": pa.float64(),
        **{f"gopher_top_{n}gram_frac": pa.float64() for n in TOP_NGRAMS},
        **{f"gopher_dup_{n}gram_frac": pa.float64() for n in DUP_NGRAMS},
    }

    dup_para_frac: Optional[float] = 0.3
    dup_para_char_frac: Optional[float] = 0.2
    dup_line_frac: Optional[float] = 0.3
    dup_line_char_frac: Optional[float] = 0.2
    top_2gram_char_frac: Optional[float] = 0.20
    top_3gram_char_frac: Optional[float] = 0.18
    top_4gram_char_frac: Optional[float] = 0.16
    dup_5gram_char_frac: Optional[float] = 0.15
    dup_6gram_char_frac: Optional[float] = 0.14
    dup_7gram_char_frac: Optional[float] = 0.13
    dup_8gram_char_frac: Optional[float] = 0.12
    dup_9gram_char_frac: Optional[float] = 0.11
    dup_10gram_char_frac: Optional[float] = 0.10

    def document_stats(self, text: str) -> tuple:
        size = len(text) or 1
        paragraphs = split_paragraphs(text)
        para_dups, para_chars = duplicates(paragraphs)
        lines = split_lines(text)
        line_dups, line_chars = duplicates(lines)
        ngrams = NGrams(words_of(text))
        return (
            para_dups / len(paragraphs),
            para_chars / size,
            line_dups / len(lines),
            line_chars / size,
            *(ngrams.top_chars(n) / size for n in TOP_NGRAMS),
            *(ngrams.duplicate_chars(n) / size for n in DUP_NGRAMS),
        )

    def rules(self) -> list[Rule]:
        return [
            Rule("gopher_dup_para_frac", "gopher_dup_para_frac", ">", self.dup_para_frac),
            Rule("gopher_dup_para_char_frac", "gopher_dup_para_char_frac", ">", self.dup_para_char_frac),
            Rule("gopher_dup_line_frac", "gopher_dup_line_frac", ">", self.dup_line_frac),
            Rule("gopher_dup_line_char_frac", "gopher_dup_line_char_frac", ">", self.dup_line_char_frac),
            *(
                Rule(f"gopher_top_{n}gram", f"gopher_top_{n}gram_frac", ">", getattr(self, f"top_{n}gram_char_frac"))
                for n in TOP_NGRAMS
            ),
            *(
                Rule(f"gopher_dup_{n}gram", f"gopher_dup_{n}gram_frac", ">", getattr(self, f"dup_{n}gram_char_frac"))
                for n in DUP_NGRAMS
            ),
        ]
