"""Choosing a small, high-quality, diverse SFT set from a pool, and measuring how good a choice is.

`choose` picks rows, within per-group quotas, never taking a row whose cosine similarity to a
row already taken is above the threshold (Deita's rejection), in one of three orders:
- `deita`: best quality first (Deita's "score-first, diversity-aware" selection);
- `clusters`: round-robin over embedding clusters, best quality first within each;
- `mmr`: Maximal Marginal Relevance (Carbonell & Goldstein 1998): at each step the row with the
  best quality - diversity_weight x (its highest similarity to the rows taken).
The baselines a selection must beat are orders too: `baseline` gives a seeded random set and the
longest responses ("Long Is More", Zhao et al. 2024), without quotas or similarity rejection.
`describe_set` gives the numbers the report compares: quality, nearest-neighbour similarity
inside the set (redundancy), cluster coverage and sources.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass

import numpy as np


def group_of(source: str, patterns: list[str]) -> int:
    """Index of the first quota pattern (fnmatch) matching a source; -1 if none."""
    for index, pattern in enumerate(patterns):
        if fnmatch.fnmatchcase(source, pattern):
            return index
    return -1


@dataclass
class Choice:
    selected: list[int]  # row indices, in the order chosen
    redundant: set[int]  # rows turned down for being too similar to a chosen one


class Selector:
    """The growing selection: its embeddings (a dense buffer), group counts and quotas."""

    def __init__(self, embeddings: np.ndarray, groups: np.ndarray, quotas: list[int], n: int, threshold: float):
        self.embeddings, self.groups, self.quotas, self.n, self.threshold = embeddings, groups, quotas, n, threshold
        self.buffer = np.empty((n, embeddings.shape[1]), np.float32)
        self.counts: Counter[int] = Counter()  # selected rows per group
        self.choice = Choice([], set())
        self.taken = np.zeros(len(embeddings), bool)

    @property
    def full(self) -> bool:
        return len(self.choice.selected) >= self.n

    def quota_left(self, i: int, ignore_quotas: bool) -> bool:
        if ignore_quotas or not self.quotas:
            return True
        group = self.groups[i]
        return group >= 0 and self.counts[group] < self.quotas[group]

    def offer(self, i: int, ignore_quotas: bool = False) -> bool:
        """Take row i if it is new, fits its quota and is not too similar to the selection."""
        if self.full or self.taken[i] or i in self.choice.redundant or not self.quota_left(i, ignore_quotas):
            return False
        k = len(self.choice.selected)
        if k and float((self.buffer[:k] @ self.embeddings[i]).max()) > self.threshold:
            self.choice.redundant.add(i)
            return False
        self.buffer[k] = self.embeddings[i]
        self.choice.selected.append(i)
        self.counts[self.groups[i]] += 1
        self.taken[i] = True
        return True


def choose(
    quality: np.ndarray,
    embeddings: np.ndarray,
    groups: np.ndarray,
    quotas: list[int],
    n: int,
    threshold: float,
    method: str = "deita",
    clusters: np.ndarray | None = None,
    fill: bool = True,
    diversity_weight: float = 1.0,
    mmr_pool: int = 20,
) -> list[int]:
    """The rows picked (indices, in the order picked). Ties in quality keep input order. With `fill`,
    places a quota could not use go to the best remaining rows of any source."""
    order = np.argsort(-quality, kind="stable")
    if method == "mmr":
        return choose_mmr(
            quality, embeddings, groups, quotas, n, threshold, fill, diversity_weight, order[: max(n, n * mmr_pool)]
        )
    selector = Selector(embeddings, groups, quotas, n, threshold)
    if method == "deita":
        for i in order.tolist():
            if selector.full:
                break
            selector.offer(i)
    elif method == "clusters":
        assert clusters is not None, "method=clusters needs each row's cluster"
        queues: dict[int, list[int]] = {}
        for i in order.tolist():  # each cluster's rows, best first
            queues.setdefault(int(clusters[i]), []).append(i)
        ring = sorted(queues, key=lambda c: (-quality[queues[c][0]], c))
        while ring and not selector.full:
            for cluster in list(ring):
                queue = queues[cluster]
                while queue and not selector.offer(queue.pop(0)):
                    pass
                if not queue:
                    ring.remove(cluster)
                if selector.full:
                    break
    else:
        raise ValueError(f"method: '{method}' is not one of: deita, clusters, mmr")
    if fill and not selector.full and quotas:
        for i in order.tolist():
            if selector.full:
                break
            selector.offer(i, ignore_quotas=True)
    return selector.choice.selected


BASELINES = ("random", "longest")


def baseline(method: str, n_pool: int, n: int, response_chars: np.ndarray, seed: int) -> np.ndarray:
    """The rows of a baseline set of `n` (sorted): a seeded random sample, or the longest responses
    (ties keep input order)."""
    size = min(n, n_pool)
    if method == "random":
        return np.sort(np.random.default_rng(seed).choice(n_pool, size=size, replace=False))
    if method == "longest":
        return np.sort(np.argsort(-response_chars, kind="stable")[:size])
    raise ValueError(f"method: '{method}' is not one of: {', '.join(BASELINES)}")


def choose_mmr(
    quality: np.ndarray,
    embeddings: np.ndarray,
    groups: np.ndarray,
    quotas: list[int],
    n: int,
    threshold: float,
    fill: bool,
    weight: float,
    candidates: np.ndarray,
) -> list[int]:
    """Greedy MMR over `candidates` (the best-quality rows: bounds the cost to O(n x candidates))."""
    vectors, gains, member = embeddings[candidates], quality[candidates].astype(np.float64), groups[candidates]
    closest = np.full(len(candidates), -1.0)  # highest similarity to a row taken so far
    open_rows = np.ones(len(candidates), bool)
    counts: Counter[int] = Counter()
    ignore_quotas = not quotas
    picked: list[int] = []
    while len(picked) < n:
        allowed = open_rows & (closest <= threshold)
        if not ignore_quotas:
            full = [g for g, quota in enumerate(quotas) if counts[g] >= quota]
            allowed &= (member >= 0) & ~np.isin(member, full)
        if not allowed.any():
            if fill and not ignore_quotas:
                ignore_quotas = True
                continue
            break
        score = np.where(allowed, gains - weight * np.maximum(closest, 0.0), -np.inf)
        best = int(np.argmax(score))  # first of equals: the better-quality row, then input order
        picked.append(int(candidates[best]))
        open_rows[best] = False
        counts[member[best]] += 1
        np.maximum(closest, vectors @ vectors[best], out=closest)
    return picked


def redundant_rows(embeddings: np.ndarray, selected: list[int], threshold: float, block: int = 4096) -> np.ndarray:
    """Rows (not selected) whose similarity to some selected row is above the threshold."""
    flags = np.zeros(len(embeddings), bool)
    if not selected:
        return flags
    chosen = embeddings[selected]
    for start in range(0, len(embeddings), block):
        flags[start : start + block] = (embeddings[start : start + block] @ chosen.T).max(axis=1) > threshold
    flags[selected] = False
    return flags


def kmeans(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster labels of the rows (k-means++ on unit vectors, seeded)."""
    from scipy.cluster.vq import kmeans2

    k = max(1, min(k, len(embeddings)))
    if k == 1:
        return np.zeros(len(embeddings), np.int64)
    _, labels = kmeans2(embeddings.astype(np.float64), k, minit="++", seed=np.random.default_rng(seed))
    return labels.astype(np.int64)


