"""Word splitting, sentence counting and n-gram statistics shared by the heuristic filters."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from curate.text_stats import (
    NGrams,
    count_sentences,
    duplicates,
    split_lines,
    split_paragraphs,
    split_words,
    word_ids,
)


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


def test_word_ids_are_split_words_of_each_text_of_a_batch():
    rng = random.Random(3)
    pieces = ["word", "end.", "don't", "e-mail", "(x)", "3.5km", "…", "", " ", "\n\n", "\t", "\u00a0", "\u3000", "\x1c"]
    texts = ["".join(rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(0, 20))) for _ in range(300)]
    words = word_ids(texts)
    assert len(words.offsets) == len(texts) + 1
    for i, text in enumerate(texts):
        ids = words.ids[words.offsets[i] : words.offsets[i + 1]]
        assert [words.vocabulary.tokens[j] for j in ids] == split_words(text), text
        assert words.vocabulary.length[ids].tolist() == [len(token) for token in split_words(text)]


def test_word_ids_remember_recent_texts():
    text = "The same text, twice."
    first = word_ids([text])
    assert word_ids([text, text]).ids.tolist() == first.ids.tolist() * 2


def test_lines_and_paragraphs_are_cut_as_the_regular_expressions_cut_them():
    rng = random.Random(5)
    for _ in range(20_000):
        text = "".join(rng.choice("ab \n\n\n\t") for _ in range(rng.randint(0, 16)))
        assert split_paragraphs(text) == re.split(r"\n{2,}", text.strip()), repr(text)
        assert split_lines(text) == re.split(r"\n+", text), repr(text)


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
        ngrams = NGrams.of_words(words)
        for n in (1, 2, 3, 4):
            assert ngrams.top_chars(n)[0] == naive_top(words, n), (words, n)
        for n in range(5, 11):
            assert ngrams.duplicate_chars(n)[0] == naive_duplicated(words, n), (words, n)


def test_ngram_statistics_of_a_batch_are_each_texts_own():
    """Texts of one batch share the numpy calls, never their n-grams: the same words in two texts
    are not a repeat, and each text's statistics are what it has alone."""
    rng = random.Random(11)
    texts = [[rng.choice("ab") for _ in range(rng.randint(0, 30))] for _ in range(200)]
    texts += [["x", "y", "z"], ["x", "y", "z"], []]  # no repeat inside either text
    together = NGrams.of_words(*texts)
    for n in range(1, 11):
        top, duplicated = together.top_chars(n), together.duplicate_chars(n)
        alone = [NGrams.of_words(words) for words in texts]
        assert top.tolist() == [ngrams.top_chars(n)[0] for ngrams in alone], n
        assert duplicated.tolist() == [ngrams.duplicate_chars(n)[0] for ngrams in alone], n
        assert top.tolist() == [naive_top(words, n) for words in texts], n
        assert duplicated.tolist() == [naive_duplicated(words, n) for words in texts], n


def test_top_ngram_ties_go_to_the_first_seen():
    words = "xx y xx y zzzz w zzzz w".split()  # "xx y" and "zzzz w" both twice; "xx y" first
    assert NGrams.of_words(words).top_chars(2)[0] == len("xx y") * 2


def test_a_full_chunk_cache_starts_a_new_vocabulary_between_batches(monkeypatch):
    """Past its limit the chunk cache is emptied with the vocabulary and the remembered texts, at
    the start of a batch: ids stay right, and a batch's ids keep reading their own vocabulary."""
    import curate.text_stats as text_stats

    monkeypatch.setattr(text_stats, "_CHUNK_CACHE_LIMIT", 50)
    rng = random.Random(13)
    batches = [[" ".join(f"w{rng.randint(0, 400)}," for _ in range(30)) for _ in range(5)] for _ in range(6)]
    earlier = []
    for texts in batches:
        words = word_ids(texts)
        earlier.append((texts, words))
        assert len(text_stats._CHUNK_CACHE) <= 50 + len({c for text in texts for c in text.split()})
    assert len({id(words.vocabulary) for _, words in earlier}) > 1  # the vocabulary was replaced
    for texts, words in earlier:
        for i, text in enumerate(texts):
            ids = words.ids[words.offsets[i] : words.offsets[i + 1]]
            assert [words.vocabulary.tokens[j] for j in ids] == split_words(text)
