"""Exact selection by rank from mergeable histograms (`curate.rank_select`) against a plain sort."""

from __future__ import annotations

import numpy as np
import pytest

from curate import rank_select
from curate.rank_select import RankSelect, answer, descending_floats, float_of_descending


def brute_force(hi, lo, weight, target):
    order = np.lexsort((lo, hi))
    cumulative = np.cumsum(weight[order])
    at = int(np.searchsorted(cumulative, target))
    return (int(hi[order][at]), int(lo[order][at])), int(cumulative[at]), at + 1


def partitioned(rows_of_group: dict, partitions: int):
    """Each group's rows spread over `partitions` partitions; `run` answers a step like the engine."""
    shares = [
        {g: tuple(part[p::partitions] for part in rows) for g, rows in rows_of_group.items()} for p in range(partitions)
    ]
    return lambda step, request: [answer(request or {}, [share]) for share in shares]


@pytest.mark.parametrize("partitions", [1, 3, 8])
@pytest.mark.parametrize("gather_rows", [1 << 16, 3])
def test_the_key_reached_by_each_target_equals_a_sort(monkeypatch, partitions, gather_rows):
    monkeypatch.setattr(rank_select, "GATHER_ROWS", gather_rows)  # 3: every 16 bits narrowed by a histogram
    rng = np.random.default_rng(0)
    groups = {}
    for name, n in (("a", 5000), ("b", 37), ("c", 1)):
        hi = rng.integers(0, 2**64, n, dtype=np.uint64)
        hi[: n // 3] = hi[0]  # many ties on hi: lo decides
        lo = rng.permutation(n).astype(np.uint64)
        weight = rng.integers(0, 5, n).astype(np.int64)
        weight[-1] = 1  # at least one row weighs something
        groups[name] = (hi, lo, weight)
    select = RankSelect(partitioned(groups, partitions))
    totals = select.totals()
    assert totals == {g: (len(r[0]), int(r[2].sum())) for g, r in groups.items()}
    for fraction in (1e-9, 0.3, 0.5, 1.0):
        targets = {g: max(1, int(fraction * total)) for g, (_, total) in totals.items()}
        found = select.select(targets)
        for group, target in targets.items():
            key, weight, rows = brute_force(*groups[group], target)
            assert (found[group].key, found[group].weight, found[group].rows) == (key, weight, rows)


def test_descending_float_keys_keep_the_order_and_decode():
    values = np.array([3.5, -1.0, 0.0, -0.0, np.inf, -np.inf, 1e-300, -2.5e10, 0.25])
    keys = descending_floats(values)
    assert np.array_equal(np.argsort(keys, kind="stable"), np.argsort(-(values + 0.0), kind="stable"))
    assert [float_of_descending(int(k)) for k in keys] == (values + 0.0).tolist()
