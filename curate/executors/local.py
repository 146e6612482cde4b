"""The local executor: a process pool over tasks on one machine (inline when there is one worker)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from curate.executors.counters import LiveCounters, attach
from curate.stages.base import Resources


def exit_with_parent() -> None:
    """In a spawned worker: end this process at once when the process that spawned it dies.

    A `kill -9` of the main process gives its workers no signal; they would live on, holding the
    terminal's output (a `| tee` never ends) and writing into a folder a rerun is using. The
    spawn start method hands each child a pipe from its parent (`parent_process().sentinel`)
    that becomes readable when the parent is gone; a daemon thread waits on it."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up: the rerun redoes unfinished tasks

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def start_worker(initializer: Callable[[Any], None], payload: Any, counters: LiveCounters | None = None) -> None:
    """The pool's initializer: watch the parent, report into the live counters, then the engine's own initializer."""
    exit_with_parent()
    attach(counters)
    initializer(payload)


class LocalExecutor:
    """Runs tasks in `workers` processes, each initialised once with the run's payload.

    Processes are spawned (not forked) so that threads of pyarrow, polars or torch in the driver
    never leak into workers, and each ends when the main process dies (`exit_with_parent`). At
    most `2 * workers` tasks are queued at a time.
    """

    def __init__(
        self,
        workers: int,
        initializer: Callable[[Any], None],
        payload: Any,
        counters: LiveCounters | None = None,
    ):
        self.workers, self.initializer, self.payload = workers, initializer, payload
        self.counters = counters  # what the workers have read, live (curate.executors.counters)
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalExecutor:
        if self.workers > 1:
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=start_worker,
                initargs=(self.initializer, self.payload, self.counters),
            )
        else:
            attach(self.counters)
            self.initializer(self.payload)
        return self

    def __exit__(self, exc_type, *_) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=exc_type is None, cancel_futures=True)
        else:
            attach(None)  # the tasks ran here: this process reports nowhere once they are done

    def map(self, fn: Callable, items: Iterable, resources: Resources | None = None) -> Iterator:
        """Yield fn(item) for each item, as they complete. The first failure is raised.
        `resources` is not enforced: the pool has `workers` processes on this machine."""
        items = list(items)
        if self.pool is None:
            for item in items:
                yield fn(item)
            return
        pending = set()
        queue = iter(items)
        for item in queue:
            pending.add(self.pool.submit(fn, item))
            if len(pending) >= 2 * self.workers:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
                for item in queue:
                    pending.add(self.pool.submit(fn, item))
                    break
