"""Partitioned resolve of global stages: the output is the same for any number of partitions and
workers, a kill during a partition step resumes without redoing finished partitions, the driver's
memory stays within the estimate (measured with psutil), and `--plan` prints the estimate."""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import curate, kill_when, read_dataset, start_curate, thresher, write_jsonl
from test_dedup import base_texts, digests, with_jaccard

from curate.errors import ConfigError

# exact and MinHash dedup, then the best 60% by score, then a mix of the two input files
GLOBAL_STAGES = (
    "pipeline=near_dedup",
    "stages.minhash_dedup.keep=longest",
    "+stage@stages.top_fraction=top_fraction",
    "stages.top_fraction.column=score",
    "stages.top_fraction.fraction=0.6",
    "+stage@stages.mix=mix",
    "stages.mix.weights=[a:0.7,b:0.3]",
    "input.columns=[score:float64]",
    "executor.task_mb=0.02",
)


def scored_corpus(folder: Path, count: int = 300) -> list[Path]:
    """Two files (sources a and b) of distinct documents with exact and near copies, and a score
    with ties and missing values."""
    rng = random.Random(7)
    texts = base_texts(count, words=80, seed=3)
    vocabulary = sorted({w for t in texts[:50] for w in t.split()})
    rows = []
    for i, text in enumerate(texts):
        rows.append({"id": f"d{i}", "text": text})
        if i % 7 == 0:
            rows.append({"id": f"d{i}-near", "text": with_jaccard(text, 0.9, rng, vocabulary)})
        if i % 11 == 0:
            rows.append({"id": f"d{i}-exact", "text": text})
    rng.shuffle(rows)
    for row in rows:
        row["score"] = None if rng.random() < 0.1 else rng.choice([0.1, 0.25, 0.5, 0.5, 0.75, rng.random()])
    half = len(rows) // 2
    return [write_jsonl(folder / "a.jsonl", rows[:half]), write_jsonl(folder / "b.jsonl", rows[half:])]


