"""Live counters of what the workers have read (rows and input bytes), for the progress bars.

A task streams its files for minutes; its result only says what it read when it ends. So each
worker process adds what it reads to its own slot of a small shared-memory array, once per
record batch (never per row), and the driver sums the slots a few times a second while drawing
the bars. Each slot has one writer and aligned 64-bit values: no lock, no message, no queue.

The local executor hands the array to its workers when it spawns them (and attaches it in-process
when it runs tasks inline); a worker without counters (Ray's actors) reports nothing and its
bar moves as tasks end.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

_attached: tuple[Any, int] | None = None  # this process's (values, slot), once attached


class LiveCounters:
    """`slots` pairs of (rows, bytes) in shared memory; each worker process claims one slot."""

    def __init__(self, slots: int):
        context = multiprocessing.get_context("spawn")
        self.slots = slots
        self.values = context.RawArray("q", 2 * slots)  # rows, bytes per slot
        self.claimed = context.Value("i", 0)  # slots handed out (the lock is taken only to claim one)

    def claim(self) -> int | None:
        """A slot of its own for this process, or None when all are taken (replaced workers)."""
        with self.claimed.get_lock():
            slot = self.claimed.value
            self.claimed.value += 1
        return slot if slot < self.slots else None

    def totals(self) -> tuple[int, int]:
        """Rows and bytes read so far by every worker (every pass)."""
        values = self.values[:]
        return sum(values[0::2]), sum(values[1::2])


def attach(counters: LiveCounters | None) -> None:
    """In a worker process (or the driver running tasks inline): report into `counters`."""
    global _attached
    slot = counters.claim() if counters is not None else None
    _attached = (counters.values, slot) if counters is not None and slot is not None else None


def reported() -> tuple[int, int]:
    """What this process has reported so far (rows, bytes); (0, 0) when it reports nowhere."""
    if _attached is None:
        return 0, 0
    values, slot = _attached
    return values[2 * slot], values[2 * slot + 1]


def report(rows: int, nbytes: int) -> None:
    """Add what this process has just read (a record batch's rows, the input bytes behind them)."""
    if _attached is not None and (rows or nbytes):
        values, slot = _attached
        values[2 * slot] += rows
        values[2 * slot + 1] += nbytes
