"""C4 line cleaning and page rules, and FineWeb's line rules: each at its boundary."""

from __future__ import annotations

import pytest

from curate.stages.c4 import C4Filter
from curate.stages.fineweb import FineWebQuality
from tests.quality_helpers import isolated, run

SENTENCE = "This line is a proper sentence."


def page(n_sentences: int, *extra_lines: str) -> str:
    return "\n".join([SENTENCE] * n_sentences + list(extra_lines))


def kept_text(stage, text: str) -> str:
    stage.setup()
    from tests.quality_helpers import batch_of

    result = stage.process(batch_of([text]))
    assert result.kept.num_rows == 1, result.dropped.column("drop_reason").to_pylist()
    return result.kept.column("text")[0].as_py()


def test_c4_sentence_boundary():
    reasons, scores = run(C4Filter(), [page(5), page(4)])
    assert scores["c4_sentences"] == [5, 4]
    assert reasons == [None, "c4_too_few_sentences"]


def test_c4_counts_sentences_inside_a_line_like_a_sentencizer():
    line = "Mr. Smith went to Washington. He saw the U.S. Capitol. It was 3.5 miles away!"
    reasons, scores = run(C4Filter(), [page(2, line)])
    assert scores["c4_sentences"] == [5]  # 2 + 3: "Mr." "U.S." and "3.5" end nothing
    assert reasons == [None]


def test_c4_removes_lines_by_rule():
    lines = [
        "No terminal punctuation here",
        "This one trails off...",
        "Two words.",
        "Three words here.",  # kept: exactly 3 words
        "Please enable JavaScript to view this page.",
        "We use cookies to improve your experience.",
        "Read our privacy policy before you go.",
        "A line with a " + "x" * 1001 + " word.",
        "A line with a " + "y" * 1000 + " word.",  # kept: exactly 1000 characters
        "Wikipedia says so.[1]",  # kept, citation removed
        "It ends with a quote, as people say 'so'",
    ]
    text = kept_text(C4Filter(), page(5, *lines))
    assert text.split("\n")[5:] == [
        "Three words here.",
        "A line with a " + "y" * 1000 + " word.",
        "Wikipedia says so.",
        "It ends with a quote, as people say 'so'",
    ]
    _, scores = run(C4Filter(), [page(5, *lines)])
    assert scores["c4_removed_lines"] == [7] and scores["c4_kept_lines"] == [9]


def test_c4_page_rules_only_fire_on_lines_that_survive():
    reasons, scores = run(
        C4Filter(),
        [
            page(5, "Lorem ipsum dolor sit amet, consectetur."),
            page(5, "Use the function f(x) { return x; } here."),
            page(5, "lorem ipsum without a full stop"),  # the line goes, the page stays
            page(5, "a { brace in a short line"),
        ],
    )
    assert reasons == ["c4_lorem_ipsum", "c4_curly_bracket", None, None]
    assert scores["c4_lorem_ipsum"] == [True, False, False, False]


def test_c4_dropped_rows_keep_their_original_text():
    original = page(3, "menu item")
    stage = C4Filter()
    stage.setup()
    from tests.quality_helpers import batch_of

    result = stage.process(batch_of([original, page(6, "menu item")]))
    assert result.dropped.column("text")[0].as_py() == original
    assert result.kept.column("text")[0].as_py() == page(6)


def test_c4_switches_and_empty_pages():
    reasons, _ = run(C4Filter(min_num_sentences=None), ["nothing punctuated here"])
    assert reasons == ["c4_empty"]
    reasons, _ = run(C4Filter(min_num_sentences=None, drop_empty=False), ["nothing punctuated here"])
    assert reasons == [None]
    text = kept_text(C4Filter(filter_no_terminal_punct=False, min_num_sentences=1), "a heading line\n" + SENTENCE)
    assert text == "a heading line\n" + SENTENCE


