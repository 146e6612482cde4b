"""Ray without a shared filesystem: a simulated cluster of three nodes (`ray.cluster_utils.Cluster`)
runs a recipe whose inputs and output are on object storage (the local S3 server); each node writes
through a staging folder of its own and reads what the others wrote from the store. The output
equals a local run's, byte for byte."""

from __future__ import annotations

import re

import pytest

from curate.fs import staging_folder
from curate.manifest import Manifest
from tests.conftest import curate
from tests.s3_server import s3_filesystem
from tests.test_object_storage import local_corpus, pieces, upload

ray = pytest.importorskip("ray")


@pytest.fixture
def three_nodes():
    import os

    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, configure_logging=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.slow
def test_three_nodes_without_a_shared_filesystem_equal_a_local_run(tmp_path, s3, shared_data, three_nodes):
    corpus = local_corpus(tmp_path / "in", shared_data)
    pieces(corpus / "c4.jsonl.gz", 6)
    upload(corpus, f"{s3}/in")
    options = ["pipeline=near_dedup", "executor.task_mb=0.05", "output.shard_mb=0.2", "executor.partitions=3"]
    local = curate([f"{corpus}/c4-*.jsonl", f"{corpus}/wiki.parquet"], tmp_path / "local", *options)

    out = f"{s3}/cluster"
    remote = curate(
        [f"{s3}/in/c4-*.jsonl", f"{s3}/in/wiki.parquet"], out, *options, "executor=ray", "executor.workers=3"
    )

    assert local.tasks > 6 and remote.stage("minhash_dedup").rows_in == local.stage("minhash_dedup").rows_in
    for key in ("shards", "rejects", "quarantine"):
        assert [s.sha256 for s in getattr(remote, key)] == [s.sha256 for s in getattr(local, key)], key
    assert [(s.name, s.dropped) for s in remote.stages] == [(s.name, s.dropped) for s in local.stages]
    stored = s3_filesystem().find(out.removeprefix("s3://"))
    assert sum("/logs/pass-" in path for path in stored) == 3 * remote.tasks  # every task's log, from every node
    logs = [s3_filesystem().cat_file(path).decode() for path in stored if "/logs/pass-" in path]
    nodes = {re.search(r"/(node-[0-9a-f]+)-\d+", log)[1] for log in logs}  # type: ignore[index]
    assert len(nodes) == 3  # each node wrote through its own staging folder
    assert not staging_folder(out).exists() or not any(staging_folder(out).iterdir())  # all removed when done
    assert Manifest.read(out).rows == local.rows
