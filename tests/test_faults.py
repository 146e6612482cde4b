"""Reliability under faults and hostile input (issue 17): every guarantee of docs/reliability.md
has its test here. Real engine, real files, real processes; faults are made for real (bytes
flipped, files edited, processes killed, folders made read-only)."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow as pa
import pytest
import zstandard
from conftest import (
    REPO,
    SHARED_DATA,
    curate,
    kill_after_tasks,
    read_dataset,
    session_processes,
    start_curate,
    thresher,
    wait_until_gone,
    write_jsonl,
)

from curate.errors import InputError, OutputError
from curate.manifest import Manifest, ManifestError

GOOD = [{"text": f"document {i}: " + " ".join(["words that are long enough to keep"] * 3)} for i in range(6)]


def jsonl_bytes(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def quarantine_errors(folder: Path) -> list[str]:
    table = read_dataset(folder, "quarantine")
    return [] if table is None else table.column("error").to_pylist()


# -- 3. accounting: every stage balances, for every recipe ---------------------------------------


def test_mix_counts_epoch_copies_as_generated(tmp_path):
    for name, n in {"small": 10, "big": 100}.items():
        rows = [{"id": f"{name}{i}", "text": f"{name} document {i} " + "word " * 20} for i in range(n)]
        write_jsonl(tmp_path / "raw" / f"{name}.jsonl", rows)
        curate(tmp_path / "raw" / f"{name}.jsonl", tmp_path / name, f"input.source={name}", "executor.workers=1")
    manifest = curate(
        [tmp_path / "small", tmp_path / "big"],
        tmp_path / "mix",
        "pipeline=mix",
        "stages.mix.unit=documents",
        "stages.mix.weights=[small:0.5,big:0.5]",
        "stages.mix.epoch_caps=[small:4]",
    )
    mix = manifest.stage("mix")
    # 110 in: small kept 4 times (30 copies generated), 40 of big's 100 kept, 60 dropped
    assert (mix.rows_in, mix.generated, mix.rows_out, mix.dropped) == (110, 30, 80, {"mix_not_sampled": 60})
    assert manifest.rows_in == manifest.rows + manifest.dropped - manifest.generated


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    out = tmp_path_factory.mktemp("tokenizer") / "run"
    manifest = curate(
        SHARED_DATA / "tinyshakespeare",
        out,
        "pipeline=train_tokenizer",
        "input.text_unit=paragraph",
        "stages.train_tokenizer.sample_rate=0.5",
        "stages.train_tokenizer.vocab_size=600",
    )
    stage = manifest.stage("train_tokenizer")
    assert stage.rows_in == stage.consumed > 0 and manifest.rows == 0  # its rows end in the tokenizer
    return out / "tokenizer"


def test_packing_consumes_documents_and_generates_sequences(tokenizer, shared_data, tmp_path):
    manifest = curate(
        shared_data / "tinyshakespeare",
        tmp_path / "tokens",
        "pipeline=tokenize",
        "input.text_unit=paragraph",
        f"stages.tokenize_pack.tokenizer={tokenizer}",
        "stages.tokenize_pack.seq_len=256",
        "executor.task_mb=0.2",
    )
    pack = manifest.stage("tokenize_pack")
    assert pack.consumed == pack.rows_in > pack.rows_out == pack.generated == manifest.rows > 0
    counts = pack.stats  # tokens balance too: every token is in a sequence, padding fills the last ones
    assert counts["tokens"] + counts["padding_tokens"] == counts["sequences"] * 256 + counts["dropped_tokens"]


def test_convert_recipe_balances(shared_data, tmp_path):
    manifest = curate(shared_data / "alpaca_en_demo", tmp_path / "chat", "pipeline=convert", "input.records=alpaca")
    assert manifest.kind == "chat" and manifest.rows + manifest.quarantined == manifest.rows_in > 0


def test_every_recipe_is_run_by_the_suite_with_its_accounting_checked():
    """Every run through conftest's `curate` checks the accounting from the manifest and the files
    (`assert_balanced`), independently of the engine's own check: so every recipe must be run so."""
    from curate.resources import CONF_DIR

    recipes = {path.stem for path in (CONF_DIR / "pipeline").glob("*.yaml")}
    used = set()
    for test_file in (REPO / "tests").glob("test_*.py"):
        used |= set(re.findall(r'"pipeline=(\w+)"', test_file.read_text()))
    assert recipes - used == set(), "recipes no test runs (and checks the accounting of)"


