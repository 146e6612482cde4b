"""Gopher's quality and repetition rules (Rae et al. 2021, "Scaling Language Models", appendix A1).

Two filters, each a score columns + rules stage: `gopher_quality` (length, word length, symbols,
bullets, ellipses, alphabetic words, stop words) and `gopher_repetition` (duplicate lines and
paragraphs, most frequent n-grams, duplicated n-grams). Defaults are the paper's, as published
in datatrove (GopherQualityFilter, GopherRepetitionFilter); each rule checks in datatrove's order
and reports the first it breaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

import numpy as np
import pyarrow as pa

from curate.stages.rules import Rule, RuleFilter, texts_of
from curate.text_stats import NGrams, duplicates, split_lines, split_paragraphs, text_groups, word_ids

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


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

    def score(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        texts = texts_of(batch)
        words = word_ids(texts)
        vocabulary = words.vocabulary
        tokens = words.counts()
        is_word = vocabulary.is_word[words.ids]
        n_words = words.per_text(is_word)
        word_chars = words.per_text(np.where(is_word, vocabulary.length[words.ids], 0))
        alpha_words = words.per_text(vocabulary.has_letter[words.ids])
        stop_words = sum(
            (
                words.per_text(words.ids == stop) > 0
                for stop in map(vocabulary.__getitem__, dict.fromkeys(self.stop_words))
            ),
            np.zeros(len(texts), np.int64),
        )
        per_token = np.divide(1.0, tokens, out=np.zeros(len(texts)), where=tokens > 0)
        lines = [text.splitlines() or [""] for text in texts]
        return {
            "gopher_words": n_words,
            "gopher_mean_word_length": np.divide(word_chars, n_words, out=np.zeros(len(texts)), where=n_words > 0),
            "gopher_hash_ratio": np.array([text.count("#") for text in texts]) * per_token,
            "gopher_ellipsis_ratio": np.array([text.count("...") + text.count("…") for text in texts]) * per_token,
            "gopher_bullet_lines": np.array(
                [sum(line.lstrip().startswith(("•", "-")) for line in ls) / len(ls) for ls in lines]
            ),
            "gopher_end_ellipsis_lines": np.array(
                [sum(line.rstrip().endswith(("...", "…")) for line in ls) / len(ls) for ls in lines]
            ),
            "gopher_alpha_words": alpha_words * per_token,
            "gopher_stop_words": stop_words,
        }

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

    def score(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        texts = texts_of(batch)
        columns: dict[str, list[np.ndarray]] = {name: [] for name in self.provided_columns()}
        for group in text_groups(texts):  # n-gram statistics a million characters at a time
            sizes = np.array([len(text) or 1 for text in group])
            paragraphs = [split_paragraphs(text) for text in group]
            lines = [split_lines(text) for text in group]
            para_dups, para_chars = np.array([duplicates(items) for items in paragraphs]).reshape(-1, 2).T
            line_dups, line_chars = np.array([duplicates(items) for items in lines]).reshape(-1, 2).T
            ngrams = NGrams(word_ids(group))
            values = {
                "gopher_dup_para_frac": para_dups / np.array([len(items) for items in paragraphs]),
                "gopher_dup_para_char_frac": para_chars / sizes,
                "gopher_dup_line_frac": line_dups / np.array([len(items) for items in lines]),
                "gopher_dup_line_char_frac": line_chars / sizes,
                **{f"gopher_top_{n}gram_frac": ngrams.top_chars(n) / sizes for n in TOP_NGRAMS},
                **{f"gopher_dup_{n}gram_frac": ngrams.duplicate_chars(n) / sizes for n in DUP_NGRAMS},
            }
            for name, array in values.items():
                columns[name].append(array)
        return {name: np.concatenate(arrays) if arrays else np.zeros(0) for name, arrays in columns.items()}

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
