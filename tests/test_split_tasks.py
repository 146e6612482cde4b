"""Tasks that fit the data: a large JSON lines file is read in byte ranges (each from the first
line starting in it), a Parquet file by runs of row groups, a JSON array streamed item by item; the
output is the same whatever the split."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.errors import OutputError
from curate.manifest import Manifest
from tests.conftest import curate, read_dataset


def real_corpus(folder: Path, shared: Path) -> Path:
    """Real documents as plain JSON lines (c4, ~800 KB, with a few lines that are bad input and a
    repeated document for the dedup stage), a Parquet file of Wikipedia lines (row groups of 40
    rows, no id column) and a JSON array."""
    folder.mkdir(parents=True)
    lines = gzip.decompress((shared / "c4_sample" / "c4_demo.jsonl.gz").read_bytes()).splitlines(keepends=True)
    lines[10:10] = [b'{"text": "unterminated\n', b"[1, 2]\n", lines[3]]
    (folder / "c4.jsonl").write_bytes(b"".join(lines))
    wiki = gzip.decompress((shared / "wikipedia_sample" / "wiki_demo.txt.gz").read_bytes()).decode().splitlines()
    texts = [line for line in wiki if len(line) > 100][:400]
    pq.write_table(pa.table({"text": texts}), folder / "wiki.parquet", row_group_size=40)
    records = [json.loads(line) for line in lines[200:260]]
    (folder / "array.json").write_text(json.dumps(records + [7], indent=1))
    return folder


def run(corpus: Path, out: Path, task_mb: float, *options: str):
    return curate(
        [str(corpus / "c4.jsonl"), str(corpus / "wiki.parquet"), str(corpus / "array.json")],
        out,
        "pipeline=near_dedup",
        "executor.workers=2",
        "input.split_mb=0.2",
        f"executor.task_mb={task_mb}",
        *options,
    )


def test_split_file_tasks_give_the_output_of_whole_file_tasks(tmp_path, shared_data):
    corpus = real_corpus(tmp_path / "in", shared_data)
    whole = run(corpus, tmp_path / "whole", 100)
    split = run(corpus, tmp_path / "split", 0.03)

    assert whole.tasks == 1 and split.tasks > 20
    for key in ("shards", "rejects", "quarantine"):
        assert read_dataset(tmp_path / "split", key).equals(read_dataset(tmp_path / "whole", key)), key
    assert split.stage("minhash_dedup").dropped == whole.stage("minhash_dedup").dropped
    assert split.stage("exact_dedup").dropped == {"exact_duplicate": 61}  # a repeated line, the array's copies
    assert split.quarantined == whole.quarantined == 3  # two bad lines and the array's number
    assert split.inputs.files == whole.inputs.files == 3  # a file read in parts counts once

    ids = read_dataset(tmp_path / "split").column("id").to_pylist()
    size = (corpus / "c4.jsonl").stat().st_size
    offsets = sorted(int(i.split("@")[1]) for i in ids if i.startswith("c4.jsonl@"))
    assert offsets[0] == 0 and offsets[-1] < size  # byte offsets of the lines in the file
    rows = pq.read_metadata(corpus / "wiki.parquet").num_rows
    assert "wiki.parquet:1" in ids and f"wiki.parquet:{rows}" in ids  # Parquet rows keep row numbers
    assert "array.json:60" in read_dataset(tmp_path / "split", "rejects").column("id").to_pylist()  # copies of c4
    quarantined = read_dataset(tmp_path / "split", "quarantine").to_pylist()
    assert {row["error"].split(":")[0] for row in quarantined} >= {
        "malformed JSON",
        "item is a JSON int, expected an object",
    }

    parts = [
        r for r in Manifest.read(tmp_path / "split").input_files(tmp_path / "split") if r.path.endswith("c4.jsonl")
    ]
    assert len(parts) > 5 and parts[0].start == 0 and parts[-1].end == size
    assert sum(p.bytes for p in parts) == size  # every byte read once, by exactly one part


def test_a_split_file_edited_in_place_is_not_resumed(tmp_path, shared_data):
    corpus = real_corpus(tmp_path / "in", shared_data)
    run(corpus, tmp_path / "out", 0.03)
    path = corpus / "c4.jsonl"
    data = bytearray(path.read_bytes())
    stat = path.stat()
    middle = data.index(b"the ", len(data) // 2)
    data[middle : middle + 4] = b"THE "  # same size, time put back
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(OutputError, match="input that has changed since"):
        run(corpus, tmp_path / "out", 0.03)
