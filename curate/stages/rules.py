"""Threshold rules over score columns, and `RuleFilter`: the base of the heuristic filters.

A rule names the drop reason, the score column it reads, a comparison and a threshold; a stage
lists its rules in the order the published implementation checks them, and a document is
dropped for the first rule it breaks. A threshold of None disables its rule.
"""

from __future__ import annotations

import dataclasses
import operator
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from curate.stages.base import FilterStage

# Drop when `value <op> threshold` holds.
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Rule:
    """Drop a row with `reason` when `column <op> threshold` (disabled if threshold is None)."""

    reason: str
    column: str
    op: str
    threshold: Any

    def broken(self, batch: pa.RecordBatch) -> np.ndarray:
        values = batch.column(self.column).to_numpy(zero_copy_only=False)
        broken = OPERATORS[self.op](values, self.threshold)
        return np.asarray(broken, dtype=bool)


def first_broken(batch: pa.RecordBatch, rules: Sequence[Rule]) -> pa.Array:
    """Per row, the reason of the first rule it breaks, or null to keep it."""
    reasons = np.full(batch.num_rows, None, dtype=object)
    undecided = np.ones(batch.num_rows, dtype=bool)
    for rule in rules:
        if rule.threshold is None or not undecided.any():
            continue
        hit = undecided & rule.broken(batch)
        reasons[hit] = rule.reason
        undecided &= ~hit
    return pa.array(reasons, type=pa.string())


def texts_of(batch: pa.RecordBatch, column: str = "text") -> list[str]:
    """The batch's texts as Python strings (a null text reads as empty)."""
    return [text or "" for text in batch.column(column).to_pylist()]


class RuleFilter(FilterStage):
    """A filter made of per-document statistics and threshold rules (Gopher, C4, FineWeb, code).

    `score` computes `document_stats` for each row from the columns named in `stats_inputs`
    (a column the batch lacks gives None) — one value per provided column, in declaration
    order — and `decide` drops each row for the first of `rules()` it breaks.
    """

    stats_inputs: ClassVar[tuple[str, ...]] = ("text",)

    def document_stats(self, *values: Any) -> tuple:
        raise NotImplementedError

    def rules(self) -> list[Rule]:
        raise NotImplementedError

    def score(self, batch: pa.RecordBatch) -> Mapping[str, Sequence | np.ndarray]:
        inputs = [
            batch.column(name).to_pylist() if name in batch.schema.names else [None] * batch.num_rows
            for name in self.stats_inputs
        ]
        return self.score_columns([self.document_stats(*values) for values in zip(*inputs)])

    def score_columns(self, rows: list[tuple]) -> dict[str, list]:
        """Per-row statistics tuples as the provided columns."""
        return {name: [row[i] for row in rows] for i, name in enumerate(self.provided_columns())}

    def decide(self, batch: pa.RecordBatch) -> pa.Array:
        return first_broken(batch, self.rules())


def only_rule(cls: type, keep: str, **values: Any):
    """A stage of `cls` with every optional numeric threshold disabled except `keep` (and `values`):
    to study one rule alone (tests, the agreement benchmark)."""
    hints = typing.get_type_hints(cls)
    options: dict[str, None] = {}
    for f in dataclasses.fields(cls):
        optional = type(None) in typing.get_args(hints.get(f.name))
        if optional and f.name != keep and f.name not in values and isinstance(f.default, (int, float)):
            options[f.name] = None
    return cls(**options, **values)
