"""executor=ray runs the same tasks on Ray actors: its output equals executor=local, byte for byte."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import curate

from curate.errors import InputError
from curate.manifest import Manifest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (the executor reuses a running Ray and leaves it running)."""
    import os

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def digests(folder) -> dict:
    manifest = Manifest.read(folder)
    return {key: [s.sha256 for s in getattr(manifest, key)] for key in ("shards", "rejects", "quarantine")}


def test_ray_equals_local_on_real_data(tmp_path, shared_data, local_ray):
    """The `code` recipe (quality filter, exact and MinHash dedup: row and global stages, three passes)
    on the real vendored-code archives, local and on Ray."""
    inputs = sorted((shared_data / "code_near_duplicates").glob("*.tar.gz"))
    options = ("pipeline=code", "executor.task_mb=1")
    local = curate(inputs, tmp_path / "local", "executor=local", "executor.workers=2", *options)
    remote = curate(inputs, tmp_path / "ray", "executor=ray", "executor.workers=2", *options)
    assert local.tasks > 1 and local.rows > 300 and local.quarantined > 0
    dropped = {s.name: s.dropped for s in local.stages}
    assert dropped["code_quality"] and dropped["exact_dedup"] and dropped["minhash_dedup"]
    assert digests(tmp_path / "local") == digests(tmp_path / "ray")
    assert remote.stages == [dataclasses.replace(s, seconds=r.seconds) for s, r in zip(local.stages, remote.stages)]


def test_ray_reports_bad_input_as_one_line(tmp_path, local_ray):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine text that is long enough to keep"}\n{"oops": 1}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'text': missing"):
        curate(tmp_path / "bad.jsonl", tmp_path / "out", "executor=ray", "executor.workers=1", "input.on_error=fail")
