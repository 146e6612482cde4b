"""One statistics API for every stage, as datatrove's `stat_update`.

Each stage holds a `StageStats` that the engine binds for the work at hand (a task in a worker,
or the resolve step of a global stage on the driver) and merges afterwards:
- the engine counts rows in and out, drops by reason, generated rows and seconds;
- the stage adds its own counters with `Stage.stat_update(name, value)` (tokens written, pairs
  built, clusters found), summed over tasks and phases; two reserved counters feed the accounting
  (rows in + generated = rows out + dropped + consumed, checked for every stage of every run):
  `consumed` counts input rows that end in the stage without being output or dropped (an answer
  merged into its question, documents packed into token sequences, a tokenizer's training rows),
  `generated` counts rows the stage outputs that are not its input rows (epoch copies of a mix,
  packed sequences; rows of `GlobalStage.generate` are counted by the engine);
- the stage records facts with `Stage.stat_set(name=value, ...)` (the fingerprint of the tokenizer it
  used, a sample of duplicate clusters): JSON values, kept once (the first task's, in task order).
Everything lands in the manifest's record of the stage (`stats` and `details`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CONSUMED = "consumed"
GENERATED = "generated"


@dataclass
class StageStats:
    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    generated: int = 0  # rows the stage created (kept or dropped): not input rows
    consumed: int = 0  # input rows that ended in the stage, neither output nor dropped
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    counters: dict[str, float] = field(default_factory=dict)  # the stage's own counters
    details: dict[str, Any] = field(default_factory=dict)  # the stage's facts (JSON values)

    def update(self, name: str, value: float = 1) -> None:
        if name == CONSUMED:
            self.consumed += int(value)
        elif name == GENERATED:
            self.generated += int(value)
        else:
            self.counters[name] = self.counters.get(name, 0) + value

    def set(self, name: str, value: Any) -> None:
        self.details[name] = value

    def drop(self, reason: str, count: int) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def merge(self, other: StageStats) -> None:
        """Add `other` (a later task or phase) into these stats."""
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.generated += other.generated
        self.consumed += other.consumed
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.seconds += other.seconds
        for reason, count in other.dropped.items():
            self.drop(reason, count)
        for name, value in other.counters.items():
            self.update(name, value)
        for name, value in other.details.items():
            self.details.setdefault(name, value)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def balanced(self) -> bool:
        """rows in + generated = rows out + dropped + consumed."""
        return self.rows_in + self.generated == self.rows_out + self.dropped_total + self.consumed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageStats:
        return cls(**data)
