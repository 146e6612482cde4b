"""Executors own parallelism: they run the engine's tasks, each in a worker that holds the plan."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from curate.executors.local import LocalExecutor


def make_executor(cfg: DictConfig, workers: int, initializer: Callable, payload: dict):
    """The executor named by `executor.name` (validated in `curate.config`)."""
    if cfg.executor.name == "ray":
        from curate.executors.ray import RayExecutor

        return RayExecutor(workers, initializer, payload, address=cfg.executor.address)
    return LocalExecutor(workers, initializer, payload)
