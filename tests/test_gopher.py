"""Gopher quality and repetition rules: each rule at its boundary (just under / just over)."""

from __future__ import annotations

import pytest

from curate.stages.gopher import GopherQuality, GopherRepetition
from tests.quality_helpers import filler, isolated, run


def prose(n_words: int) -> str:
    """A plain prose-like document of exactly `n_words` words with two stop words."""
    return "the and " + filler(n_words - 2)


# --- Gopher quality -------------------------------------------------------------------------


def test_defaults_are_the_published_ones():
    stage = GopherQuality()
    assert (stage.min_doc_words, stage.max_doc_words) == (50, 100_000)
    assert (stage.min_avg_word_length, stage.max_avg_word_length) == (3, 10)
    assert (stage.max_symbol_word_ratio, stage.max_bullet_lines_ratio, stage.max_ellipsis_lines_ratio) == (
        0.1,
        0.9,
        0.3,
    )
    assert (stage.min_alpha_words_ratio, stage.min_stop_words) == (0.8, 2)
    assert set(stage.stop_words) == {"the", "be", "to", "of", "and", "that", "have", "with"}


def test_word_count_boundaries():
    reasons, scores = run(GopherQuality(), [prose(50), prose(49)])
    assert scores["gopher_words"] == [50, 49]
    assert reasons == [None, "gopher_short_doc"]
    # punctuation tokens are not words
    reasons, scores = run(GopherQuality(), [prose(49) + " . , ; !"])
    assert scores["gopher_words"] == [49] and reasons == ["gopher_short_doc"]


def test_max_words_boundary():
    reasons, _ = run(GopherQuality(max_doc_words=100), [prose(100), prose(101)])
    assert reasons == [None, "gopher_long_doc"]


def test_mean_word_length_boundaries():
    words = ["the", "and"] + ["cat"] * 48  # mean exactly 3
    short = ["the", "and"] + ["cat"] * 47 + ["at"]  # 2.98
    reasons, scores = run(GopherQuality(), [" ".join(words), " ".join(short)])
    assert scores["gopher_mean_word_length"] == [3.0, pytest.approx(2.98)]
    assert reasons == [None, "gopher_short_words"]
    long_words = ["the", "and"] + ["abcdefghij"] * 46 + ["abcdefghijklmnopq"] * 2  # 500 chars / 50 words
    longer = ["the", "and"] + ["abcdefghij"] * 46 + ["abcdefghijklmnopq", "abcdefghijklmnopqr"]
    reasons, scores = run(GopherQuality(), [" ".join(long_words), " ".join(longer)])
    assert scores["gopher_mean_word_length"] == [10.0, pytest.approx(10.02)]
    assert reasons == [None, "gopher_long_words"]


def test_hash_and_ellipsis_ratios():
    base = prose(90)
    at_limit = base + " #" * 10  # 10 "#" over 100 tokens
    over = base + " #" * 11
    reasons, scores = run(GopherQuality(), [at_limit, over])
    assert scores["gopher_hash_ratio"] == [0.1, pytest.approx(11 / 101)]
    assert reasons == [None, "gopher_too_many_hashes"]
    reasons, scores = run(GopherQuality(), [base + " ... x" * 0 + " ..." * 10 + " end", base + " ..." * 11 + " end"])
    assert scores["gopher_ellipsis_ratio"][0] == pytest.approx(10 / 101)
    assert reasons == [None, "gopher_too_many_ellipsis"]
    # the unicode ellipsis counts too
    reasons, _ = run(GopherQuality(), [base + " …" * 11 + " end"])
    assert reasons == ["gopher_too_many_ellipsis"]


