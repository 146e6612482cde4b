"""Shared test helpers: run recipes through the real Hydra config tree and the real engine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
if not SHARED_DATA.is_dir():  # CI checks out the repository next to ../shared as well
    SHARED_DATA = Path(os.environ.get("THRESHER_SHARED_DATA", "/work/shared/data"))


def compose(overrides: list[str]):
    """The resolved curate config for `overrides`, exactly as `thresher curate` composes it."""
    from curate.api import compose as compose_config

    return compose_config(overrides)


def curate(inputs, out, *overrides: str) -> dict:
    """Run a recipe in-process; return the manifest (its accounting checked: `assert_balanced`)."""
    from curate.api import run_recipe

    manifest = run_recipe(inputs, out, *overrides)
    assert_balanced(manifest, out)
    return manifest


def assert_balanced(manifest, folder: str | Path) -> None:
    """The accounting every run must keep, recomputed from the manifest and the files it lists (not
    from the engine's own check): each stage takes what the one before gave, rows in + generated =
    rows out + dropped + consumed, and the rejects and quarantine files hold every dropped and
    quarantined row."""
    from curate.arrow_io import read_table
    from curate.fs import join

    given = manifest.rows_in - manifest.quarantined
    for stage in manifest.stages:
        dropped = sum(stage.dropped.values())
        assert stage.rows_in == given, f"{stage.name}: took {stage.rows_in}, given {given}"
        assert stage.rows_in + stage.generated == stage.rows_out + dropped + stage.consumed, stage
        rejects = [r for r in manifest.rejects if r.stage == stage.name]
        assert sum(read_table(join(folder, r.path)).num_rows for r in rejects) == dropped, stage.name
        given = stage.rows_out
    assert given == manifest.rows == sum(s.rows for s in manifest.shards)
    assert sum(read_table(join(folder, q.path)).num_rows for q in manifest.quarantine) == manifest.quarantined
    generated, consumed = sum(s.generated for s in manifest.stages), sum(s.consumed for s in manifest.stages)
    dropped = sum(sum(s.dropped.values()) for s in manifest.stages)
    assert (manifest.generated, manifest.consumed, manifest.dropped) == (generated, consumed, dropped)
    assert manifest.rows_in == manifest.rows + dropped + manifest.quarantined - generated + consumed


def thresher(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `thresher` command line in a subprocess."""
    result = subprocess.run(
        [sys.executable, "-m", "curate.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"thresher {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def start_curate(inputs, out: Path, options: list[str], **popen) -> subprocess.Popen:
    """Start `thresher curate` on `inputs` (a path or a list of paths) in a subprocess of its own
    session (its workers included: `os.killpg` reaches them all); output discarded unless given."""
    paths = ",".join(map(str, inputs)) if isinstance(inputs, list) else str(inputs)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "curate",
            f"input.paths=[{paths}]",
            f"output.dir={out}",
            "executor.progress=false",
            *options,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
        **{"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen},
    )


def kill_when(process: subprocess.Popen, ready, timeout: float = 300, poll: float = 0.002) -> None:
    """SIGKILL `process` and its workers as soon as `ready()` is true (or after `timeout` seconds)."""
    import signal
    import time

    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None and not ready():
        time.sleep(poll)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def kill_after_tasks(
    inputs: Path, out: Path, options: list[str], pass_index: int, tasks: int, timeout: float = 300
) -> int:
    """Start `thresher curate` on `inputs` in a subprocess, SIGKILL it (and its workers) once `tasks`
    tasks of pass `pass_index` are done; return how many were done. Fails if the run finished first."""
    markers = Path(out) / "_work" / f"pass-{pass_index}"
    process = start_curate(inputs, out, options)
    kill_when(process, lambda: len(list(markers.glob("task-*.json"))) >= tasks, timeout)
    assert not (Path(out) / "manifest.json").exists(), "the run finished before it could be killed"
    return len(list(markers.glob("task-*.json")))


def kill_at_checkpoint(inputs: Path, out: Path, options: list[str], checkpoint: Path, lines: int) -> int:
    """Start `thresher curate` on `inputs` in a subprocess, SIGKILL it once `checkpoint` (a generating
    stage's JSON-lines checkpoint) holds `lines` lines; return how many it holds then."""

    def written() -> int:
        return checkpoint.read_bytes().count(b"\n") if checkpoint.is_file() else 0

    kill_when(start_curate(inputs, out, options), lambda: written() >= lines, poll=0.02)
    assert not (Path(out) / "manifest.json").exists(), "the run finished before it could be killed"
    return written()


def session_processes(session: int) -> list[int]:
    """Live processes (not zombies) of a session: a command started with start_new_session and
    everything it spawned."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        state, _, _, sid = text[text.rindex(")") + 2 :].split()[:4]
        if int(sid) == session and state != "Z":
            found.append(int(stat.parent.name))
    return found


def wait_until_gone(session: int, timeout: float = 30.0) -> list[int]:
    """Wait until no process of `session` is alive; return the survivors if some are left."""
    deadline = time.monotonic() + timeout
    while (alive := session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def read_dataset(folder: str | Path, shards_key: str = "shards") -> pa.Table:
    """All rows of a dataset folder (or its rejects / quarantine) as one table, via the manifest.

    Rejects of different stages carry different columns (those known at that stage): missing
    columns are filled with nulls."""
    from curate.arrow_io import read_table
    from curate.fs import join
    from curate.manifest import Manifest

    manifest = Manifest.read(folder)
    schema = manifest.data_schema(folder) if shards_key == "shards" else None  # the data may be JSON lines
    tables = [read_table(join(folder, s.path), schema=schema) for s in getattr(manifest, shards_key)]
    return pa.concat_tables(tables, promote_options="default") if tables else None


def write_jsonl(path: Path, rows: list, raw_lines: list[bytes] | None = None) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows) + b"".join(raw_lines or [])
    path.write_bytes(data)
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    """The tokenizer and the datasets the trainer and alignment tests read (tests/train_fixtures.py),
    built by the curate app's recipes once per test process."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    from tests.train_fixtures import build_inputs

    return build_inputs(tmp_path_factory.getbasetemp() / "train_inputs", SHARED_DATA)


@pytest.fixture
def s3(tmp_path):
    """A local S3-compatible server (moto) with a fresh bucket; yields the bucket's URL."""
    import uuid

    from tests.s3_server import moto_server, s3_filesystem

    with moto_server(tmp_path / "thresher-cache"):
        bucket = f"thresher-{uuid.uuid4().hex[:8]}"
        s3_filesystem().mkdir(bucket)
        yield f"s3://{bucket}"
