"""A fast ROUGE-L novelty filter whose decisions are exactly those of the `rouge-score` package.

Self-Instruct keeps a generated instruction only if its ROUGE-L F-measure with every instruction
kept so far is at most 0.7. Computed as Self-Instruct and Alpaca do (rouge-score against the whole
pool, in a process pool), that is O(pool) Python LCS tables per candidate: the slow part of the
whole algorithm. Here:

1. Tokens come from rouge-score's own tokenizer, so both see the same tokens.
2. Prefilter: the LCS of two token sequences is at most their multiset overlap, so
   F ≤ 2·overlap / (m + n). An inverted index of (token, k-th occurrence) keys gives the exact
   multiset overlap with every pool item at once (one `numpy.bincount`); items whose bound
   cannot exceed the threshold are never compared.
3. Exact check, best bound first: the LCS length of the survivors with a bit-parallel algorithm
   (Allison & Dix 1986; Hyyrö 2004) on Python integers, and the F-measure with rouge-score's
   formula (`scoring.fmeasure`), so the comparison with the threshold is the same float operation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from rouge_score.tokenizers import DefaultTokenizer

# Bound slack: the bound and the exact score are different float expressions; never prune on a tie.
EPSILON = 1e-9


def fmeasure(lcs: int, target_len: int, prediction_len: int) -> float:
    """rouge_score.rouge_scorer._score_lcs's F-measure, as the same float operations."""
    if not target_len or not prediction_len:
        return 0.0
    precision = lcs / prediction_len
    recall = lcs / target_len
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def match_masks(tokens: list[str]) -> dict[str, int]:
    """Bit i of masks[t] is set where tokens[i] == t."""
    masks: dict[str, int] = {}
    for i, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << i)
    return masks


def lcs_length(masks: dict[str, int], length: int, other: list[str]) -> int:
    """Length of the longest common subsequence of the sequence behind `masks` (of `length` tokens)
    and `other`: bit-parallel, one big-integer step per token of `other`."""
    full = (1 << length) - 1
    v = full
    for token in other:
        u = v & masks.get(token, 0)
        if u:
            v = ((v + u) | (v - u)) & full
    return length - v.bit_count()


class Postings:
    """Pool ids holding a key, in a growable numpy array (amortised doubling)."""

    __slots__ = ("ids", "n")

    def __init__(self) -> None:
        self.ids = np.empty(4, dtype=np.int32)
        self.n = 0

    def append(self, item: int) -> None:
        if self.n == len(self.ids):
            self.ids = np.concatenate([self.ids, np.empty(len(self.ids), dtype=np.int32)])
        self.ids[self.n] = item
        self.n += 1

    def view(self) -> np.ndarray:
        return self.ids[: self.n]


@dataclass
class Match:
    """The most similar pool item found for a query (index -1 when the pool is empty)."""

    score: float
    index: int


@dataclass
class NoveltyIndex:
    """A pool of texts to test new texts against by ROUGE-L F-measure (rouge-score semantics).

    `threshold`: a text is novel if its score with every pool item is <= threshold (0.7 in
    Self-Instruct and Alpaca). `use_stemmer` as in `RougeScorer(["rougeL"], use_stemmer=...)`
    (both projects: False)."""

    threshold: float = 0.7
    use_stemmer: bool = False
    tokens: list[list[str]] = field(default_factory=list)
    postings: dict[tuple[str, int], Postings] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tokenizer = DefaultTokenizer(self.use_stemmer)
        self._lengths = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.tokens)

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.tokenize(text)

    def add(self, text: str) -> int:
        """Add a text to the pool; returns its index."""
        return self.add_tokens(self.tokenize(text))

    def add_tokens(self, tokens: list[str]) -> int:
        index = len(self.tokens)
        self.tokens.append(tokens)
        self.lengths.append(len(tokens))
        for key in occurrence_keys(tokens):
            posting = self.postings.get(key)
            if posting is None:
                posting = self.postings[key] = Postings()
            posting.append(index)
        return index

    def bounds(self, tokens: list[str]) -> np.ndarray:
        """Upper bound of the F-measure of `tokens` with every pool item (from multiset overlap)."""
        n = len(self.tokens)
        if len(self._lengths) != n:
            self._lengths = np.asarray(self.lengths, dtype=np.int64)
        arrays = [p.view() for p in (self.postings.get(k) for k in occurrence_keys(tokens)) if p is not None]
        if not arrays or not tokens:
            return np.zeros(n)
        overlap = np.bincount(np.concatenate(arrays), minlength=n)
        return 2.0 * overlap / (len(tokens) + self._lengths)

    def candidates(self, tokens: list[str], floor: float) -> tuple[np.ndarray, np.ndarray]:
        """Pool items whose bound exceeds `floor`, best bound first (stable: lower index first on ties),
        and every item's bound."""
        bounds = self.bounds(tokens)
        hits = np.flatnonzero(bounds > floor - EPSILON)
        return hits[np.argsort(-bounds[hits], kind="stable")], bounds

    def score(self, tokens: list[str], index: int, masks: dict[str, int] | None = None) -> float:
        """Exact ROUGE-L F of `tokens` (target) and pool item `index` (prediction)."""
        other = self.tokens[index]
        if not tokens or not other:
            return 0.0
        lcs = lcs_length(masks or match_masks(tokens), len(tokens), other)
        return fmeasure(lcs, len(tokens), len(other))

    def most_similar(self, tokens: list[str], stop_above: float | None = None) -> Match:
        """The pool item with the highest score (the first one on ties), exactly; with
        `stop_above`, the first item found scoring above it (enough to reject a candidate)."""
        best = Match(0.0, -1)
        if not tokens or not self.tokens:
            return best
        order, bounds = self.candidates(tokens, 0.0 if stop_above is None else stop_above)
        masks = match_masks(tokens)
        for index in order.tolist():
            if bounds[index] + EPSILON < best.score:
                break  # no later item can reach the best score
            value = self.score(tokens, index, masks)
            if value > best.score or (value == best.score and index < best.index):
                best = Match(value, index)
            if stop_above is not None and best.score > stop_above:
                break
        if best.index < 0:  # nothing overlaps at all: every score is 0, the first item is the answer
            best = Match(0.0, 0)
        return best

    def check(self, text: str, exact_max: bool = False) -> tuple[bool, Match, list[str]]:
        """(novel, match, tokens) for a text against the pool. The match is the first item found
        above the threshold when the text is not novel; when it is novel, the most similar item if
        `exact_max` (costs more comparisons), else the best among those compared."""
        tokens = self.tokenize(text)
        match = self.most_similar(tokens, stop_above=self.threshold)
        novel = match.score <= self.threshold
        if novel and exact_max:
            match = self.most_similar(tokens)
        return novel, match, tokens


def occurrence_keys(tokens: list[str]) -> list[tuple[str, int]]:
    """(token, k) for the k-th occurrence of each token: key intersections count the multiset overlap."""
    return [(token, k) for token, count in Counter(tokens).items() for k in range(count)]
