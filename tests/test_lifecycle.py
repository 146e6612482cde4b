"""The stage life cycle: the engine calls setup() once per process before a stage's first batch and
teardown() when the process is done with it, on the local pool and on Ray; declared resources are
recorded, overridable per recipe, and Ray refuses a pass whose workers cannot fit."""

from __future__ import annotations

import pytest
from conftest import curate, write_jsonl

from curate.errors import ConfigError

STAGE = "+stages.recorder={_target_: tests.lifecycle_stages.Recorder, folder: '%s'}"


def corpus(folder):
    for i in range(4):
        write_jsonl(folder / f"part-{i}.jsonl", [{"text": f"document {i}-{j} " + "words here " * 8} for j in range(30)])
    return folder


def setup_and_teardown(folder):
    setups = {p.name.split("-")[1] for p in folder.glob("setup-*")}
    teardowns = {p.name.split("-")[1] for p in folder.glob("teardown-*")}
    return setups, teardowns


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_every_process_that_set_a_stage_up_tears_it_down(tmp_path, executor):
    if executor == "ray":
        pytest.importorskip("ray")
    records = tmp_path / "records"
    records.mkdir()
    manifest = curate(
        corpus(tmp_path / "in"),
        tmp_path / "out",
        f"executor={executor}",
        "executor.workers=2",
        "executor.task_mb=0.001",
        STAGE % records,
    )
    setups, teardowns = setup_and_teardown(records)
    assert manifest.tasks == 4 and setups and setups == teardowns
    stage = manifest.stage("recorder")
    assert stage.stats["batches"] >= 4 and stage.details == {"recorder_pid_seen": True}
    assert stage.resources == {"cpus": 1.0, "memory_gb": 0.1, "gpus": 0.0}


def test_resources_are_overridable_and_checked(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    manifest = curate(
        corpus(tmp_path / "in"), tmp_path / "out", STAGE % records, "+stages.recorder.resources={memory_gb: 2}"
    )
    assert manifest.stage("recorder").resources == {"cpus": 1.0, "memory_gb": 2.0, "gpus": 0.0}
    with pytest.raises(ConfigError, match=r"stages.recorder.resources: expected a mapping of cpus, memory_gb, gpus"):
        curate(corpus(tmp_path / "in"), tmp_path / "bad", STAGE % records, "+stages.recorder.resources={disks: 2}")


def test_ray_refuses_a_pass_whose_workers_cannot_fit(tmp_path):
    pytest.importorskip("ray")
    records = tmp_path / "records"
    records.mkdir()
    with pytest.raises(ConfigError, match=r"needs Resources\(cpus=1.0, memory_gb=0.1, gpus=1.0\); the Ray cluster has"):
        curate(
            corpus(tmp_path / "in"),
            tmp_path / "out",
            "executor=ray",
            "executor.workers=2",
            STAGE % records,
            "+stages.recorder.resources={gpus: 1}",
        )