# -- 4. tar links, byte order marks ---------------------------------------------------------------


def add_member(archive: tarfile.TarFile, name: str, data: bytes | None = None, **link) -> None:
    info = tarfile.TarInfo(name)
    if data is not None:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    else:
        info.type, info.linkname = link["type"], link["target"]
        archive.addfile(info)


def test_tar_links_are_read_as_their_targets(tmp_path):
    with tarfile.open(tmp_path / "repo.tar.gz", "w:gz") as archive:
        add_member(archive, "src/a.py", b"def a():\n    return 1\n")
        add_member(archive, "src/b.py", b"def b():\n    return 2\n")
        add_member(archive, "copy/a.py", type=tarfile.LNKTYPE, target="src/a.py")
        add_member(archive, "src/alias.py", type=tarfile.SYMTYPE, target="b.py")
        add_member(archive, "src/second_link.py", type=tarfile.LNKTYPE, target="src/a.py")
        add_member(archive, "src/outside.py", type=tarfile.SYMTYPE, target="../../etc/passwd.py")
    manifest = curate(
        tmp_path / "repo.tar.gz", tmp_path / "out", "executor.workers=1", "stages.length_filter.min_chars=1"
    )
    rows = {r["path"].removeprefix("repo.tar.gz/"): r["text"] for r in read_dataset(tmp_path / "out").to_pylist()}
    a, b = "def a():\n    return 1", "def b():\n    return 2"
    assert rows == {"src/a.py": a, "src/b.py": b, "copy/a.py": a, "src/alias.py": b, "src/second_link.py": a}
    assert manifest.quarantined == 1
    assert quarantine_errors(tmp_path / "out") == ["link to '../etc/passwd.py', which is not a file in the archive"]


def test_byte_order_mark_does_not_cost_the_first_record(tmp_path):
    bom = b"\xef\xbb\xbf"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "lines.jsonl").write_bytes(bom + jsonl_bytes(GOOD[:2]))
    (tmp_path / "in" / "array.json").write_bytes(bom + json.dumps(GOOD[2:4]).encode())
    (tmp_path / "in" / "doc.txt").write_bytes(bom + GOOD[4]["text"].encode())
    manifest = curate(tmp_path / "in", tmp_path / "out", "executor.workers=1")
    texts = sorted(read_dataset(tmp_path / "out").column("text").to_pylist())
    assert manifest.quarantined == 0 and texts == sorted(r["text"] for r in GOOD[:5])


# -- 5. decompression bombs and huge lines -------------------------------------------------------


def gzip_of_zeros(megabytes: int) -> bytes:
    """`megabytes` MB of zero bytes as concatenated gzip members (a valid .gz, ~1 KB per MB)."""
    member = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    return member * megabytes


# Forks a small interpreter's child to run the command: a child forked from the test process
# itself would report the test process's memory as its peak (ru_maxrss survives exec).
PEAK_RSS = """
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss // 1024)
"""


