"""The engine: plan a run, execute its passes task by task, and write the dataset folder.

A run is planned completely before any data is read (`plan`): inputs found and grouped into
tasks, the pipeline built and its column chain checked. The driver (`driver`) then runs each
pass: every task streams its rows through the pass's stages in a worker (`task`); between
passes, a global stage resolves its scanned state: in partitions, as tasks on the executor, and
on the driver for what must be global. `finalize` merges the tasks' statistics, checks the
accounting and writes the manifest and the report. The output folder's life cycle (lock,
fingerprint, resume) is `folder`; the up-front memory estimate (`--plan`) is `estimate`.

Layout of the output folder while running:
    <out>/.lock                         held (flock) by the running process
    <out>/_work/run.json                the run's fingerprint and config, to resume safely
    <out>/_work/pass-K/task-NNNNN.json  a task's result: written last, it marks the task done
    <out>/_work/pass-K/data/            intermediate shards (passes before the last)
    <out>/_work/stage-NAME/             a global stage's scanned state (scan/, shuffle/), decisions, resolve.json
    <out>/_work/stage-NAME/partitions/  each step of a partitioned resolve: a marker and files per partition
    <out>/logs/                         run.log (driver) and pass-K-task-NNNNN.log (workers), kept
Every shard is written under a temporary name and renamed when complete; a task without its
marker is redone from scratch on rerun, so a killed run finishes with the same result.
"""

from curate.engine.driver import run, show_plan
from curate.engine.plan import Plan, make_plan

__all__ = ["Plan", "make_plan", "run", "show_plan"]