def test_bullet_and_end_ellipsis_lines():
    lines = [filler(10, 10 * i) for i in range(10)]
    nine = "\n".join(("- " if i < 9 else "") + line for i, line in enumerate(lines)) + " the and"
    ten = "\n".join("• " + line for line in lines) + " the and"
    reasons, scores = run(GopherQuality(), [nine, ten])
    assert scores["gopher_bullet_lines"] == [0.9, 1.0]
    assert reasons == [None, "gopher_too_many_bullets"]
    three = "\n".join(line + (" ..." if i < 3 else "") for i, line in enumerate(lines)) + " the and"
    four = "\n".join(line + ("…" if i < 4 else "") for i, line in enumerate(lines)) + " the and"
    reasons, scores = run(GopherQuality(), [three, four])
    assert scores["gopher_end_ellipsis_lines"] == [0.3, 0.4]
    assert reasons == [None, "gopher_too_many_end_ellipsis"]


def test_alpha_words_ratio():
    base = "the and " + " ".join(["wordy"] * 78)  # 80 words with letters
    reasons, scores = run(GopherQuality(), [base + " 42" * 20, base + " 42" * 21])
    assert scores["gopher_alpha_words"] == [0.8, pytest.approx(80 / 101)]
    assert reasons == [None, "gopher_few_alpha_words"]


def test_stop_words_are_distinct_and_case_sensitive():
    reasons, scores = run(
        GopherQuality(),
        [
            "the and " + filler(60),
            "the the the " + filler(60),
            "The And " + filler(60),
        ],
    )
    assert scores["gopher_stop_words"] == [2, 1, 0]
    assert reasons == [None, "gopher_few_stop_words", "gopher_few_stop_words"]


def test_first_rule_broken_is_reported():
    # short AND no stop words: the word count rule comes first, as in datatrove
    reasons, _ = run(GopherQuality(), [filler(10)])
    assert reasons == ["gopher_short_doc"]
    # disabling a rule lets the next one report
    reasons, _ = run(GopherQuality(min_doc_words=None), [filler(10)])
    assert reasons == ["gopher_few_stop_words"]


def test_invalid_options_are_rejected():
    with pytest.raises(ValueError, match="min_doc_words"):
        GopherQuality(min_doc_words=10, max_doc_words=5).validate()


# --- Gopher repetition ----------------------------------------------------------------------


def test_repetition_defaults_are_the_published_ones():
    stage = GopherRepetition()
    assert (stage.dup_line_frac, stage.dup_para_frac, stage.dup_line_char_frac, stage.dup_para_char_frac) == (
        0.3,
        0.3,
        0.2,
        0.2,
    )
    assert (stage.top_2gram_char_frac, stage.top_3gram_char_frac, stage.top_4gram_char_frac) == (0.2, 0.18, 0.16)
    assert [getattr(stage, f"dup_{n}gram_char_frac") for n in range(5, 11)] == [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]


def paragraphs(unique: int, repeats: int, sep: str = "\n\n") -> str:
    parts = [filler(3, 3 * i) for i in range(unique)] + [filler(3, 0)] * repeats
    return sep.join(parts)


def test_duplicate_paragraph_fraction():
    stage = isolated(GopherRepetition, "dup_para_frac")
    reasons, scores = run(stage, [paragraphs(7, 3), paragraphs(6, 4)])
    assert scores["gopher_dup_para_frac"] == [0.3, 0.4]
    assert reasons == [None, "gopher_dup_para_frac"]


def test_duplicate_line_fraction_and_runs_of_newlines():
    stage = isolated(GopherRepetition, "dup_line_frac")
    reasons, scores = run(stage, [paragraphs(7, 3, "\n"), paragraphs(6, 4, "\n\n\n")])
    assert scores["gopher_dup_line_frac"] == [0.3, 0.4]
    assert reasons == [None, "gopher_dup_line_frac"]


