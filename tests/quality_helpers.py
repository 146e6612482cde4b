"""Helpers for the quality-filter tests: run a stage on hand-written documents."""

from __future__ import annotations

import pyarrow as pa

from curate.stages.rules import only_rule


def batch_of(texts: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"id": [str(i) for i in range(len(texts))], "text": texts})


def run(stage, texts: list[str]) -> tuple[list[str | None], dict[str, list]]:
    """The drop reason (None = kept) and the score values of each text, in input order."""
    stage.setup()
    result = stage.process(batch_of(texts))
    rows: dict[str, dict] = {}
    for table in (result.kept, result.dropped):
        if table is not None:
            for row in table.to_pylist():
                rows[row["id"]] = row
    ordered = [rows[str(i)] for i in range(len(texts))]
    scores = {name: [row[name] for row in ordered] for name in stage.provides}
    return [row.get("drop_reason") for row in ordered], scores


def isolated(cls, keep: str, **values):
    """A stage of `cls` with every optional threshold disabled except `keep` (and `values`)."""
    return only_rule(cls, keep, **values)


def filler(n_words: int, start: int = 0) -> str:
    """`n_words` distinct plain words (no stop words, 5 letters each)."""
    letters = "bcdfghjklmnpqrstvwxz"
    words = []
    for i in range(start, start + n_words):
        a, b, c = i % 20, (i // 20) % 20, (i // 400) % 20
        words.append(f"w{letters[a]}{letters[b]}{letters[c]}y")
    return " ".join(words)
