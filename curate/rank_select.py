"""Exact selection by rank over partitioned rows, from mergeable histograms.

Each row has a 128-bit key (`hi`, `lo`: two uint64), a weight (an integer >= 0) and a group.
For each group, `RankSelect` finds the smallest key K at which the cumulative weight of the
group's rows, in key order, reaches a target T: the rows with key <= K are exactly the first rows
whose weight reaches T (`top_fraction`: weight 1, K is the T-th best row; `mix`: weight = a
document's units, K ends a source's random sample).

It is the radix refinement of a quantile: each step, every partition returns the histogram (rows
and weight) of the next 16 bits of the keys that match the prefix fixed so far; the driver merges
the histograms (sums: the same whatever the partitioning), fixes the 16 bits of the bucket where
the target falls and carries what remains of the target into it. Once the bucket holds at most
`GATHER_ROWS` rows (or all 128 bits are fixed), the next step gathers those rows and the driver
finds K among them. The result is exact (no error bound to state: the histograms are only a way to
narrow the search) and deterministic; memory is 2^16 buckets per group on each side, plus the
gathered rows on the driver. Usually two steps: a histogram over the top 16 bits, then a gather.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DIGIT_BITS = 16
KEY_BITS = 128
GATHER_ROWS = 1 << 16
BUCKETS = 1 << DIGIT_BITS
SIGN = np.uint64(1 << 63)

# Memory, in bytes: a partition's histograms per group (rows and weight per bucket), and what the
# driver holds of a gathered row (three Python ints in a list, about 150 B).
HISTOGRAM_BYTES = 2 * 8 * BUCKETS
GATHERED_ROW_BYTES = 150

# rows of one group in a partition: (hi, lo, weight)
Rows = tuple[np.ndarray, np.ndarray, np.ndarray]


def descending_floats(values: np.ndarray) -> np.ndarray:
    """uint64 keys whose ascending order is the descending order of `values` (float64, no NaN;
    -0.0 counts as 0.0)."""
    bits = (np.asarray(values, np.float64) + 0.0).view(np.uint64)  # + 0.0: -0.0 becomes 0.0
    ascending = np.where(bits & SIGN, ~bits, bits | SIGN)
    return ~ascending


def float_of_descending(key: int) -> float:
    """The float64 whose `descending_floats` key is `key`."""
    ascending = ~np.uint64(key)
    bits = ascending & ~SIGN if ascending & SIGN else ~ascending
    return float(np.array([bits], np.uint64).view(np.float64)[0])


def matching(rows: Rows, bits: int, prefix: int) -> np.ndarray:
    """Which rows' keys start with the `bits`-bit `prefix`."""
    hi, lo, _ = rows
    if bits == 0:
        return np.ones(len(hi), bool)
    if bits <= 64:
        return (hi >> np.uint64(64 - bits)) == np.uint64(prefix)
    high, low = prefix >> (bits - 64), prefix & ((1 << (bits - 64)) - 1)
    return (hi == np.uint64(high)) & ((lo >> np.uint64(128 - bits)) == np.uint64(low))


def digit(hi: np.ndarray, lo: np.ndarray, bits: int) -> np.ndarray:
    """The 16 bits of each key after its top `bits` bits (a multiple of 16)."""
    word, shift = (hi, 48 - bits) if bits < 64 else (lo, 112 - bits)
    return ((word >> np.uint64(shift)) & np.uint64(BUCKETS - 1)).astype(np.int64)


def answer(request: Mapping[str, list[Any]], chunks: Iterable[Mapping[str, Rows]]) -> dict[str, Any]:
    """A partition's answer to a step (`request`: group -> [bits, prefix, gather]; an empty request
    asks the first histogram of every group), over its rows given in chunks (group -> rows): per
    group, the histogram of the next 16 bits of the matching keys as [digit, rows, weight] triples,
    or the matching rows as [hi, lo, weight]. Memory: a chunk, and 2^16 buckets per group."""
    histograms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    gathered: dict[str, list[list[int]]] = {}
    for rows_of in chunks:
        for group, rows in rows_of.items():
            if request and group not in request:
                continue
            bits, prefix, gather = request[group] if request else (0, 0, False)
            match = matching(rows, bits, prefix)
            hi, lo, weight = (part[match] for part in rows)
            if gather:
                gathered.setdefault(group, []).extend([int(h), int(x), int(w)] for h, x, w in zip(hi, lo, weight))
                continue
            digits = digit(hi, lo, bits)
            counts, weights = histograms.setdefault(group, (np.zeros(BUCKETS, np.int64), np.zeros(BUCKETS, np.int64)))
            counts += np.bincount(digits, minlength=BUCKETS)
            np.add.at(weights, digits, weight.astype(np.int64))
    found: dict[str, Any] = {group: {"rows": rows} for group, rows in gathered.items()}
    for group, (counts, weights) in histograms.items():
        found[group] = {"histogram": [[int(d), int(counts[d]), int(weights[d])] for d in np.flatnonzero(counts)]}
    return found