def test_c4_bad_words_from_a_local_list(tmp_path):
    words = tmp_path / "en"
    words.write_text("darn\n# comment\n\nheck no\n")
    stage = C4Filter(bad_words_path=str(words))
    stage.validate()
    reasons, scores = run(
        stage,
        [
            page(5, "Well darn, that is it."),
            page(5, "Heck no, said the class."),
            page(5, "The darnedest thing happened."),
        ],
    )
    assert reasons == ["c4_bad_words", "c4_bad_words", None]  # whole words only
    assert scores["c4_bad_words"] == [True, True, False]
    with pytest.raises(ValueError, match="bad_words_path"):
        C4Filter(bad_words_path=str(tmp_path / "missing")).validate()


# --- FineWeb ----------------------------------------------------------------------------------


def test_fineweb_defaults_are_the_published_ones():
    stage = FineWebQuality()
    assert (stage.line_punct_thr, stage.short_line_thr, stage.short_line_length) == (0.12, 0.67, 30)
    assert (stage.char_duplicates_ratio, stage.new_line_ratio) == (0.01, 0.3)


def lines_page(n: int, punctuated: int = 0, short: int = 0) -> str:
    lines = []
    for i in range(n):
        line = f"line number {i:03d} of a long enough page with words"
        if i < short:
            line = f"short {i:03d}"
        lines.append(line + ("." if i < punctuated else ""))
    return "\n".join(lines)


def test_fineweb_line_punctuation_ratio():
    stage = isolated(FineWebQuality, "line_punct_thr")
    reasons, scores = run(stage, [lines_page(25, punctuated=3), lines_page(25, punctuated=2), lines_page(25)])
    assert scores["fineweb_line_punct_ratio"] == [0.12, 0.08, 0.0]
    assert reasons == [None, "fineweb_line_punct_ratio", "fineweb_line_punct_ratio"]
    exempt = isolated(FineWebQuality, "line_punct_thr", line_punct_exclude_zero=True)
    reasons, _ = run(exempt, [lines_page(25, punctuated=2), lines_page(25)])
    assert reasons == ["fineweb_line_punct_ratio", None]


def test_fineweb_short_line_ratio():
    stage = isolated(FineWebQuality, "short_line_thr")
    reasons, scores = run(stage, [lines_page(100, short=67), lines_page(100, short=68)])
    assert scores["fineweb_short_line_ratio"] == [0.67, 0.68]
    assert reasons == [None, "fineweb_short_line_ratio"]


def test_fineweb_duplicated_line_characters():
    stage = isolated(FineWebQuality, "char_duplicates_ratio")
    line = "x" * 99  # 100 lines of 99 characters: one repeat = 99 of 9900 = 0.01
    unique = [f"{i:02d}" + "x" * 97 for i in range(99)]
    at_limit = "\n".join(unique + [unique[0]])
    over = "\n".join(unique[:98] + [unique[0], unique[1]])
    reasons, scores = run(stage, [at_limit, over])
    assert len(line) == 99 and scores["fineweb_char_dup_ratio"] == [0.01, 0.02]
    assert reasons == [None, "fineweb_char_dup_ratio"]


def test_fineweb_newline_ratio():
    stage = isolated(FineWebQuality, "new_line_ratio")
    at_limit = "\n".join(["one two three four five six seven eight nine ten"] * 3 + ["a"] * 2)  # 4 newlines / 32 words
    list_page = "\n".join(["item"] * 10)  # 9 newlines / 10 words
    reasons, scores = run(stage, [at_limit, list_page])
    assert scores["fineweb_newline_ratio"] == [4 / 32, 0.9]
    assert reasons == [None, "fineweb_list_ratio"]
    ten = "\n".join(["a b c"] * 3 + ["d"])  # 3 newlines / 10 words = 0.3: kept
    eleven = "\n".join(["a b c"] * 3 + ["d", ""]) + "e"  # 4 newlines / 11 words: dropped
    reasons, scores = run(stage, [ten, eleven])
    assert scores["fineweb_newline_ratio"] == [0.3, 4 / 11] and reasons == [None, "fineweb_list_ratio"]


def test_fineweb_blank_page():
    reasons, scores = run(FineWebQuality(), ["  \n \n\t"])
    assert reasons == ["fineweb_empty"] and scores["fineweb_lines"] == [0]
