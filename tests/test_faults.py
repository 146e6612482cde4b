"""Reliability under faults and hostile input (issue 17): every guarantee of docs/reliability.md
has its test here. Real engine, real files, real processes; faults are made for real (bytes
flipped, files edited, processes killed, folders made read-only)."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard
from conftest import REPO, SHARED_DATA, curate, read_dataset, write_jsonl

from curate.manifest import Manifest

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


def child_peak_rss_mb(args: list[str]) -> tuple[int, int, str]:
    """Run `thresher` in a child process; its exit code, its peak resident memory (MB) and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "curate.cli", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss // 1024, stderr


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
    assert peak_mb < 450, f"peak memory {peak_mb} MB for a 512 MB line"
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