def copies_corpus(folder: Path, count: int, copies: int, files: int, words: int, seed: int) -> None:
    """`count` distinct documents and near copies of the first `copies` (one word added), shuffled
    into `files` files."""
    texts = base_texts(count, words=words, seed=seed)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    rows += [{"id": f"d{i}-copy", "text": t + " extra"} for i, t in enumerate(texts[:copies])]
    random.Random(1).shuffle(rows)
    per_file = -(-len(rows) // files)
    for f in range(files):
        write_jsonl(folder / f"part{f:02d}.jsonl", rows[f * per_file : (f + 1) * per_file])


def outputs(folder: Path) -> dict:
    found = digests(folder)
    for name in ("exact_dedup", "minhash_dedup"):
        found[name] = (folder / "stages" / name / "clusters.arrow").read_bytes()
    return found


def test_any_number_of_partitions_and_workers_gives_the_same_output(tmp_path):
    inputs = scored_corpus(tmp_path / "in")
    one = curate(inputs, tmp_path / "p1", *GLOBAL_STAGES, "executor.partitions=1", "executor.workers=1")
    four = curate(inputs, tmp_path / "p4", *GLOBAL_STAGES, "executor.partitions=4", "executor.workers=2")
    seven = curate(inputs, tmp_path / "p7", *GLOBAL_STAGES, "executor.partitions=7", "executor.workers=1")
    assert outputs(tmp_path / "p1") == outputs(tmp_path / "p4") == outputs(tmp_path / "p7")
    for manifest in (four, seven):
        assert [(s.name, s.dropped, s.details) for s in manifest.stages] == [
            (s.name, s.dropped, s.details) for s in one.stages
        ]
    dropped = {s.name: s.dropped for s in one.stages}
    assert dropped["exact_dedup"]["exact_duplicate"] >= 20 and dropped["minhash_dedup"]["near_duplicate"] >= 30
    # four partitions of each step ran as tasks, each with its marker and log
    work = tmp_path / "p4" / "logs"
    assert len(list(work.glob("resolve-minhash_dedup-verify-p*.log"))) == 4


def test_top_fraction_keeps_exactly_the_best_rows_in_partitions(tmp_path):
    """The cut found from partitions' histograms is the exact one: ceil(fraction x rows) rows, the
    best scores (missing scores last)."""
    inputs = scored_corpus(tmp_path / "in")
    manifest = curate(
        inputs,
        tmp_path / "top",
        "pipeline=clean",
        "input.columns=[score:float64]",
        "executor.task_mb=0.02",
        "executor.partitions=5",
        "+stage@stages.top_fraction=top_fraction",
        "stages.top_fraction.column=score",
        "stages.top_fraction.fraction=0.37",
    )
    stage = manifest.stages[-1]
    kept = read_dataset(tmp_path / "top").to_pylist()
    dropped = [r for r in read_dataset(tmp_path / "top", "rejects").to_pylist() if r["drop_stage"] == "top_fraction"]
    score = lambda row: -math.inf if row["score"] is None else row["score"]  # noqa: E731
    assert len(kept) == math.ceil(0.37 * stage.rows_in) == stage.rows_out and len(kept) + len(dropped) == stage.rows_in
    assert min(map(score, kept)) >= max(map(score, dropped)) == stage.details["cutoff_score"]


def test_zero_rows_reach_partitioned_stages(tmp_path):
    inputs = scored_corpus(tmp_path / "in", count=20)
    manifest = curate(
        inputs,
        tmp_path / "out",
        "pipeline=clean",
        "stages.length_filter.min_chars=1000000",
        *(f"+stage@stages.{name}={name}" for name in ("exact_dedup", "minhash_dedup")),
        *GLOBAL_STAGES[2:5],  # top_fraction (mix refuses a weighted source without rows)
        "input.columns=[score:float64]",
        "executor.partitions=3",
    )
    assert manifest.rows == 0 and [s.rows_in for s in manifest.stages[2:]] == [0, 0, 0]


def test_a_kill_during_a_partition_step_resumes_to_the_same_output(tmp_path):
    copies_corpus(tmp_path / "in", 2000, 400, files=40, words=40, seed=2)
    options = [
        "pipeline=near_dedup",
        "~stages.exact_dedup",
        "executor.task_mb=0.001",
        "executor.workers=1",
        "executor.partitions=24",
        "output.report=false",
    ]
    curate(tmp_path / "in", tmp_path / "whole", *options)

    out = tmp_path / "killed"
    step = out / "_work" / "stage-minhash_dedup" / "partitions" / "candidates"
    kill_when(start_curate(tmp_path / "in", out, options), lambda: len(list(step.glob("p*.json"))) >= 3)
    assert not (out / "manifest.json").exists(), "the run finished before it could be killed"
    finished = {path: path.read_bytes() for path in step.glob("p*.json")}
    assert 3 <= len(finished) < 24
    stamps = {path: path.stat().st_mtime_ns for path in finished}

    manifest = curate(tmp_path / "in", out, *options, "output.keep_work=true")
    assert digests(out) == digests(tmp_path / "whole")
    assert manifest.stages[0].dropped == {"near_duplicate": 400}
    for path, content in finished.items():  # finished partitions were not run again
        assert path.read_bytes() == content and path.stat().st_mtime_ns == stamps[path]
    assert len(list(step.glob("p*.json"))) == 24 and not list(out.rglob("*.tmp"))


class PeakMemory:
    """Peak resident memory of a process and of its largest child, sampled with psutil."""

    def __init__(self, pid: int, every: float = 0.02):
        self.process, self.every = psutil.Process(pid), every
        self.main = self.child = 0
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self) -> None:
        while self.running:
            try:
                self.main = max(self.main, self.process.memory_info().rss)
                for child in self.process.children(recursive=True):
                    self.child = max(self.child, child.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(self.every)

    def stop(self) -> None:
        self.running = False
        self.thread.join()


def test_driver_and_worker_memory_stay_within_the_estimate(tmp_path):
    """60,000 documents with 10% planted near-duplicates through near_dedup on 2 workers: the
    driver's and the workers' peak resident memory (psutil) are within the run's own estimate
    (generous margin: 1.5x)."""
    copies_corpus(tmp_path / "in", 54000, 6000, files=6, words=60, seed=9)
    options = ["pipeline=near_dedup", "executor.workers=2", "executor.task_mb=8", "output.report=false"]
    planned = thresher(
        "curate", "--plan", f"input.paths=[{tmp_path / 'in'}]", f"output.dir={tmp_path / 'out'}", *options
    )
    estimate = {line.split(":")[0]: line for line in planned.stdout.splitlines()}
    worker_mb = float(estimate["memory per worker"].split("~")[1].split(" MB")[0])
    driver_mb = float(estimate["memory on the driver"].split("~")[1].split(" MB")[0])

    process = start_curate(tmp_path / "in", tmp_path / "out", options)
    peaks = PeakMemory(process.pid)
    assert process.wait(timeout=600) == 0
    peaks.stop()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["dropped"] == 6000
    assert peaks.main / 1e6 <= 1.5 * driver_mb, (peaks.main / 1e6, driver_mb)
    assert 0 < peaks.child / 1e6 <= 1.5 * worker_mb, (peaks.child / 1e6, worker_mb)


def test_plan_prints_tasks_partitions_and_memory_and_runs_nothing(tmp_path):
    inputs = scored_corpus(tmp_path / "in", count=40)
    out = tmp_path / "out"
    paths = ",".join(map(str, inputs))
    result = thresher("curate", "--plan", f"input.paths=[{paths}]", f"output.dir={out}", *GLOBAL_STAGES)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("plan: ") and "task(s) in 5 pass(es), 1 partition(s)" in lines[0]
    assert any(line.startswith("memory per worker: ~") for line in lines)
    assert any(line.startswith("memory on the driver: ~") for line in lines)
    assert not out.exists()


def test_a_run_that_does_not_fit_the_machine_stops_before_reading(tmp_path):
    inputs = scored_corpus(tmp_path / "in", count=40)
    huge = "+stages.exact_dedup.resources={memory_gb: 100000}"
    with pytest.raises(ConfigError, match=r"^executor: the run's memory estimate .* does not fit this machine"):
        curate(inputs, tmp_path / "out", "pipeline=near_dedup", huge)
    assert not (tmp_path / "out").exists()
    result = thresher(
        "curate",
        "pipeline=near_dedup",
        f"input.paths=[{inputs[0]}]",
        f"output.dir={tmp_path / 'out'}",
        huge,
        check=False,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    curate(inputs, tmp_path / "anyway", "pipeline=near_dedup", "executor.memory_check=false", huge)


@pytest.mark.slow  # a local Ray and a pool of actors per pass and per partition step: ~50 s on 2 cores
def test_partitions_on_ray_equal_local(tmp_path):
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    inputs = scored_corpus(tmp_path / "in", count=120)
    # near_dedup alone: the Ray executor starts a pool of actors per pass and per partition step
    options = (*GLOBAL_STAGES[:2], "executor.task_mb=0.02", "executor.partitions=3", "executor.workers=2")
    local = curate(inputs, tmp_path / "local", *options)
    # a Ray of its own (address="local": never another session's cluster), which the executor reuses
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        remote = curate(inputs, tmp_path / "ray", *options, "executor=ray")
    finally:
        ray.shutdown()
    assert outputs(tmp_path / "local") == outputs(tmp_path / "ray")
    assert [(s.name, s.dropped) for s in local.stages] == [(s.name, s.dropped) for s in remote.stages]