def child_peak_rss_mb(args: list[str]) -> tuple[int, int, str]:
    """Run `thresher` in a child process; its exit code, its peak resident memory (MB) and stderr."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "-m", "curate.cli", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    code, peak = map(int, result.stdout.split())
    return code, peak, result.stderr


def test_huge_line_is_quarantined_in_bounded_memory(tmp_path):
    """512 MB of zeros without a newline, then good records: with the inflate bound off, the line
    bound (input.max_doc_mb) quarantines the line without ever holding it (the old reader held the
    whole line, then more)."""
    data = gzip.compress(jsonl_bytes(GOOD[:2])) + gzip_of_zeros(512) + gzip.compress(b"\n" + jsonl_bytes(GOOD[2:]))
    (tmp_path / "bomb.jsonl.gz").write_bytes(data)
    options = ["input.max_doc_mb=1", "input.max_inflate_ratio=0", "executor.workers=1", "executor.progress=false"]
    code, peak_mb, stderr = child_peak_rss_mb(
        ["curate", f"input.paths=[{tmp_path / 'bomb.jsonl.gz'}]", f"output.dir={tmp_path / 'out'}", *options]
    )
    assert code == 0, stderr
    assert peak_mb < 400, f"peak memory {peak_mb} MB for a 512 MB line"
    manifest = Manifest.read(tmp_path / "out")
    assert manifest.rows == len(GOOD) and manifest.quarantined == 1
    assert quarantine_errors(tmp_path / "out") == [
        f"line of {(512 << 20) + 1} bytes exceeds input.max_doc_mb (1048576 bytes); its first 65536 bytes are kept"
    ]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_decompression_bomb_is_stopped_by_the_inflate_ratio(tmp_path, codec):
    head = jsonl_bytes(GOOD)
    if codec == "gzip":
        data, name = gzip.compress(head) + gzip_of_zeros(256), "bomb.jsonl.gz"
    else:
        zeros = zstandard.ZstdCompressor(level=19).compress(b"\0" * (64 << 20))
        data, name = zstandard.ZstdCompressor().compress(head) + zeros * 4, "bomb.jsonl.zst"
    (tmp_path / name).write_bytes(data)
    manifest = curate(tmp_path / name, tmp_path / "out", "executor.workers=1")
    assert manifest.rows == len(GOOD) and manifest.quarantined == 1
    [error] = quarantine_errors(tmp_path / "out")
    assert error.startswith("decompressed data exceeds 100x its compressed size") and "input.max_inflate_ratio" in error


def test_honest_compressed_input_passes_the_inflate_bound(tmp_path, shared_data):
    manifest = curate(shared_data / "c4_sample", tmp_path / "out", "executor.workers=1")
    assert manifest.quarantined == 0 and manifest.rows > 0


# -- 6. hostile structure: deep JSON, XML entities -----------------------------------------------


def test_deeply_nested_json_is_quarantined_not_fatal(tmp_path):
    deep = {"text": "a document with deeply nested metadata", "meta": json.loads("[" * 300 + "]" * 300)}
    write_jsonl(tmp_path / "in" / "a.jsonl", [GOOD[0], deep, GOOD[1]])
    (tmp_path / "in" / "b.json").write_text(json.dumps([GOOD[2], deep]))
    write_jsonl(tmp_path / "in" / "c.jsonl", [], [b"[" * 2000 + b"]" * 2000 + b"\n"])  # beyond orjson's parser
    manifest = curate(tmp_path / "in", tmp_path / "out", "executor.workers=1")
    assert manifest.rows == 3 and manifest.quarantined == 3
    errors = quarantine_errors(tmp_path / "out")
    assert sum("nested too deeply" in e for e in errors) == 2 and any("depth limit" in e for e in errors)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<posts><row Id="1" Body="&lol2;" /></posts>
"""


def test_xml_with_entities_is_quarantined_and_the_run_goes_on(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "Posts.xml").write_bytes(BILLION_LAUGHS)
    write_jsonl(tmp_path / "in" / "good.jsonl", [{"Body": row["text"]} for row in GOOD])
    manifest = curate(tmp_path / "in", tmp_path / "out", "input.text_field=Body", "executor.workers=1")
    assert manifest.rows == len(GOOD) and manifest.quarantined == 1
    [error] = quarantine_errors(tmp_path / "out")
    assert error.startswith("XML refused:") and "entities and DTDs are not read" in error


# -- 1. resume verifies the content of the inputs it already used ---------------------------------


def edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Change `path`'s bytes without changing its size, then put its modification time back."""
    assert len(old) == len(new)
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(old, new, 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_finished_run_on_an_input_edited_in_place_is_not_called_complete(tmp_path):
    for name in ("a", "b"):
        write_jsonl(tmp_path / "in" / f"{name}.jsonl", GOOD)
    curate(tmp_path / "in", tmp_path / "out")
    edit_in_place(tmp_path / "in" / "b.jsonl", b"document 3", b"DOCUMENT 3")
    with pytest.raises(OutputError, match=r"holds a finished run of the same config on input that has changed since "):
        curate(tmp_path / "in", tmp_path / "out")
    manifest = curate(tmp_path / "in", tmp_path / "out", "output.overwrite=true")
    assert any(t.startswith("DOCUMENT 3") for t in read_dataset(tmp_path / "out").column("text").to_pylist())
    assert manifest.rows == 2 * len(GOOD)


def test_unfinished_run_on_an_input_edited_in_place_is_not_resumed(tmp_path):
    for f in range(60):
        write_jsonl(tmp_path / "in" / f"part{f:03d}.jsonl", [{"text": f"file {f} " + "lorem ipsum dolor " * 400}] * 40)
    options = ["executor.task_mb=0.2", "executor.workers=1"]
    done = kill_after_tasks(tmp_path / "in", tmp_path / "out", options, pass_index=0, tasks=2, timeout=120)
    assert done >= 2
    edit_in_place(tmp_path / "in" / "part000.jsonl", b"file 0 lorem", b"FILE 0 lorem")  # read by task 0
    with pytest.raises(
        OutputError, match=r"unfinished run of the same config on input that has changed since .*part000"
    ):
        curate(tmp_path / "in", tmp_path / "out", *options)


# -- 2. corrupted or truncated shards, manifests pointing outside their folder --------------------


def small_dataset(tmp_path: Path) -> tuple[Path, Path]:
    write_jsonl(tmp_path / "raw.jsonl", [{"text": f"row {i}: " + "a fine sentence of text " * 20} for i in range(200)])
    curate(tmp_path / "raw.jsonl", tmp_path / "ds", "executor.workers=1")
    shard = tmp_path / "ds" / Manifest.read(tmp_path / "ds").shards[0].path
    return tmp_path / "ds", shard


def test_a_flipped_byte_in_a_shard_is_refused_by_every_reader(tmp_path):
    dataset, shard = small_dataset(tmp_path)
    data = bytearray(shard.read_bytes())
    at = data.index(b"a fine sentence", len(data) // 2)
    data[at] ^= 0x20  # "a" -> "A": the text changes, the Arrow structure stays valid
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"part-00000-000.arrow: checksum does not match the manifest"):
        curate(dataset, tmp_path / "again")
    for command in (["inspect", str(dataset)], ["report", str(dataset)]):
        result = thresher(*command, check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            f"error: {shard}: checksum does not match the manifest (the file was modified or corrupted)"
        ]
    result = thresher("curate", f"input.paths=[{dataset}]", f"output.dir={tmp_path / 'cli'}", check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(f"error: {shard}: checksum")


def test_a_truncated_shard_is_one_line(tmp_path):
    dataset, shard = small_dataset(tmp_path)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    result = thresher("inspect", str(dataset), check=False)
    assert (
        result.returncode == 2 and result.stderr.startswith(f"error: {shard}: size ") and "truncated?" in result.stderr
    )
    with pytest.raises(InputError, match="does not match the manifest"):
        curate(dataset, tmp_path / "again")
    from curate.arrow_io import read_table

    with pytest.raises(InputError, match=r"not a readable Arrow stream, truncated or corrupt"):
        read_table(shard)  # a reader without the checksum still says which file, in one line


def test_a_manifest_path_outside_its_folder_is_refused(tmp_path):
    dataset, _ = small_dataset(tmp_path)
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["shards"][0]["path"] = "../../etc/passwd"
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    for command in (["inspect", str(dataset)], ["report", str(dataset)]):
        result = thresher(*command, check=False)
        assert result.returncode == 2
        assert "the path '../../etc/passwd' leads outside the dataset folder; refused" in result.stderr
    with pytest.raises(ManifestError, match="leads outside the dataset folder"):
        curate(dataset, tmp_path / "again")


def test_inspect_says_the_checksums_match(tmp_path):
    dataset, _ = small_dataset(tmp_path)
    manifest = Manifest.read(dataset)
    listed = len(manifest.shards) + len(manifest.rejects) + len(manifest.quarantine) + 1  # + inputs.arrow
    assert f"checksums: all {listed} files listed match the manifest" in thresher("inspect", str(dataset)).stdout


# -- 9. the machine's errors: full disk, read-only folder -----------------------------------------


def in_small_filesystem(mount: Path, size: str, command: str, read_only: bool = False) -> subprocess.CompletedProcess:
    """Run `command` (a shell line) with a fresh tmpfs of `size` mounted at `mount` (a user
    namespace: no root needed), optionally remounted read-only first."""
    if subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode != 0:
        pytest.skip("user namespaces are not available here")
    mount.mkdir(parents=True, exist_ok=True)
    remount = f" && mount -o remount,ro {mount}" if read_only else ""
    script = f"mount -t tmpfs -o size={size} tmpfs {mount}{remount} && {command}"
    return subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_is_one_line_naming_the_path(tmp_path, workers):
    for f in range(8):
        write_jsonl(
            tmp_path / "in" / f"{f}.jsonl", [{"text": f"file {f} doc {i} " + "words " * 200} for i in range(200)]
        )
    out = tmp_path / "disk" / "out"
    command = (
        f"{sys.executable} -m curate.cli curate input.paths=[{tmp_path / 'in'}] output.dir={out} "
        f"executor.workers={workers} executor.task_mb=1 executor.progress=false"
    )
    result = in_small_filesystem(tmp_path / "disk", "1m", command)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert re.fullmatch(rf"error: {out}/\S+: No space left on device", line), line


def test_a_read_only_output_folder_is_one_line(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", GOOD)
    out = tmp_path / "ro" / "out"
    command = f"{sys.executable} -m curate.cli curate input.paths=[{tmp_path / 'in.jsonl'}] output.dir={out}"
    result = in_small_filesystem(tmp_path / "ro", "1m", command, read_only=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: output.dir '{out}' cannot be written: Read-only file system"]


# -- 8. a kill during finalize; temporary files -------------------------------------------------


def test_the_manifest_is_written_last(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", GOOD)
    curate(tmp_path / "in.jsonl", tmp_path / "out")
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file() and p.name != ".lock"}
    assert max(written, key=written.get).name == "manifest.json"


def test_rerun_finishes_what_a_kill_during_finalize_left(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", GOOD)
    out = tmp_path / "out"
    first = curate(tmp_path / "in.jsonl", out)
    # what a kill after the manifest leaves: no report, the work folder, temporary files
    (out / "report.html").unlink()
    (out / "_work" / "pass-0").mkdir(parents=True)
    (out / "_work" / "pass-0" / "task-00000.json").write_text("{}")
    (out / "data" / "part-00000-001.arrow.tmp").write_bytes(b"half a shard")
    (out / ".tokenizer-123-abcd.tmp").mkdir()
    again = curate(tmp_path / "in.jsonl", out)
    assert again.created == first.created  # complete: nothing redone
    assert (out / "report.html").is_file() and not (out / "_work").exists()
    assert not list(out.rglob("*.tmp"))


def test_the_tokenizer_folder_gets_the_users_umask(tokenizer):
    umask = os.umask(0)
    os.umask(umask)
    assert tokenizer.stat().st_mode & 0o777 == 0o777 & ~umask
    assert not list(tokenizer.parent.glob(".tokenizer-*"))


# -- 10. git --------------------------------------------------------------------------------------


def test_runs_call_git_only_when_asked(tmp_path):
    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "git-calls"}\nexit 1\n')
    fake.chmod(0o755)
    write_jsonl(tmp_path / "in.jsonl", GOOD)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "curate.cli", "curate", f"input.paths=[{tmp_path / 'in.jsonl'}]"]
    subprocess.run([*args, f"output.dir={tmp_path / 'a'}"], env=env, cwd=REPO, check=True, capture_output=True)
    assert not (tmp_path / "git-calls").exists()
    from importlib.metadata import version

    assert Manifest.read(tmp_path / "a").version == version("thresher")
    env["THRESHER_VERSION_FROM_GIT"] = "1"
    subprocess.run([*args, f"output.dir={tmp_path / 'b'}"], env=env, cwd=REPO, check=True, capture_output=True)
    calls = (tmp_path / "git-calls").read_text().splitlines()
    assert calls and all(call.startswith("--no-optional-locks ") for call in calls)


# -- 11. credentials ------------------------------------------------------------------------------


def test_credentials_in_urls_and_options_are_written_nowhere(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", GOOD)
    url = "https://user:SECRET1@llm.example.org/v1?api_key=SECRET2&model=m"
    stage = f"+stages.endpoint={{_target_: tests.fault_stages.Endpoint, url: '{url}', token: SECRET3}}"
    out = tmp_path / "out"
    manifest = curate(tmp_path / "in.jsonl", out, stage, "output.keep_work=true")
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {"manifest.json", "report.html", "run.json", "run.log"} <= {p.name for p in written}
    assert [p for p in written if b"SECRET" in p.read_bytes()] == []
    options = manifest.stage("endpoint").options
    assert options == {"url": "https://***@llm.example.org/v1?api_key=***&model=m", "token": "***"}


def test_llm_base_url_credentials_are_masked_in_the_run_config():
    from conftest import compose

    from curate.engine.plan import run_config

    cfg = compose(
        [
            "pipeline=self_instruct",
            "input.paths=[x]",
            "output.dir=y",
            "llm@stages.self_instruct.llm=vllm",
            "stages.self_instruct.llm.model=m",
            "stages.self_instruct.llm.base_url=https://me:KEY@host/v1",
        ]
    )
    assert run_config(cfg)["stages"]["self_instruct"]["llm"]["base_url"] == "https://***@host/v1"


# -- 12. many small inputs ------------------------------------------------------------------------


def test_many_small_files_make_many_tasks_compact_shards_and_a_small_manifest(tmp_path):
    for f in range(2500):
        write_jsonl(tmp_path / "in" / f"{f:05d}.jsonl", [{"text": f"small file {f}: " + "some words " * 8}])
    manifest = curate(tmp_path / "in", tmp_path / "out", "executor.workers=2")
    assert manifest.tasks == 3 and manifest.workers == 2  # executor.task_files=1000
    assert manifest.inputs.files == 2500 and len(list(manifest.input_files(tmp_path / "out"))) == 2500
    assert (tmp_path / "out" / "manifest.json").stat().st_size < 16_000
    text_bytes = sum(len(t.encode()) for t in read_dataset(tmp_path / "out").column("text").to_pylist())
    for shard in manifest.shards:
        with pa.ipc.open_stream(tmp_path / "out" / shard.path) as reader:
            batches = sum(1 for _ in reader)
        assert batches <= 2  # rows gathered into batches of executor.batch_rows, not one per file
    assert manifest.data_bytes < 2.5 * text_bytes


# -- 7. kill -9: no process survives its run; a rerun ends as an uninterrupted run -----------------


def test_workers_end_when_the_main_process_is_killed(tmp_path):
    """kill -9 of the main process only (as a user's `kill -9 <pid>`): its workers and the resource
    tracker end by themselves, so the terminal's output closes (a `| tee` ends) and a rerun never
    runs beside them."""
    for f in range(40):
        write_jsonl(
            tmp_path / "in" / f"{f}.jsonl", [{"text": f"file {f} doc {i} " + "words " * 300} for i in range(300)]
        )
    process = start_curate(
        [tmp_path / "in"], tmp_path / "out", ["executor.workers=2", "executor.task_mb=1"], stdout=subprocess.PIPE
    )
    markers = tmp_path / "out" / "_work" / "pass-0"
    deadline = time.monotonic() + 120
    while not list(markers.glob("task-*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(session_processes(process.pid)) >= 3  # the main process, its workers, the resource tracker
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert wait_until_gone(process.pid) == []
    assert process.stdout.read() == b""  # end of file: no process holds the output any more
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_rerun_waits_for_the_workers_of_an_earlier_run(tmp_path):
    """A worker of an earlier run still holding the folder (here: a process holding its workers
    lock) keeps a new run out, with one line naming it; once it ends, the run goes ahead."""
    from curate.engine.folder import CurationFolder, Layout
    from curate.runfolder import WORKERS_LOCK_FILE

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; h = open(sys.argv[1], 'a+'); fcntl.flock(h, fcntl.LOCK_SH); print(1, flush=True); "
            "time.sleep(600)",
            str(out / WORKERS_LOCK_FILE),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"1\n"
        folder = CurationFolder(Layout(out))
        folder.workers_wait_s = 0.5
        with pytest.raises(
            OutputError, match=rf"is still used by worker processes of an earlier run \(pids: {holder.pid}\)"
        ):
            folder.lock()
    finally:
        holder.kill()
        holder.wait()
    with folder:  # the lock goes through once the worker is gone
        assert folder.handle is not None


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file of a dataset folder but its logs and locks (they record the attempts)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.parts[len(folder.parts)] != "logs" and not p.name.startswith(".lock")
    }


def without_timings(manifest: Manifest) -> Manifest:
    """A manifest without what differs between two runs of the same work into two folders: when,
    how long, and where (the output folder is part of the config, hence of the fingerprint)."""
    import dataclasses

    stages = [
        dataclasses.replace(s, seconds=0.0, details={k: v for k, v in s.details.items() if k != "seconds"})
        for s in manifest.stages
    ]
    timings = dataclasses.replace(manifest.timings, seconds=0.0, passes=[], rows_per_second=0, input_mb_per_second=0)
    config = {**manifest.config, "output": {**manifest.config["output"], "dir": ""}}
    return dataclasses.replace(manifest, created="", timings=timings, stages=stages, config=config, fingerprint="")


def report_of(folder: Path, manifest: Manifest) -> str:
    from curate.report import render_report

    return render_report(folder, without_timings(manifest)).replace(folder.name, "<folder>")


def assert_same_as_uninterrupted(resumed: Path, whole: Path) -> None:
    """The whole folder: data, rejects, quarantine, stage artifacts, inputs list byte for byte; the
    manifest but for timings; the report complete (as its manifest renders it) and the same."""
    from curate.report import render_report

    ours, theirs = folder_files(resumed), folder_files(whole)
    assert sorted(ours) == sorted(theirs)
    for name in ours:
        if name not in ("manifest.json", "report.html"):
            assert ours[name] == theirs[name], name
    ours_manifest, theirs_manifest = Manifest.read(resumed), Manifest.read(whole)
    assert without_timings(ours_manifest) == without_timings(theirs_manifest)
    assert ours["report.html"].decode() == render_report(resumed, ours_manifest)
    assert report_of(resumed, ours_manifest) == report_of(whole, theirs_manifest)


def property_inputs(root: Path, shared: Path) -> dict[str, tuple[list[Path], list[str]]]:
    """Recipes over inputs large enough for several tasks: each with its inputs and options."""
    web = root / "web"
    for f in range(40):
        rows = [
            {"text": f"page {f}.{i} " + "the quick brown fox jumps over it " * (2 + (i * 7 + f) % 30)}
            for i in range(40)
        ]
        rows[3]["text"] = "short"
        rows += [rows[5], {"text": rows[6]["text"] + " edited"}]  # an exact and a near duplicate
        write_jsonl(web / f"{f:02d}.jsonl", rows, [b'{"oops": 1}\n', b"not json\n"])
    sources = []
    for name, n in {"small": 150, "big": 900}.items():
        write_jsonl(
            root / "raw" / f"{name}.jsonl", [{"id": f"{name}{i}", "text": f"{name} {i} " + "w " * 30} for i in range(n)]
        )
        curate(root / "raw" / f"{name}.jsonl", root / name, f"input.source={name}", "executor.task_mb=0.02")
        sources.append(root / name)
    workers = ["executor.workers=2", "executor.task_mb=0.05", "output.shard_mb=0.05"]
    return {
        "clean": ([web], ["pipeline=clean", *workers]),
        "near_dedup": ([web], ["pipeline=near_dedup", *workers]),
        "train_tokenizer": (
            [shared / "tinyshakespeare"],
            [
                "pipeline=train_tokenizer",
                "input.text_unit=paragraph",
                "stages.train_tokenizer.sample_rate=0.3",
                "stages.train_tokenizer.vocab_size=500",
                *workers,
            ],
        ),
        "mix": (
            sources,
            [
                "pipeline=mix",
                "stages.mix.unit=documents",
                "stages.mix.weights=[small:0.5,big:0.5]",
                "stages.mix.epoch_caps=[small:3]",
                *workers,
            ],
        ),
    }


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path, shared_data):
    """Property: for several recipes, kill -9 the main process at random moments (seeded; once, or
    twice in a row), then rerun: the folder ends exactly as an uninterrupted run's, and no process
    of a killed run survives it."""
    import random

    rng = random.Random(17)
    interrupted = 0
    for recipe, (inputs, options) in property_inputs(tmp_path / "inputs", shared_data).items():
        whole = tmp_path / recipe / "whole"
        started = time.monotonic()
        assert start_curate(inputs, whole, options).wait() == 0, recipe
        wall = time.monotonic() - started
        for kills in (1, 2):
            out = tmp_path / recipe / f"killed-{kills}"
            for _ in range(kills):
                delay = rng.uniform(0.3, 1.0) * wall
                process = start_curate(inputs, out, options)
                try:
                    process.wait(timeout=delay)  # finished before its kill: the rerun says complete
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
                    interrupted += not (out / "manifest.json").exists()
                assert wait_until_gone(process.pid) == [], f"{recipe}: processes of the killed run survive it"
            assert start_curate(inputs, out, options).wait() == 0, recipe
            assert_same_as_uninterrupted(out, whole)
    assert interrupted >= 6  # of 12 kills: most land before the run is complete
