"""Object storage: reading inputs from S3, writing a dataset to S3 (atomic, resumable, locked by a
lease), `thresher inspect s3://...`, a dataset on S3 as input, credentials written nowhere. Against a
local S3-compatible server (moto, `tests/s3_server.py`) through s3fs, as a real bucket would be."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.errors import ConfigError, OutputError
from curate.manifest import Manifest
from tests.conftest import curate, kill_when, read_dataset, start_curate, thresher
from tests.s3_server import SECRET, s3_filesystem


def local_corpus(folder: Path, shared: Path) -> Path:
    """A jsonl.gz of real web text, with near-duplicates of its first ten documents (a word changed),
    and a Parquet file of real encyclopaedia lines (several row groups)."""
    import gzip

    import pyarrow as pa

    folder.mkdir(parents=True)
    lines = gzip.decompress((shared / "c4_sample" / "c4_demo.jsonl.gz").read_bytes()).splitlines()
    copies = [json.loads(line) for line in lines[:10]]
    for copy in copies:
        copy["text"] = copy["text"].replace(" the ", " a ", 1)
    near = [json.dumps(copy).encode() for copy in copies]
    (folder / "c4.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines + near) + b"\n", mtime=0))
    lines = gzip.decompress((shared / "wikipedia_sample" / "wiki_demo.txt.gz").read_bytes()).decode().splitlines()
    texts = [line for line in lines if len(line) > 200][:400]
    table = pa.table({"id": [f"wiki-{i}" for i in range(len(texts))], "text": texts})
    pq.write_table(table, folder / "wiki.parquet", row_group_size=50)
    return folder


def pieces(path: Path, count: int) -> None:
    """Cut a jsonl.gz into `count` plain jsonl files (`<stem>-<i>.jsonl`) beside it, for more tasks."""
    import gzip

    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    stem = path.name.split(".")[0]
    for index in range(count):
        (path.parent / f"{stem}-{index}.jsonl").write_bytes(b"".join(lines[index::count]))


def upload(folder: Path, url: str) -> None:
    """The files of `folder` (or one file) under `url`."""
    store = s3_filesystem()
    for path in sorted(folder.iterdir()) if folder.is_dir() else [folder]:
        store.put_file(str(path), f"{url.removeprefix('s3://')}/{path.name}")


def objects(url: str) -> dict[str, bytes]:
    """Every object under `url`, by its path relative to `url`."""
    store = s3_filesystem()
    root = url.removeprefix("s3://")
    return {path[len(root) + 1 :]: store.cat_file(path) for path in store.find(root)}


def shard_bytes(manifest: Manifest, read) -> list[bytes]:
    return [read(shard.path) for shard in manifest.shards]


# Three partitions: each partition of the dedup resolve fetches the shuffle files it reads and
# publishes what it writes (the output is the same for any number of partitions).
RECIPE = [
    "pipeline=near_dedup",
    "executor.workers=2",
    "executor.task_mb=0.3",
    "output.shard_mb=0.5",
    "executor.partitions=3",
]


def test_a_recipe_reads_from_and_writes_to_s3_as_it_does_locally(tmp_path, s3, shared_data):
    corpus = local_corpus(tmp_path / "in", shared_data)
    upload(corpus, f"{s3}/in")
    local = curate([f"{corpus}/*.jsonl.gz", f"{corpus}/wiki.parquet"], tmp_path / "local", *RECIPE)

    remote = curate([f"{s3}/in/*.jsonl.gz", f"{s3}/in/wiki.parquet"], f"{s3}/out", *RECIPE)

    stored = objects(f"{s3}/out")
    assert remote.rows == local.rows and remote.stage("minhash_dedup").dropped == local.stage("minhash_dedup").dropped
    assert remote.fingerprint != local.fingerprint  # other inputs (their URLs)
    assert shard_bytes(remote, stored.__getitem__) == shard_bytes(
        local, lambda p: (tmp_path / "local" / p).read_bytes()
    )
    assert remote.inputs.files == 2 and remote.inputs.rows == local.inputs.rows
    assert {"manifest.json", "report.html", "inputs.arrow", "logs/run.log"} <= set(stored)
    assert not any(name.startswith("_work/") or name.endswith(".tmp") for name in stored)  # removed when done
    assert ".lock" not in stored  # the lease is released
    for name, data in stored.items():  # the credentials reached s3fs through the environment only
        assert SECRET.encode() not in data, name
    assert read_dataset(tmp_path / "local").equals(read_dataset(f"{s3}/out"))
    assert remote.stage("minhash_dedup").dropped["near_duplicate"] >= 5
    artifacts = {p.relative_to(tmp_path / "local").as_posix() for p in (tmp_path / "local" / "stages").rglob("*.arrow")}
    assert any("/samples/" in name for name in artifacts)  # written by the workers as they apply
    assert {name: stored[name] for name in artifacts} == {n: (tmp_path / "local" / n).read_bytes() for n in artifacts}

    again = curate([f"{s3}/in/*.jsonl.gz", f"{s3}/in/wiki.parquet"], f"{s3}/out", *RECIPE)
    assert again.created == remote.created  # complete: nothing redone

    shown = thresher("inspect", f"{s3}/out", "--rows", "1").stdout
    assert f"checksums: all {len(remote.files)} files listed match the manifest" in shown
    assert "kind=documents" in shown

    copied = curate(f"{s3}/out", f"{s3}/copy", "pipeline=clean")  # a dataset on S3 as input
    assert copied.rows_in == remote.rows


def test_a_run_killed_on_s3_resumes_to_the_uninterrupted_result(tmp_path, s3, shared_data):
    corpus = local_corpus(tmp_path / "in", shared_data)
    pieces(corpus / "c4.jsonl.gz", 8)
    upload(corpus, f"{s3}/in")
    inputs = [f"{s3}/in/c4-*.jsonl", f"{s3}/in/wiki.parquet"]
    options = [
        "pipeline=near_dedup",
        "executor.workers=1",
        "executor.task_mb=0.05",
        "output.shard_mb=0.2",
        "executor.partitions=2",
    ]
    whole = curate(inputs, f"{s3}/whole", *options)

    store = s3_filesystem()
    markers = f"{s3.removeprefix('s3://')}/killed/_work/pass-0"

    def finished_tasks() -> int:
        store.invalidate_cache()
        return len(store.glob(f"{markers}/task-*.json"))

    process = start_curate(inputs, f"{s3}/killed", options)  # type: ignore[arg-type]
    kill_when(process, lambda: finished_tasks() >= 2, timeout=120, poll=0.05)
    done = finished_tasks()
    assert 2 <= done < whole.tasks, "the run finished before it could be killed"
    assert "manifest.json" not in objects(f"{s3}/killed")  # nothing looks finished
    lease = json.loads(objects(f"{s3}/killed")[".lock"])  # left by the killed run: its process is gone
    assert lease["pid"] == process.pid

    resumed = curate(inputs, f"{s3}/killed", *options)
    assert shard_bytes(resumed, objects(f"{s3}/killed").__getitem__) == shard_bytes(
        whole, objects(f"{s3}/whole").__getitem__
    )
    assert resumed.rows == whole.rows and resumed.stage("minhash_dedup").dropped == whole.stage("minhash_dedup").dropped
    run_log = objects(f"{s3}/killed")["logs/run.log"].decode()
    assert f"resume run of {whole.tasks} task(s)" in run_log


def test_an_output_folder_leased_by_a_live_run_is_refused(tmp_path, s3):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"text": "a document long enough to be kept by the clean recipe here"}) + "\n")
    lease = {"holder": "other-host pid 1 x", "host": "other-host", "pid": 1, "renewed": time.time(), "ttl_s": 120}
    s3_filesystem().pipe_file(f"{s3.removeprefix('s3://')}/out/.lock", json.dumps(lease).encode())
    with pytest.raises(OutputError, match="is in use by another run \\(other-host pid 1 x"):
        curate(path, f"{s3}/out")

    lease["renewed"] = time.time() - 600  # its run stopped renewing it: expired, taken over
    s3_filesystem().pipe_file(f"{s3.removeprefix('s3://')}/out/.lock", json.dumps(lease).encode())
    assert curate(path, f"{s3}/out").rows == 1


def test_read_only_and_missing_remote_locations_are_one_line(tmp_path, s3):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"text": "a document"}) + "\n")
    with pytest.raises(ConfigError, match="output.dir: 'https://example.org/out' is read-only"):
        curate(path, "https://example.org/out")
    with pytest.raises(ConfigError, match="hf:// cannot hold an output folder"):
        curate(path, "hf://datasets/someone/somewhere")
    with pytest.raises(ConfigError, match=f"input.paths\\[0\\]: '{s3}/nothing.jsonl' does not exist"):
        curate(f"{s3}/nothing.jsonl", tmp_path / "out")
    with pytest.raises(ConfigError, match="matches no file"):
        curate(f"{s3}/in/*.jsonl", tmp_path / "out")


def test_trainers_read_a_dataset_on_s3_from_a_cache_checked_against_the_manifest(tmp_path, s3, shared_data):
    from curate.errors import InputError
    from curate.fs import cache_root
    from train.data import open_dataset

    corpus = local_corpus(tmp_path / "in", shared_data)
    manifest = curate(str(corpus / "c4.jsonl.gz"), f"{s3}/docs", "pipeline=clean", "output.shard_mb=0.2")
    folder = open_dataset(f"{s3}/docs", ("documents",))
    assert len(folder.shard_paths) == len(manifest.shards) > 1
    assert all(
        path.is_relative_to(cache_root()) and path.name.startswith(s.sha256)
        for path, s in zip(folder.shard_paths, manifest.shards)
    )
    assert folder.lineage()["path"] == f"{s3}/docs"
    assert read_dataset(f"{s3}/docs").num_rows == manifest.rows

    for path in folder.shard_paths:  # a cold cache: the shards are fetched again, and checked
        path.unlink()
    first = manifest.shards[0].path
    store = s3_filesystem()
    data = bytearray(store.cat_file(f"{s3.removeprefix('s3://')}/docs/{first}"))
    data[-100] ^= 0xFF
    store.pipe_file(f"{s3.removeprefix('s3://')}/docs/{first}", bytes(data))
    with pytest.raises(InputError, match=f"{first}: checksum does not match the manifest"):
        open_dataset(f"{s3}/docs", ("documents",))


def upload_tree(folder: Path, url: str) -> None:
    store = s3_filesystem()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            store.put_file(str(path), f"{url.removeprefix('s3://')}/{path.relative_to(folder).as_posix()}")


def test_models_evaluation_sets_and_tokenizers_are_read_from_s3(tmp_path, s3, shared_data):
    """A fastText classifier, a decontamination set and a tokenizer folder on S3 give what their
    local copies give."""
    data = shared_data / "dclm_quality_labels"
    trained = tmp_path / "clf"
    curate(
        [data],
        trained,
        "pipeline=train_quality_classifier",
        "stages.train_quality_classifier.bucket=20000",
        "stages.train_quality_classifier.dim=16",
        "stages.train_quality_classifier.epoch=5",
    )
    upload_tree(trained / "stages" / "train_quality_classifier", f"{s3}/models/clf")
    records = [json.loads(line) for line in gzip_lines(data / "majority_data.jsonl.gz")[:20]]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps({"question": r["text"]}) + "\n" for r in records))
    upload(tmp_path / "eval.jsonl", f"{s3}/eval")

    def scored(model: str, eval_set: str, out: str) -> Manifest:
        return curate(
            [data],
            tmp_path / out,
            "pipeline=clean",
            "~stages.normalize",
            "~stages.length_filter",
            "+stage@stages.decontaminate=decontaminate",
            f"stages.decontaminate.eval_paths=[{eval_set}]",
            "stages.decontaminate.eval_fields=[question]",
            "+stage@stages.quality_classifier=quality_classifier",
            f"stages.quality_classifier.model_path='{model}'",
            "stages.quality_classifier.min_score=0.5",
        )

    local = scored(
        str(trained / "stages" / "train_quality_classifier" / "model.bin"), str(tmp_path / "eval.jsonl"), "a"
    )
    remote = scored(f"{s3}/models/clf/model.bin", f"{s3}/eval/eval.jsonl", "b")
    assert [(s.name, s.dropped) for s in remote.stages] == [(s.name, s.dropped) for s in local.stages]
    assert remote.stage("decontaminate").dropped and remote.stage("quality_classifier").dropped
    assert read_dataset(tmp_path / "b").equals(read_dataset(tmp_path / "a"))

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in records * 3))
    curate(docs, tmp_path / "tok", "pipeline=train_tokenizer", "stages.train_tokenizer.vocab_size=600")
    upload_tree(tmp_path / "tok" / "tokenizer", f"{s3}/tokenizer")
    packed = [
        curate(
            docs,
            tmp_path / name,
            "pipeline=tokenize",
            f"stages.tokenize_pack.tokenizer={tokenizer}",
            "stages.tokenize_pack.seq_len=64",
        )
        for name, tokenizer in (("tokens-a", tmp_path / "tok" / "tokenizer"), ("tokens-b", f"{s3}/tokenizer"))
    ]
    assert [s.sha256 for s in packed[0].shards] == [s.sha256 for s in packed[1].shards]
    assert packed[0].tokenizer()["fingerprint"] == packed[1].tokenizer()["fingerprint"]


def gzip_lines(path: Path) -> list[bytes]:
    import gzip

    return gzip.decompress(path.read_bytes()).splitlines()


def test_an_https_input_with_a_signed_url_is_read_and_its_signature_written_nowhere(tmp_path):
    """http(s) inputs are read-only URLs; a presigned URL's signature is masked in everything written."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "served"
    served.mkdir()
    rows = [{"text": f"document number {i} served over http, long enough to be kept by clean"} for i in range(5)]
    (served / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signature = "X-Amz-Signature=0123456789abcdef0123456789abcdef"
    url = f"http://127.0.0.1:{server.server_address[1]}/docs.jsonl?{signature}"
    try:
        manifest = curate(url, tmp_path / "out", "pipeline=clean")
    finally:
        server.shutdown()
    assert manifest.rows == 5 and manifest.quarantined == 1
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert b"0123456789abcdef0123456789abcdef" not in path.read_bytes(), path
    listed = next(Manifest.read(tmp_path / "out").input_files(tmp_path / "out"))
    assert listed.path.endswith("docs.jsonl?X-Amz-Signature=***")


def test_a_dataset_larger_than_the_cache_bound_is_refused_before_training(tmp_path, s3, shared_data, monkeypatch):
    from curate.errors import ConfigError
    from train.data import open_dataset

    curate(str(local_corpus(tmp_path / "in", shared_data) / "c4.jsonl.gz"), f"{s3}/docs", "pipeline=clean")
    monkeypatch.setenv("THRESHER_CACHE_GB", "0.0001")
    with pytest.raises(
        ConfigError, match="MiB of shards, more than the local cache may hold \\(0.1 MiB: THRESHER_CACHE_GB\\)"
    ):
        open_dataset(f"{s3}/docs", ("documents",))


def test_a_folder_listing_on_s3_holds_its_files_only(tmp_path, s3):
    """What a worker fetches of a folder (`Mirror.glob`): the files inside it, never the folder's
    own entry or a directory placeholder (fetched, either became an empty file in the folder's
    place, and the next file written under it failed with "Not a directory")."""
    from curate.fs import Mirror

    store = s3_filesystem()
    bucket = s3.removeprefix("s3://")
    store.pipe_file(f"{bucket}/out/_work/stage/partitions/", b"")  # a placeholder, as consoles make
    mirror = Mirror.of(f"{s3}/out")
    folder = mirror.local / "_work" / "stage" / "partitions"
    assert mirror.glob(folder, "**") == []
    store.pipe_file(f"{bucket}/out/_work/stage/partitions/candidates/p00000.json", b"{}")
    assert mirror.glob(folder, "**") == [folder / "candidates" / "p00000.json"]
    assert mirror.glob(folder / "candidates", "p*.json") == [folder / "candidates" / "p00000.json"]
    mirror.fetch_tree(folder)
    assert (folder / "candidates" / "p00000.json").read_bytes() == b"{}"
