"""The engine's promises: manifests that match the shards, determinism across worker counts,
resume after a kill with the same result, one run per output folder, and shards that datasets,
polars and pyarrow all open."""

from __future__ import annotations

import fcntl
import hashlib
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from conftest import curate, kill_after_tasks, read_dataset, thresher, write_jsonl

from curate.errors import OutputError
from curate.manifest import Manifest


def corpus(folder: Path, files: int = 40, lines: int = 60) -> Path:
    """Many small jsonl files with a few bad rows and a few short documents in each."""
    for f in range(files):
        rows = [
            {"text": f"file {f} doc {i}: " + "lorem ipsum dolor sit amet consectetur " * (1 + (i * 7 + f) % 15)}
            for i in range(lines)
        ]
        rows[3]["text"] = "short"
        write_jsonl(folder / f"part{f:03d}.jsonl", rows, [b'{"oops": 1}\n'])
    return folder


def shard_digests(folder: Path) -> dict[str, list[str]]:
    manifest = Manifest.read(folder)
    return {key: [s.sha256 for s in getattr(manifest, key)] for key in ("shards", "rejects", "quarantine")}


def test_manifest_describes_the_shards(tmp_path):
    manifest = curate(corpus(tmp_path / "in"), tmp_path / "out", "output.shard_mb=0.05", "executor.task_mb=0.2")
    assert manifest.kind == "documents"
    assert [f["name"] for f in manifest.schema] == ["id", "text", "source", "meta", "n_chars"]
    assert len(manifest.shards) > manifest.tasks > 1  # size-based rollover within tasks
    for shard in manifest.shards + manifest.rejects + manifest.quarantine:
        data = (tmp_path / "out" / shard.path).read_bytes()
        assert len(data) == shard.bytes and hashlib.sha256(data).hexdigest() == shard.sha256
    assert sum(s.rows for s in manifest.shards) == manifest.rows == 40 * 59
    assert manifest.quarantined == 40 and manifest.dropped == 40
    assert manifest.stages[1].dropped == {"too_short": 40}
    assert manifest.config["stages"]["length_filter"]["min_chars"] == 50
    assert manifest.timings.seconds > 0 and manifest.inputs.files == 40
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
    total = Manifest.read(tmp_path / "whole").tasks
    assert 5 <= done_before < total

    manifest = curate(tmp_path / "in", out, *options)  # rerun: skips finished tasks, redoes the rest
    assert shard_digests(out) == shard_digests(tmp_path / "whole")
    assert manifest.rows == Manifest.read(tmp_path / "whole").rows
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
    assert again.created == first.created  # nothing redone
    with pytest.raises(OutputError, match="holds a finished run of a different config"):
        curate(path, tmp_path / "out", "stages.length_filter.min_chars=10")
    third = curate(path, tmp_path / "out", "stages.length_filter.min_chars=10", "output.overwrite=true")
    assert third.fingerprint != first.fingerprint
    # A folder written by an earlier version, before an option existed: said so, with the option.
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    del manifest["config"]["executor"]["partitions"]
    manifest["fingerprint"] = "0" * 16
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        OutputError,
        match=r"written by an earlier version of Thresher, before these options existed \(executor.partitions: '<unset>' -> 0\)",
    ):
        curate(path, tmp_path / "out", "stages.length_filter.min_chars=10")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="is not empty and holds no Thresher run"):
        curate(path, tmp_path / "other")


def test_everything_dropped_still_gives_an_openable_dataset(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "tiny"}])
    manifest = curate(path, tmp_path / "out")
    assert manifest.rows == 0 and len(manifest.shards) == 1
    assert read_dataset(tmp_path / "out").num_rows == 0


def test_shards_open_with_datasets_polars_and_pyarrow(tmp_path):
    manifest = curate(corpus(tmp_path / "in", files=6), tmp_path / "out", "output.shard_mb=0.02")
    paths = [str(tmp_path / "out" / s.path) for s in manifest.shards]
    assert len(paths) > 1
    from datasets import Dataset, concatenate_datasets, load_dataset

    from_file = concatenate_datasets([Dataset.from_file(p) for p in paths])
    loaded = load_dataset("arrow", data_files=paths, split="train")
    frame = pl.concat([pl.read_ipc_stream(p) for p in paths])
    table = pa.concat_tables([pa.ipc.open_stream(p).read_all() for p in paths])
    assert len(from_file) == len(loaded) == frame.height == table.num_rows == manifest.rows
    assert from_file[0]["text"] == loaded[0]["text"] == frame["text"][0] == table.column("text")[0].as_py()
    assert from_file.features["n_chars"].dtype == "int64"