def nearest_neighbour_similarity(embeddings: np.ndarray) -> np.ndarray:
    """For each row, the cosine similarity to its nearest other row of the same set."""
    if len(embeddings) < 2:
        return np.zeros(len(embeddings))
    sims = embeddings @ embeddings.T
    np.fill_diagonal(sims, -np.inf)
    return sims.max(axis=1)


def stats(values: np.ndarray) -> dict[str, float]:
    values = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    if len(values) == 0:
        return {}
    return {
        "mean": round(float(np.mean(values)), 4),
        "p10": round(float(np.percentile(values, 10)), 4),
        "p50": round(float(np.median(values)), 4),
        "p90": round(float(np.percentile(values, 90)), 4),
    }


def describe_set(
    rows: np.ndarray,
    quality: np.ndarray,
    components: dict[str, np.ndarray],
    embeddings: np.ndarray,
    response_chars: np.ndarray,
    sources: np.ndarray,
    clusters: np.ndarray,
    threshold: float,
    bins: np.ndarray,
) -> dict:
    """The numbers that compare one set of rows with another."""
    nn = nearest_neighbour_similarity(embeddings[rows])
    covered = np.unique(clusters[rows])
    shares = np.bincount(clusters[rows], minlength=int(clusters.max()) + 1)[covered] / max(len(rows), 1)
    entropy = float(-(shares * np.log(shares)).sum() / np.log(clusters.max() + 1)) if clusters.max() > 0 else 0.0
    return {
        "rows": int(len(rows)),
        "quality": stats(quality[rows]),
        "components": {
            name: stats(values[rows])["mean"] if stats(values[rows]) else None for name, values in components.items()
        },
        "nn_similarity": stats(nn),
        "share_nn_above_threshold": round(float((nn > threshold).mean()), 4) if len(nn) else 0.0,
        "clusters_covered": int(len(covered)),
        "cluster_entropy": round(entropy, 4),
        "response_chars": stats(response_chars[rows].astype(np.float64)),
        "sources": dict(sorted(Counter(sources[rows].tolist()).items())),
        "quality_histogram": np.histogram(quality[rows], bins=bins)[0].tolist(),
    }