def test_duplicate_character_fractions():
    # 9 lines of 9 characters + newline each: 2 repeats = 18 of 90 characters = 0.2
    lines = [f"line{i:04d}x" for i in range(7)]
    at_limit = "\n".join(lines + [lines[0], lines[0]]) + "\n"
    over = "\n".join(lines[:6] + [lines[0]] * 3) + "\n"
    stage = isolated(GopherRepetition, "dup_line_char_frac")
    reasons, scores = run(stage, [at_limit, over])
    assert scores["gopher_dup_line_char_frac"] == [0.2, 0.3]
    assert reasons == [None, "gopher_dup_line_char_frac"]
    stage = isolated(GopherRepetition, "dup_para_char_frac")
    reasons, scores = run(stage, [at_limit.replace("\n", "\n\n"), over.replace("\n", "\n\n")])
    assert scores["gopher_dup_para_char_frac"] == [pytest.approx(18 / 99), pytest.approx(27 / 99)]
    assert reasons == [None, "gopher_dup_para_char_frac"]


def padded(text: str, total: int) -> str:
    """`text` followed by distinct filler words, exactly `total` characters long."""
    words, i = [], 0
    while len(text) + len(" ".join(words)) + 1 < total - 6:
        words.append(filler(1, i))
        i += 1
    tail = " ".join(words)
    need = total - len(text) - len(tail) - 2
    return f"{text} {tail} {'q' * need}"


def test_top_ngram_fraction():
    stage = isolated(GopherRepetition, "top_2gram_char_frac")
    at_limit = padded(" ".join(["ab cd"] * 4), 100)  # "ab cd" x4: 5 chars x 4 = 20 of 100
    over = padded(" ".join(["ab cd"] * 5), 100)
    assert len(at_limit) == len(over) == 100
    reasons, scores = run(stage, [at_limit, over])
    assert scores["gopher_top_2gram_frac"] == [0.2, 0.25]
    assert reasons == [None, "gopher_top_2gram"]


def test_duplicated_ngram_fraction():
    stage = isolated(GopherRepetition, "dup_5gram_char_frac")
    five = "aaa bbb ccc ddd eee"  # 15 characters without spaces
    at_limit = padded(f"{five} {five}", 100)
    over = padded(f"{five}x {five}x", 100)  # the repeat covers 16 characters
    reasons, scores = run(stage, [at_limit, over])
    assert scores["gopher_dup_5gram_frac"] == [0.15, 0.16]
    assert reasons == [None, "gopher_dup_5gram"]


def test_repetitive_document_is_dropped_and_varied_one_kept():
    spam = "Buy cheap watches now. " * 40
    reasons, _ = run(GopherRepetition(), [spam, prose(300)])
    assert reasons[0] is not None and reasons[0].startswith("gopher_")
    assert reasons[1] is None


def test_top_3gram_and_4gram_fractions():
    stage = isolated(GopherRepetition, "top_3gram_char_frac")
    three = "abc de fg"  # 9 characters joined with spaces: x4 = 36 of 200 = 0.18
    reasons, scores = run(stage, [padded(" ".join([three] * 4), 200), padded(" ".join([three] * 5), 200)])
    assert scores["gopher_top_3gram_frac"] == [0.18, 0.225]
    assert reasons == [None, "gopher_top_3gram"]
    stage = isolated(GopherRepetition, "top_4gram_char_frac")
    four = "a b c de"  # 8 characters: x4 = 32 of 200 = 0.16
    reasons, scores = run(stage, [padded(" ".join([four] * 4), 200), padded(" ".join([four] * 5), 200)])
    assert scores["gopher_top_4gram_frac"] == [0.16, 0.2]
    assert reasons == [None, "gopher_top_4gram"]


def test_duplicated_10gram_fraction():
    stage = isolated(GopherRepetition, "dup_10gram_char_frac")
    ten = "a b c d e f g h i j"  # 10 characters without spaces
    at_limit = padded(f"{ten} {ten}", 100)
    over = padded(f"{ten}k {ten}k", 100)
    reasons, scores = run(stage, [at_limit, over])
    assert scores["gopher_dup_10gram_frac"] == [0.1, 0.11]
    assert reasons == [None, "gopher_dup_10gram"]
