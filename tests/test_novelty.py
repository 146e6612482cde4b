"""The ROUGE-L novelty filter decides exactly as the rouge-score package does."""

from __future__ import annotations

import gzip
import json
import random

from rouge_score import rouge_scorer

from curate.sft.novelty import NoveltyIndex, lcs_length, match_masks


def test_bit_parallel_lcs_equals_rouge_score_table():
    rng = random.Random(0)
    for _ in range(2000):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 40))]
        expected = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
        assert lcs_length(match_masks(a), len(a), b) == expected


def test_decisions_and_scores_equal_rouge_score_on_real_instructions(shared_data):
    texts = [
        r["instruction"] for r in json.loads(gzip.open(shared_data / "alpaca_en_demo/alpaca_en_demo.json.gz").read())
    ]
    texts += [json.loads(line)["instruction"] for line in gzip.open(shared_data / "self_instruct/seed_tasks.jsonl.gz")]
    rng = random.Random(1)
    rng.shuffle(texts)
    pool, fresh = texts[:500], texts[500:560]
    edited = []
    for text in rng.sample(pool, 60):  # near-duplicates straddling the 0.7 threshold
        words = text.split()
        for _ in range(rng.randint(0, 4)):
            if len(words) > 2:
                words.pop(rng.randrange(len(words)))
        edited.append(" ".join(words))
    candidates = fresh + edited + ["", "!!!", pool[0], pool[1].upper()]
    rng.shuffle(candidates)

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    index = NoveltyIndex(threshold=0.7)
    for text in pool:
        index.add(text)
    kept = list(pool)
    outcomes = {True: 0, False: 0}
    for text in candidates:
        scores = [scorer.score(text, other)["rougeL"].fmeasure for other in kept]
        novel, match, tokens = index.check(text, exact_max=True)
        assert novel == (max(scores) <= 0.7)
        if novel:
            assert match.score == max(scores) and scores[match.index] == match.score
            index.add_tokens(tokens)
            kept.append(text)
        else:
            assert match.score == scores[match.index] > 0.7
        outcomes[novel] += 1
    assert outcomes[True] > 20 and outcomes[False] > 20  # both decisions were exercised


def test_stemmer_option_follows_rouge_score():
    index = NoveltyIndex(threshold=0.7, use_stemmer=True)
    index.add("Classify the following running shoes reviews")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    text = "Classifying the following run shoe review"
    novel, match, _ = index.check(text, exact_max=True)
    assert match.score == scorer.score(text, "Classify the following running shoes reviews")["rougeL"].fmeasure
    assert novel == (match.score <= 0.7)
