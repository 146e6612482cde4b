"""The Ray executor: the engine's tasks, scheduled by Ray Data on a Ray cluster.

Each task (a group of input shards) is one row of a Ray Data dataset; `map_batches` runs the
rows on a pool of actors, each holding the run's plan (like the local pool's initializer) and
streaming its task's record batches through the same stages. The output is therefore exactly
the local executor's. Global stages resolve on the driver between passes, on compact state
written to the output folder.

Workers import the installed `thresher` package (and any plugin package a recipe's `_target_`
names), as the driver does: on a real cluster (`executor.address=ray://host:10001` or `auto`)
every node must have them installed, and see `input.paths` and `output.dir` at the same path (a
shared filesystem); `executor.workers` is then the number of actors (one CPU each).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from curate.errors import ThresherError

class TaskActor:
    """A Ray Data actor: set up once with the run's payload, then runs the task specs it is given."""

    def __init__(self, initializer: Callable[[dict], None], payload: dict, fn: Callable):
        initializer(payload)
        self.fn = fn

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Specs and results are pickled by this run's own processes: trusted data, not user input.
        # A task's error travels back as its result: Ray Data would replace it by a generic
        # UserCodeException, losing the one-line message that names the file and the field.
        results = []
        for spec in batch["spec"]:
            try:
                results.append(pickle.dumps(("ok", self.fn(pickle.loads(spec)))))
            except ThresherError as error:
                results.append(pickle.dumps(("error", error)))
        return {"result": np.array(results, dtype=object)}


class RayExecutor:
    def __init__(self, workers: int, initializer: Callable[[dict], None], payload: dict, address: str | None = None):
        self.workers, self.initializer, self.payload, self.address = workers, initializer, payload, address
        self.started_ray = False

    def __enter__(self) -> RayExecutor:
        import ray
        from ray.data import DataContext

        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
            else:  # a local Ray: its workers run this interpreter, with its installed packages
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
            self.started_ray = True
        context = DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        return self

    def __exit__(self, *exc) -> None:
        if self.started_ray:
            import ray

            ray.shutdown()

    def map(self, fn: Callable, items: Iterable) -> Iterator:
        """Yield fn(item) for each item as the actors complete them; the first failure is raised."""
        import ray.data
        from ray.data import ActorPoolStrategy

        items = list(items)
        if not items:
            return
        dataset = ray.data.from_items([{"spec": pickle.dumps(item)} for item in items], override_num_blocks=len(items))
        dataset = dataset.map_batches(
            TaskActor, fn_constructor_args=(self.initializer, self.payload, fn), batch_size=1,
            compute=ActorPoolStrategy(size=min(self.workers, len(items))), num_cpus=1,
        )
        for row in dataset.iter_rows():
            status, value = pickle.loads(row["result"])
            if status == "error":
                raise value
            yield value