def test_a_failing_resolve_is_a_bug_with_its_traceback_logged(tmp_path):
    """A global stage failing in resolve (on the driver) is not the user's error: the exception
    propagates as it is, and the run's log keeps its traceback."""
    from conftest import compose

    from curate.engine import run

    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "some text that is long enough to keep around here"}])
    cfg = compose(
        [
            f"input.paths=['{path}']",
            f"output.dir='{tmp_path / 'out'}'",
            "executor.progress=false",
            "+stages.broken={_target_: tests.failing_stages.FailingResolve}",
        ]
    )
    with pytest.raises(ValueError, match="resolve broke on purpose"):
        run(cfg)
    log = (tmp_path / "out" / "logs" / "run.log").read_text()
    assert "Traceback" in log and "resolve broke on purpose" in log


def test_a_worker_failure_shows_its_traceback_and_exits_1(tmp_path):
    """A bug in a worker is not reported as a one-line user error: the command line shows the
    worker's traceback, exits 1, and the task's log keeps it; a user error stays one line, exit 2."""
    path = write_jsonl(
        tmp_path / "a.jsonl", [{"text": "some text that is long enough to keep around here, and then some more"}]
    )
    out = tmp_path / "out"
    result = thresher(
        "curate",
        f"input.paths=[{path}]",
        f"output.dir={out}",
        "executor.progress=false",
        "executor.workers=1",
        "+stages.broken={_target_: tests.failing_stages.FailingRow}",
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError: a bug in a stage" in result.stderr
    assert "pass 0 task 0" in result.stderr and "logs" in result.stderr
    assert "ZeroDivisionError" in (out / "logs" / "pass-0-task-00000.log").read_text()
    user = thresher(
        "curate", f"input.paths=[{tmp_path / 'missing.jsonl'}]", f"output.dir={tmp_path / 'b'}", check=False
    )
    assert user.returncode == 2 and len(user.stderr.strip().splitlines()) == 1


def test_a_folder_of_another_config_names_what_differs(tmp_path):
    """A finished run of another config is refused with the keys that differ; an unfinished run
    that finished no task is replaced without output.overwrite."""
    path = write_jsonl(
        tmp_path / "a.jsonl", [{"text": "some text that is long enough to keep around here, and then some more"}]
    )
    curate(path, tmp_path / "out")
    with pytest.raises(OutputError, match=r"stages\.length_filter\.min_chars: 50 -> 10"):
        curate(path, tmp_path / "out", "stages.length_filter.min_chars=10")
    (tmp_path / "fresh" / "_work").mkdir(parents=True)  # an earlier attempt that never finished a task
    (tmp_path / "fresh" / "_work" / "run.json").write_text(json.dumps({"fingerprint": "0", "config": {}}))
    assert curate(path, tmp_path / "fresh").rows == 1


def test_manifest_is_typed_and_versioned(tmp_path):
    """The manifest is read through one typed model; another format version is one clear line."""
    from curate.manifest import MANIFEST_VERSION, Manifest, ManifestError

    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "some text that is long enough to keep around here"}])
    manifest = curate(path, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert data["manifest_version"] == MANIFEST_VERSION and data["stages"][0]["in"] == 1
    assert Manifest.read(tmp_path / "out") == manifest
    data["manifest_version"] = MANIFEST_VERSION + 1
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=f"manifest format version {MANIFEST_VERSION + 1}; this Thresher"):
        Manifest.read(tmp_path / "out")
    del data["kind"]
    data["manifest_version"] = MANIFEST_VERSION
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="field 'kind' is missing"):
        Manifest.read(tmp_path / "out")


def test_quarantine_survives_later_passes(tmp_path):
    """A recipe with a global stage reads its input in pass 0 only: the quarantine written there stays."""
    path = write_jsonl(
        tmp_path / "a.jsonl", [{"text": f"document {i} " + "words here " * 10} for i in range(5)], [b'{"broken json\n']
    )
    manifest = curate(path, tmp_path / "out", "pipeline=near_dedup")
    assert manifest.quarantined == 1 and len(manifest.quarantine) == 1
    shard = manifest.quarantine[0]
    data = (tmp_path / "out" / shard.path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == shard.sha256
    assert read_dataset(tmp_path / "out", "quarantine").column("position").to_pylist() == [6]


def test_a_run_killed_while_writing_its_first_record_is_replaced(tmp_path):
    """A kill between creating `_work/` and renaming `run.json` into place leaves only a temporary
    file: the folder holds no run, and the rerun starts afresh instead of refusing it."""
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "some text that is long enough to keep around here"}])
    (tmp_path / "out" / "_work").mkdir(parents=True)
    (tmp_path / "out" / "_work" / "run.json.tmp").write_text('{"fingerprint": "abc", "con')
    (tmp_path / "out" / ".lock").write_text("pid 1")
    assert curate(path, tmp_path / "out").rows_in == 1
    assert not list((tmp_path / "out").rglob("*.tmp"))
