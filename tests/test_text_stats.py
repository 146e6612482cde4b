"""Word splitting, sentence counting and n-gram statistics shared by the heuristic filters."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from curate.text_stats import NGrams, count_sentences, duplicates, split_words, words_of


@pytest.mark.parametrize(
    "text, words",
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        ("don't can't it's I'm you're", ["do", "n't", "ca", "n't", "it", "'s", "I", "'m", "you", "'re"]),
        ("John's dog", ["John", "'s", "dog"]),
        ("well-known e-mail and/or a/b", ["well", "-", "known", "e", "-", "mail", "and/or", "a", "/", "b"]),
        ("1,000 3.5 1-2 -5", ["1,000", "3.5", "1", "-", "2", "-5"]),
        ("5km $100 100% 10am", ["5", "km", "$", "100", "100", "%", "10", "am"]),
        ("Mr. Smith e.g. U.S. end.", ["Mr.", "Smith", "e.g.", "U.S.", "end", "."]),
        ("See http://x.com/a?b=c (www.x.org).", ["See", "http://x.com/a?b=c", "(", "www.x.org", ")", "."]),
        ("wait... what?! :) #tag", ["wait", "...", "what", "?", "!", ":)", "#", "tag"]),
        ("“quoted” (paren)", ["“", "quoted", "”", "(", "paren", ")"]),
        ("dont cannot", ["do", "nt", "can", "not"]),
        ("  spaced\n\tout  ", ["spaced", "out"]),
    ],
)
def test_split_words(text, words):
    assert split_words(text) == words


def test_words_of_is_split_words_remembered():
    text = "The same text, twice."
    assert words_of(text) == split_words(text)
    assert words_of(text) is words_of(text)


@pytest.mark.parametrize(
    "line, n",
    [
        ("One sentence.", 1),
        ("One. Two! Three? Four", 4),
        ("Mr. Smith met Dr. Jones at 3.5 p.m. today.", 1),
        ("It ended.) Then more.", 2),
        ("Wait... and then", 1),
        ("", 0),
    ],
)
def test_count_sentences(line, n):
    assert count_sentences(line) == n


def test_duplicates():
    assert duplicates(["a", "bb", "a", "bb", "bb", "c"]) == (3, 5)
    assert duplicates([]) == (0, 0)


def naive_top(words, n):
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def naive_duplicated(words, n):
    seen, total, i = set(), 0, 0
    while i < len(words) - n + 1:
        gram = tuple(words[i : i + n])
        if gram in seen:
            total += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return total


def test_ngram_statistics_match_their_definitions_on_random_texts():
    rng = random.Random(7)
    vocabulary = ["a", "bb", "ccc", "dddd", "ee", "f"]
    for _ in range(200):
        words = [rng.choice(vocabulary[: rng.randint(1, 6)]) for _ in range(rng.randint(0, 60))]
        ngrams = NGrams(words)
        for n in (1, 2, 3, 4):
            assert ngrams.top_chars(n) == naive_top(words, n), (words, n)
        for n in range(5, 11):
            assert ngrams.duplicate_chars(n) == naive_duplicated(words, n), (words, n)


def test_top_ngram_ties_go_to_the_first_seen():
    words = "xx y xx y zzzz w zzzz w".split()  # "xx y" and "zzzz w" both twice; "xx y" first
    assert NGrams(words).top_chars(2) == len("xx y") * 2
