"""The up-front estimate of a run: tasks, partitions, documents, and the peak memory of each worker
and of the driver, from the measured costs each stage states (`Stage.memory`; docs/scaling.md).

Made before the run reads its data: the number of documents is the (uncompressed) input size
divided by the text size of the documents of a small sample of the first input file, so it errs on
the high side (markup and JSON keys count as text there). A worker holds the models of every stage
it sets up, a batch in flight with its temporaries, and the largest of what a task or a partition
of a global stage holds; the driver holds its baseline and the largest driver-side resolve. Every
run logs the estimate; `thresher curate --plan` prints it and stops; a run whose estimate does not
fit this machine's memory (the local executor) stops before reading data, with one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import psutil

from curate.config import workers
from curate.engine.plan import Plan, mb
from curate.errors import ConfigError, ThresherError
from curate.readers import FileStats, Quarantine, read_file
from curate.stages.base import GIB, GlobalStage, Load

# Measured on this project's machines (benchmarks/scale_bench.py --costs, results/scale.json):
# resident memory of the driver (its largest, with polars and scipy imported for MinHash) and of a
# worker once Thresher's modules are imported.
DRIVER_BASE = 340 << 20
WORKER_BASE = 220 << 20
# A record batch in flight costs about this many times its size (its copies through the stages).
BATCH_FACTOR = 4
# The planning figure for duplicates: at most this share of documents in duplicate clusters.
DUPLICATE_SHARE = 0.5
SAMPLE_ROWS = 200


@dataclass
class Estimate:
    tasks: int
    passes: int
    partitions: int
    workers: int  # worker processes (0: one worker, the driver runs the tasks itself)
    input_bytes: int
    documents: int
    document_bytes: float
    worker_bytes: int
    worker_peak_at: str
    driver_bytes: int
    driver_peak_at: str
    machine_bytes: int

    @property
    def total_bytes(self) -> int:
        """Workers and driver at their peaks at once (an upper bound: peaks rarely coincide)."""
        return self.workers * self.worker_bytes + self.driver_bytes

    def lines(self) -> list[str]:
        worker = (
            f"~{human(self.worker_bytes)} at peak ({self.worker_peak_at})"
            if self.workers
            else "none (one worker: the driver runs the tasks)"
        )
        return [
            f"plan: {self.tasks} task(s) in {self.passes} pass(es), {self.partitions} partition(s) per global "
            f"resolve, {max(self.workers, 1)} worker(s)",
            f"input: {human(self.input_bytes)} (uncompressed estimate), ~{self.documents:,} documents of "
            f"~{human(self.document_bytes)} (from a sample)",
            f"memory per worker: {worker}",
            f"memory on the driver: ~{human(self.driver_bytes)} at peak ({self.driver_peak_at}; assuming up to "
            f"{DUPLICATE_SHARE:.0%} of documents are duplicates)",
            f"together: ~{human(self.total_bytes)} of this machine's {human(self.machine_bytes)}",
        ]

    def problem(self) -> str | None:
        """One line if the estimate does not fit this machine's memory."""
        if self.total_bytes <= 0.9 * self.machine_bytes:
            return None
        return (
            f"executor: the run's memory estimate ({self.workers} worker(s) x {human(self.worker_bytes)} + driver "
            f"{human(self.driver_bytes)} = {human(self.total_bytes)}) does not fit this machine's "
            f"{human(self.machine_bytes)}; use fewer workers (executor.workers), more partitions "
            "(executor.partitions), smaller tasks (executor.task_mb), or executor.memory_check=false to run anyway"
        )


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit in ("B", "kB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def sampled_document_bytes(plan: Plan) -> float:
    """Average text bytes of the first documents of the first input file that has some (the whole
    record's Arrow size for kinds without `text`)."""
    options = dataclasses.replace(plan.options, batch_rows=SAMPLE_ROWS)  # one small batch is the sample
    for file in plan.files:
        rows = size = 0
        try:
            for batch in read_file(file, plan.mapper, options, Quarantine(fail=False), FileStats(str(file.path))):
                column = batch.schema.get_field_index("text")
                size += batch.column(column).nbytes if column >= 0 else batch.nbytes
                rows += batch.num_rows
                if rows >= SAMPLE_ROWS:
                    break
        except (ThresherError, OSError, ValueError):  # the run itself reports a bad file, with its position
            continue
        if rows:
            return max(1.0, size / rows)
    return 1.0


def estimate(plan: Plan) -> Estimate:
    cfg = plan.cfg
    n_workers = min(workers(cfg), max(1, len(plan.tasks)))
    # Each file once, whole: a Parquet file read in parts counts its whole size against every part.
    whole = {f.path: replace(f, part=None) for f in plan.files}
    input_bytes = sum(f.estimated_bytes for f in whole.values())
    document_bytes = sampled_document_bytes(plan)
    documents = int(input_bytes / document_bytes)
    largest_task = max((sum(f.estimated_bytes for f in task) for task in plan.tasks), default=0)
    batch_bytes = int(min(mb(cfg.executor.batch_mb), cfg.executor.batch_rows * document_bytes))
    load = Load(
        documents=documents,
        document_bytes=document_bytes,
        task_documents=int(largest_task / document_bytes),
        partitions=plan.partitions,
        batch_bytes=batch_bytes,
        duplicates=int(DUPLICATE_SHARE * documents),
    )
    costs = {stage.name: stage.memory(load) for stage in plan.pipeline.stages}
    # a worker keeps every stage it set up; what a recipe declares (`resources`) is a floor
    models = sum(max(costs[s.name].setup, s.resources.memory_gb * GIB) for s in plan.pipeline.stages)
    phases = {"a task": BATCH_FACTOR * batch_bytes + max((c.task for c in costs.values()), default=0)}
    for stage in plan.pipeline.stages:
        if isinstance(stage, GlobalStage) and costs[stage.name].partition:
            phases[f"{stage.name} resolve, one partition"] = costs[stage.name].partition
    worker_at, worker_peak = max(phases.items(), key=lambda item: item[1])
    driver_at, driver_peak = max(
        [("its baseline", 0.0)] + [(f"{name} resolve", cost.driver) for name, cost in costs.items()],
        key=lambda item: item[1],
    )
    worker_bytes = int(WORKER_BASE + models + worker_peak)
    driver_bytes = int(DRIVER_BASE + driver_peak)
    if n_workers == 1:  # the driver runs the tasks and the partitions itself
        driver_bytes, worker_bytes = int(DRIVER_BASE + models + max(worker_peak, driver_peak)), 0
        driver_at = worker_at if worker_peak > driver_peak else driver_at
    return Estimate(
        tasks=len(plan.tasks),
        passes=len(plan.pipeline.passes),
        partitions=plan.partitions,
        workers=n_workers if n_workers > 1 else 0,
        input_bytes=input_bytes,
        documents=documents,
        document_bytes=document_bytes,
        worker_bytes=worker_bytes,
        worker_peak_at=worker_at,
        driver_bytes=driver_bytes,
        driver_peak_at=driver_at,
        machine_bytes=psutil.virtual_memory().total,
    )


def check(plan: Plan, found: Estimate) -> None:
    """Stop before reading data if the estimate does not fit this machine's memory (the local
    executor: a Ray cluster's nodes are checked by Ray, from the stages' declared resources)."""
    problem = found.problem()
    if problem and plan.cfg.executor.memory_check and plan.cfg.executor.name == "local":
        raise ConfigError(problem)