@dataclass
class Selected:
    """A group's key K, and the weight and number of its rows with a key <= K."""

    key: tuple[int, int]
    weight: int
    rows: int


@dataclass
class Search:
    """What is known of one group's key: its top `bits` bits (`prefix`), the weight still to reach
    among the keys with that prefix, and the rows and weight of the keys before the prefix."""

    bits: int
    prefix: int
    remaining: int
    rows_before: int = 0
    weight_before: int = 0
    gather: bool = False

    def request(self) -> list[Any]:
        return [self.bits, self.prefix, self.gather]

    def narrow(self, histogram: dict[int, tuple[int, int]], group: str) -> Selected | None:
        """Fix the next 16 bits: the bucket where the remaining weight is reached. With all 128 bits
        fixed, the key is found."""
        for value in sorted(histogram):
            rows, weight = histogram[value]
            if weight >= self.remaining:
                self.prefix, self.bits = self.prefix << DIGIT_BITS | value, self.bits + DIGIT_BITS
                self.gather = rows <= GATHER_ROWS
                if self.bits == KEY_BITS:
                    return Selected(divmod(self.prefix, 1 << 64), self.weight_before + weight, self.rows_before + rows)
                return None
            self.remaining -= weight
            self.rows_before += rows
            self.weight_before += weight
        raise ValueError(f"rank selection: the target is beyond the weight of group '{group}'")

    def find(self, rows: list[tuple[int, ...]], group: str) -> Selected:
        """The key among the gathered rows (every row with the prefix)."""
        weight = 0
        for count, (hi, lo, row_weight) in enumerate(sorted(rows), 1):
            weight += row_weight
            if weight >= self.remaining:
                return Selected((hi, lo), self.weight_before + weight, self.rows_before + count)
        raise ValueError(f"rank selection: the gathered rows of group '{group}' do not reach the target")


def merged_histograms(answers: list[dict[str, Any]]) -> dict[str, dict[int, tuple[int, int]]]:
    """The partitions' histograms summed, per group: digit -> (rows, weight)."""
    merged: dict[str, dict[int, tuple[int, int]]] = {}
    for found in answers:
        for group, part in found.items():
            histogram = merged.setdefault(group, {})
            for value, rows, weight in part.get("histogram", []):
                old = histogram.get(value, (0, 0))
                histogram[value] = (old[0] + rows, old[1] + weight)
    return merged


class RankSelect:
    """The driver's side: runs the steps (`run(step, request) -> the partitions' answers`, in
    partition order: `GlobalContext.map_partitions`), named `<name>-0`, `<name>-1`, ..."""

    def __init__(self, run: Callable[[str, Any], list[Any]], name: str = "select"):
        self.run, self.name, self.steps = run, name, 0
        self.first: dict[str, dict[int, tuple[int, int]]] = {}

    def step(self, request: dict[str, list[Any]]) -> list[dict[str, Any]]:
        answers = self.run(f"{self.name}-{self.steps}", request)
        self.steps += 1
        return answers

    def totals(self) -> dict[str, tuple[int, int]]:
        """Rows and weight of every group (from the first step's histograms, kept for `select`)."""
        self.first = merged_histograms(self.step({}))
        return {
            group: (sum(rows for rows, _ in h.values()), sum(weight for _, weight in h.values()))
            for group, h in self.first.items()
        }

    def select(self, targets: Mapping[str, int]) -> dict[str, Selected]:
        """For each group, the smallest key whose cumulative weight reaches its target (1 <= target
        <= the group's weight; `totals` first)."""
        searches = {group: Search(0, 0, int(target)) for group, target in targets.items()}
        histograms = {group: self.first[group] for group in searches}
        found: dict[str, Selected] = {}
        while searches:
            for group, histogram in histograms.items():
                selected = searches[group].narrow(histogram, group)
                if selected is not None:
                    found[group] = selected
                    del searches[group]
            if not searches:
                break
            answers = self.step({group: search.request() for group, search in searches.items()})
            merged = merged_histograms(answers)
            histograms = {}
            for group, search in list(searches.items()):
                if search.gather:
                    rows = [tuple(row) for part in answers for row in part.get(group, {}).get("rows", [])]
                    found[group] = search.find(rows, group)
                    del searches[group]
                else:
                    histograms[group] = merged[group]
        return found
