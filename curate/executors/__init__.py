"""Executors own parallelism: they run the engine's tasks, each in a worker that holds the plan.

An executor is a context manager whose `map(fn, items, resources)` yields `fn(item)` for each
item as the workers finish them (the first failure is raised). Workers are initialised once with
`initializer(payload)` and run `finalizer()` when done (the local pool: when its processes exit,
through the initializer's own exit hook; Ray: when a pass's actors are released); `resources` is
what a worker needs for these items (the pass's stages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol

from omegaconf import DictConfig

from curate.executors.counters import LiveCounters
from curate.executors.local import LocalExecutor
from curate.stages.base import Resources


class Executor(Protocol):
    def __enter__(self) -> Executor: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None, /
    ) -> None: ...

    def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], resources: Resources | None = None
    ) -> Iterator[Any]: ...


def make_executor(
    cfg: DictConfig,
    workers: int,
    initializer: Callable[[Any], None],
    payload: Any,
    finalizer: Callable[[], None],
    counters: LiveCounters | None = None,
) -> Executor:
    """The executor named by `executor.name` (validated in `curate.config`). The local executor's
    workers report what they read into `counters` as they read it; Ray's report as tasks end."""
    if cfg.executor.name == "ray":
        from curate.executors.ray import RayExecutor

        return RayExecutor(workers, initializer, payload, finalizer, address=cfg.executor.address)
    return LocalExecutor(workers, initializer, payload, counters)
