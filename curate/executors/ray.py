"""The Ray executor: the engine's tasks on a pool of Ray actors, on this machine or a cluster.

Each pass gets a pool of `executor.workers` actors, each created with the resources the pass's
stages declare (CPUs, GPUs, memory: Ray places each actor on a node where they fit) and set up
once with the run's plan (like the local pool's initializer); a task goes to whichever actor is
free, and every actor tears its stages down when the pass ends. Each task streams its record
batches through the same stages as the local executor, so the output is exactly the local
executor's. Global stages resolve on the driver between passes.

Workers import the installed Thresher package (every node needs the same version installed;
a user's own stages come from the user's installed package), and each task logs to its own file
under `<output.dir>/logs/`; what workers print reaches the driver's terminal. On a real cluster
(`executor.address=ray://host:10001` or `auto`), with `input.paths` and `output.dir` on object
storage (`s3://...`) no node needs a shared filesystem: each actor writes through a staging folder
of its own node and publishes to the store, and reads what other nodes wrote from there
(`curate.engine.folder`); with local paths, every node must see them at the same path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from curate.errors import ConfigError
from curate.stages.base import Resources


class TaskActor:
    """Set up once with the run's payload, then runs the tasks it is given."""

    def __init__(self, initializer: Callable[[Any], None], payload: Any):
        import ray

        # This node's own staging folder for an output on object storage (nodes share no disk).
        os.environ["THRESHER_STAGING_ROLE"] = f"node-{ray.get_runtime_context().get_node_id()[:16]}"
        initializer(payload)

    def run(self, fn: Callable[[Any], Any], item: Any) -> tuple[str, Any]:
        # The error travels back as it is: Ray would wrap it in its own exception type, losing
        # the one-line message of a user error (file, position, field).
        try:
            return "ok", fn(item)
        except Exception as error:
            return "error", error

    def teardown(self, finalizer: Callable[[], None]) -> None:
        finalizer()


def actor_options(resources: Resources) -> dict[str, Any]:
    """Ray's scheduling options for an actor that needs `resources`."""
    options: dict[str, Any] = {"num_cpus": resources.cpus, "num_gpus": resources.gpus}
    if resources.memory_gb:
        options["memory"] = int(resources.memory_gb * (1 << 30))
    return options


def actors_that_fit(resources: Resources, cluster: dict[str, float]) -> int:
    """How many actors needing `resources` the cluster holds at once (more would wait forever)."""
    needs = {"CPU": resources.cpus, "GPU": resources.gpus, "memory": resources.memory_gb * (1 << 30)}
    fits = [int(cluster.get(name, 0) // need) for name, need in needs.items() if need > 0]
    count = min(fits, default=1 << 30)
    if count == 0:
        have = ", ".join(f"{name} {cluster.get(name, 0):g}" for name, need in needs.items() if need > 0)
        raise ConfigError(f"executor: a worker of this pass needs {resources}; the Ray cluster has {have}")
    return count


class RayExecutor:
    def __init__(
        self,
        workers: int,
        initializer: Callable[[Any], None],
        payload: Any,
        finalizer: Callable[[], None],
        address: str | None = None,
    ):
        self.workers, self.initializer, self.payload = workers, initializer, payload
        self.finalizer, self.address = finalizer, address
        self.started_ray = False

    def __enter__(self) -> RayExecutor:
        import ray

        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, configure_logging=False)
            else:  # a local Ray of `workers` CPUs, our own: "local" never joins another process's Ray
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
                ray.init(address="local", num_cpus=self.workers, include_dashboard=False, configure_logging=False)
            self.started_ray = True
        self.payload_ref = ray.put(self.payload)  # sent to the object store once, shared by every actor
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started_ray:
            import ray

            ray.shutdown()

    def map(self, fn: Callable, items: Iterable, resources: Resources | None = None) -> Iterator:
        """Yield fn(item) for each item as the actors complete them; the first failure is raised."""
        import ray
        from ray.util import ActorPool

        items = list(items)
        if not items:
            return
        resources = resources or Resources()
        remote = ray.remote(TaskActor).options(**actor_options(resources))
        count = min(self.workers, len(items), actors_that_fit(resources, ray.cluster_resources()))
        # Actor handles: Ray's stubs do not type their methods' `.remote` (nor a handle for ray.kill)
        actors: list[Any] = [remote.remote(self.initializer, self.payload_ref) for _ in range(count)]
        try:
            pool = ActorPool(actors)
            for status, value in pool.map_unordered(lambda actor, item: actor.run.remote(fn, item), items):
                if status == "error":
                    raise value
                yield value
            ray.get([actor.teardown.remote(self.finalizer) for actor in actors])
        finally:
            for actor in actors:
                ray.kill(actor)
