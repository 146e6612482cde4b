"""Append-only JSON-lines checkpoints, so a killed generation run resumes where it stopped.

Each line is one complete unit of work (a batch of LLM answers), written with a single write and
fsync'ed. A line cut short by a kill is detected on reading and removed; everything before it is
replayed, and the run continues from the next unit.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson


class Checkpoint:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> list[dict]:
        """The complete records written so far (a torn last line is cut off the file)."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        records, good = [], 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                break
            good += len(line)
        if good != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(good)
        return records

    def append(self, record: dict) -> None:
        line = orjson.dumps(record) + b"\n"
        with open(self.path, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
