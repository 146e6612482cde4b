"""Every input format, read through the real engine, gives the rows it holds with stable ids."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import curate, read_dataset, write_jsonl

DOCS = [
    {
        "id": f"d{i}",
        "text": f"Document number {i} has enough words to pass the length filter. " * 2,
        "url": f"https://example.org/{i}",
        "score": i / 10,
    }
    for i in range(25)
]
KEEP_ALL = ["stages.length_filter.min_chars=1"]


def texts(folder) -> list[str]:
    return read_dataset(folder).column("text").to_pylist()


def expected() -> list[str]:
    return [d["text"].strip() for d in DOCS]


def test_jsonl_plain_gzip_zstd(tmp_path):
    data = b"".join(json.dumps(d).encode() + b"\n" for d in DOCS)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(data)
    (tmp_path / "in" / "b.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "in" / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    manifest = curate(tmp_path / "in", tmp_path / "out", *KEEP_ALL)
    assert texts(tmp_path / "out") == expected() * 3
    assert manifest.rows == 75 and manifest.quarantined == 0
    table = read_dataset(tmp_path / "out")
    assert table.column("id").to_pylist()[:2] == ["d0", "d1"]
    meta = json.loads(table.column("meta")[3].as_py())
    assert meta == {"score": 0.3, "url": "https://example.org/3"}
    # every input is fingerprinted with the sha256 of its bytes on disk
    import hashlib

    for entry in manifest.input_files(tmp_path / "out"):
        with open(entry.path, "rb") as handle:
            assert entry.sha256 == hashlib.sha256(handle.read()).hexdigest()


def test_json_array_single_object_and_json_lines_named_json(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "array.json").write_text(json.dumps(DOCS))
    (tmp_path / "in" / "lines.json").write_text("\n".join(json.dumps(d) for d in DOCS))
    (tmp_path / "in" / "one.json").write_text(json.dumps(DOCS[0], indent=2))  # pretty-printed: one record
    manifest = curate(tmp_path / "in", tmp_path / "out", *KEEP_ALL)
    assert texts(tmp_path / "out") == expected() * 2 + expected()[:1]
    assert manifest.quarantined == 0


def test_parquet_and_arrow_file_and_stream(tmp_path):
    table = pa.Table.from_pylist(DOCS)
    (tmp_path / "in").mkdir()
    pq.write_table(table, tmp_path / "in" / "a.parquet", row_group_size=7)
    with pa.OSFile(str(tmp_path / "in" / "b.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=10)
    with pa.OSFile(str(tmp_path / "in" / "c.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=10)
    curate(tmp_path / "in", tmp_path / "out", *KEEP_ALL, "input.columns=[score:float64]")
    out = read_dataset(tmp_path / "out")
    assert out.column("text").to_pylist() == expected() * 3
    assert out.schema.field("score").type == pa.float64()
    assert out.column("score").to_pylist()[:3] == [0.0, 0.1, 0.2]


def test_plain_text_units(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("first line\nsecond line\n\nthird after a blank\n")
    curate(tmp_path / "in" / "a.txt", tmp_path / "file", *KEEP_ALL)
    assert texts(tmp_path / "file") == ["first line\nsecond line\n\nthird after a blank"]
    curate(tmp_path / "in" / "a.txt", tmp_path / "line", *KEEP_ALL, "input.text_unit=line")
    assert texts(tmp_path / "line") == ["first line", "second line", "third after a blank"]
    assert read_dataset(tmp_path / "line").column("id").to_pylist() == ["a.txt:1", "a.txt:2", "a.txt:4"]
    curate(tmp_path / "in" / "a.txt", tmp_path / "para", *KEEP_ALL, "input.text_unit=paragraph")
    assert texts(tmp_path / "para") == ["first line\nsecond line", "third after a blank"]


def make_tree(root):
    files = {
        "pkg/__init__.py": "from .core import add\n",
        "pkg/core.py": "def add(a, b):\n\treturn a + b  \n",
        "src/main.rs": 'fn main() {\n    println!("hi");\n}\n',
        "README.md": "# Title\n",
        "data.bin": "\x00\x01",  # unknown extension: skipped, listed in the manifest
        ".git/config": "[core]\n",  # hidden folders are not walked
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return files


def test_source_code_tree(tmp_path):
    make_tree(tmp_path / "repo")
    manifest = curate(tmp_path / "repo", tmp_path / "out", "pipeline=clean", "~stages.normalize", *KEEP_ALL)
    rows = {r["path"]: r for r in read_dataset(tmp_path / "out").to_pylist()}
    assert set(rows) == {"pkg/__init__.py", "pkg/core.py", "src/main.rs", "README.md"}
    assert rows["pkg/core.py"]["text"] == "def add(a, b):\n\treturn a + b  \n"  # whitespace untouched
    assert rows["pkg/core.py"]["language"] == "python" and rows["src/main.rs"]["language"] == "rust"
    assert rows["pkg/core.py"]["id"] == "pkg/core.py" and rows["pkg/core.py"]["source"] == "repo"
    skipped = [f for f in manifest.input_files(tmp_path / "out") if f.skipped]
    assert [f.path.endswith("data.bin") for f in skipped] == [True] and manifest.inputs.skipped == 1


def test_tar_archive_of_code_and_jsonl(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in {"proj/a.py": b"x = 1\n", "proj/docs.jsonl": b'{"text": "inside a tar"}\n'}.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    (tmp_path / "code.tar.gz").write_bytes(buffer.getvalue())
    curate(tmp_path / "code.tar.gz", tmp_path / "out", *KEEP_ALL)
    rows = read_dataset(tmp_path / "out").to_pylist()
    assert [(r["id"], r["text"], r["language"]) for r in rows] == [
        ("code.tar.gz/proj/a.py", "x = 1", "python"),
        ("code.tar.gz/proj/docs.jsonl:1", "inside a tar", None),
    ]


def test_xml_row_dump(tmp_path):
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
        '  <row Id="1" Body="&lt;p&gt;Question one&lt;/p&gt;" Score="3" />\n'
        '  <row Id="2" Score="1" />\n</posts>\n'
    )
    (tmp_path / "Posts.xml").write_text(xml)
    manifest = curate(tmp_path / "Posts.xml", tmp_path / "out", *KEEP_ALL, "input.text_field=Body", "input.id_field=Id")
    rows = read_dataset(tmp_path / "out").to_pylist()
    assert [(r["id"], r["text"]) for r in rows] == [("1", "<p>Question one</p>")]
    assert manifest.quarantined == 1  # the row without a Body


def test_globs_dirs_and_files_together_in_order(tmp_path):
    for name in ("x1.jsonl", "x2.jsonl", "y.jsonl"):
        write_jsonl(tmp_path / "in" / name, [{"text": f"from {name}"}])
    manifest = curate([tmp_path / "in" / "x*.jsonl", tmp_path / "in" / "y.jsonl"], tmp_path / "out", *KEEP_ALL)
    assert texts(tmp_path / "out") == ["from x1.jsonl", "from x2.jsonl", "from y.jsonl"]
    assert [r["id"] for r in read_dataset(tmp_path / "out").to_pylist()] == ["x1.jsonl:1", "x2.jsonl:1", "y.jsonl:1"]
    assert manifest.inputs.files == 3


def test_nested_text_field_and_source_override(tmp_path):
    write_jsonl(tmp_path / "n.jsonl", [{"doc": {"body": "nested text", "lang": "en"}, "n": 1}])
    curate(tmp_path / "n.jsonl", tmp_path / "out", *KEEP_ALL, "input.text_field=doc.body", "input.source=web")
    row = read_dataset(tmp_path / "out").to_pylist()[0]
    assert row["text"] == "nested text" and row["source"] == "web"
    assert json.loads(row["meta"]) == {"doc": {"lang": "en"}, "n": 1}


def test_dataset_folder_as_input_keeps_columns(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", DOCS)
    curate(tmp_path / "a.jsonl", tmp_path / "first", *KEEP_ALL)
    manifest = curate(tmp_path / "first", tmp_path / "second", "stages.length_filter.min_chars=100")
    second = read_dataset(tmp_path / "second")
    assert "n_chars" in second.column_names and manifest.rows == sum(len(t) >= 100 for t in expected())
    assert second.column("id").to_pylist() == [d["id"] for d in DOCS if len(d["text"].strip()) >= 100]


@pytest.mark.parametrize("unit", ["file", "line"])
def test_ids_are_stable_across_runs(tmp_path, unit):
    (tmp_path / "t.txt").write_text("alpha beta\ngamma delta\n")
    curate(tmp_path / "t.txt", tmp_path / "a", *KEEP_ALL, f"input.text_unit={unit}")
    curate(tmp_path / "t.txt", tmp_path / "b", *KEEP_ALL, f"input.text_unit={unit}")
    assert read_dataset(tmp_path / "a").column("id") == read_dataset(tmp_path / "b").column("id")


def test_input_include_picks_files_by_name_in_folders_and_globs(tmp_path):
    write_jsonl(tmp_path / "in" / "keep-1.jsonl", [{"text": "one"}])
    write_jsonl(tmp_path / "in" / "sub" / "keep-2.jsonl", [{"text": "two"}])
    write_jsonl(tmp_path / "in" / "other.jsonl", [{"text": "three"}])
    manifest = curate(tmp_path / "in", tmp_path / "out", "pipeline=clean", "input.include=[keep-*]")
    assert manifest.rows_in == 2
    assert [(Path(f.path).name, f.skipped) for f in manifest.input_files(tmp_path / "out") if f.skipped] == [
        ("other.jsonl", "not matched by input.include (keep-*)")
    ]
    # a file named on its own is read whatever its name
    manifest = curate(tmp_path / "in" / "other.jsonl", tmp_path / "one", "pipeline=clean", "input.include=[keep-*]")
    assert manifest.rows_in == 1 and manifest.inputs.skipped == 0
