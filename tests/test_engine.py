"""The engine's promises: manifests that match the shards, determinism across worker counts,
resume after a kill with the same result, one run per output folder, and shards that datasets,
polars and pyarrow all open."""

from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from conftest import curate, kill_after_tasks, read_dataset, write_jsonl
from curate.errors import OutputError, ThresherError
from curate.stages.base import GlobalStage


def corpus(folder: Path, files: int = 40, lines: int = 60) -> Path:
    """Many small jsonl files with a few bad rows and a few short documents in each."""
    for f in range(files):
        rows = [{"text": f"file {f} doc {i}: " + "lorem ipsum dolor sit amet consectetur " * (1 + (i * 7 + f) % 15)}
                for i in range(lines)]
        rows[3]["text"] = "short"
        write_jsonl(folder / f"part{f:03d}.jsonl", rows, [b'{"oops": 1}\n'])
    return folder


def shard_digests(folder: Path) -> dict[str, list[str]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return {key: [s["sha256"] for s in manifest[key]] for key in ("shards", "rejects", "quarantine")}


def test_manifest_describes_the_shards(tmp_path):
    manifest = curate(corpus(tmp_path / "in"), tmp_path / "out", "output.shard_mb=0.05", "executor.task_mb=0.2")
    assert manifest["kind"] == "documents"
    assert [f["name"] for f in manifest["schema"]] == ["id", "text", "source", "meta", "n_chars"]
    assert len(manifest["shards"]) > manifest["tasks"] > 1  # size-based rollover within tasks
    for shard in manifest["shards"] + manifest["rejects"] + manifest["quarantine"]:
        data = (tmp_path / "out" / shard["path"]).read_bytes()
        assert len(data) == shard["bytes"] and hashlib.sha256(data).hexdigest() == shard["sha256"]
    assert sum(s["rows"] for s in manifest["shards"]) == manifest["rows"] == 40 * 59
    assert manifest["quarantined"] == 40 and manifest["dropped"] == 40
    assert manifest["stages"][1]["dropped"] == {"too_short": 40}
    assert manifest["config"]["stages"]["length_filter"]["min_chars"] == 50
    assert manifest["timings"]["seconds"] > 0 and len(manifest["inputs"]) == 40
    assert (tmp_path / "out" / "report.html").is_file() and not (tmp_path / "out" / "_work").exists()


def test_same_output_with_one_or_two_workers(tmp_path):
    corpus(tmp_path / "in")
    options = ("executor.task_mb=0.1", "output.shard_mb=0.05")
    curate(tmp_path / "in", tmp_path / "w1", "executor.workers=1", *options)
    curate(tmp_path / "in", tmp_path / "w2", "executor.workers=2", *options)
    assert shard_digests(tmp_path / "w1") == shard_digests(tmp_path / "w2")


def test_killed_run_resumes_to_the_same_result(tmp_path):
    corpus(tmp_path / "in", files=150, lines=150)
    options = ["executor.task_mb=0.1", "executor.workers=1", "output.shard_mb=0.5"]
    curate(tmp_path / "in", tmp_path / "whole", *options)

    out = tmp_path / "killed"
    done_before = kill_after_tasks(tmp_path / "in", out, options, pass_index=0, tasks=5, timeout=60)
    total = json.loads((tmp_path / "whole" / "manifest.json").read_text())["tasks"]
    assert 5 <= done_before < total

    manifest = curate(tmp_path / "in", out, *options)  # rerun: skips finished tasks, redoes the rest
    assert shard_digests(out) == shard_digests(tmp_path / "whole")
    assert manifest["rows"] == json.loads((tmp_path / "whole" / "manifest.json").read_text())["rows"]
    assert not list(out.rglob("*.tmp"))


def test_second_run_into_the_same_folder_refuses(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "some text that is long enough to keep around here"}])
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 12345, started earlier")
        held.flush()
        with pytest.raises(OutputError, match="is in use by another run"):
            curate(path, out)
    curate(path, out)  # lock released: runs


def test_rerun_of_a_finished_run_and_other_configs(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "some text that is long enough to keep around here"}])
    first = curate(path, tmp_path / "out")
    again = curate(path, tmp_path / "out")
    assert again["created"] == first["created"]  # nothing redone
    with pytest.raises(OutputError, match="holds a finished run of a different config"):
        curate(path, tmp_path / "out", "stages.length_filter.min_chars=10")
    third = curate(path, tmp_path / "out", "stages.length_filter.min_chars=10", "output.overwrite=true")
    assert third["fingerprint"] != first["fingerprint"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="is not empty and holds no Thresher run"):
        curate(path, tmp_path / "other")


def test_everything_dropped_still_gives_an_openable_dataset(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "tiny"}])
    manifest = curate(path, tmp_path / "out")
    assert manifest["rows"] == 0 and len(manifest["shards"]) == 1
    assert read_dataset(tmp_path / "out").num_rows == 0


def test_shards_open_with_datasets_polars_and_pyarrow(tmp_path):
    manifest = curate(corpus(tmp_path / "in", files=6), tmp_path / "out", "output.shard_mb=0.02")
    paths = [str(tmp_path / "out" / s["path"]) for s in manifest["shards"]]
    assert len(paths) > 1
    from datasets import Dataset, concatenate_datasets, load_dataset

    from_file = concatenate_datasets([Dataset.from_file(p) for p in paths])
    loaded = load_dataset("arrow", data_files=paths, split="train")
    frame = pl.concat([pl.read_ipc_stream(p) for p in paths])
    table = pa.concat_tables([pa.ipc.open_stream(p).read_all() for p in paths])
    assert len(from_file) == len(loaded) == frame.height == table.num_rows == manifest["rows"]
    assert from_file[0]["text"] == loaded[0]["text"] == frame["text"][0] == table.column("text")[0].as_py()
    assert from_file.features["n_chars"].dtype == "int64"



@dataclass
class FailingResolve(GlobalStage):
    """A global stage whose resolve step fails, to test how the engine reports it (defaults: none)."""

    def scan(self, batch, positions):
        return pa.record_batch({"pos": positions})

    def resolve(self, ctx):
        raise ValueError("resolve broke on purpose")


def test_a_failing_resolve_is_one_line_with_the_traceback_logged(tmp_path):
    """A global stage failing in resolve (on the driver) is reported like a worker failure: one line."""
    from conftest import compose
    from curate.engine import run

    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "some text that is long enough to keep around here"}])
    cfg = compose([f"input.paths=['{path}']", f"output.dir='{tmp_path / 'out'}'", "executor.progress=false",
                   f"+stages.broken={{_target_: {__name__}.FailingResolve}}"])
    with pytest.raises(ThresherError, match=r"stage broken failed while resolving: ValueError: resolve broke on "
                                             r"purpose  \(traceback in .*error.log; rerun to resume\)"):
        run(cfg)
    assert "Traceback" in (tmp_path / "out" / "_work" / "error.log").read_text()


def test_quarantine_survives_later_passes(tmp_path):
    """A recipe with a global stage reads its input in pass 0 only: the quarantine written there stays."""
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": f"document {i} " + "words here " * 10} for i in range(5)],
                       [b'{"broken json\n'])
    manifest = curate(path, tmp_path / "out", "pipeline=near_dedup")
    assert manifest["quarantined"] == 1 and len(manifest["quarantine"]) == 1
    shard = manifest["quarantine"][0]
    data = (tmp_path / "out" / shard["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == shard["sha256"]
    assert read_dataset(tmp_path / "out", "quarantine").column("position").to_pylist() == [6]
