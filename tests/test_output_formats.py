"""output.format: documents, chat and preference datasets as Arrow streams (the default), Parquet or
JSON lines; what other tools read (pyarrow.dataset, polars' lazy scans, DuckDB, `datasets`), and
every reader of Thresher datasets (a dataset as input, inspect, report, the trainers' views,
decontamination's evaluation sets) reading each format, checksums verified."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pytest
from conftest import curate, read_dataset, thresher, write_jsonl

from curate.errors import ConfigError, InputError
from curate.manifest import Manifest

FORMATS = ("arrow", "parquet", "jsonl")
SUFFIX = {"arrow": ".arrow", "parquet": ".parquet", "jsonl": ".jsonl"}
KEEP = ("pipeline=clean", "~stages.normalize")  # length_filter (annotates n_chars, drops the short)

DOCUMENTS = [{"id": f"d{i}", "text": f"document {i}: " + "a sentence of words. " * (i % 7 + 1)} for i in range(60)]
DOCUMENTS += [{"id": "short", "text": "tiny"}]
ALPACA = [{"instruction": f"Say {i} in words.", "input": "", "output": f"The number {i}."} for i in range(30)]
PAIRS = [{"prompt": f"Pick {i}", "chosen": f"I pick {i}, gladly.", "rejected": "No.", "id": f"p{i}"} for i in range(30)]


def dataset(tmp_path, kind: str, fmt: str, *extra: str):
    """A curated dataset of `kind` written in `fmt`; returns (folder, manifest)."""
    out = tmp_path / f"{kind}-{fmt}"
    if kind == "documents":
        manifest = curate(write_jsonl(tmp_path / "docs.jsonl", DOCUMENTS), out, *KEEP, f"output.format={fmt}", *extra)
    elif kind == "chat":
        path = write_jsonl(tmp_path / "alpaca.jsonl", ALPACA)
        manifest = curate(path, out, "pipeline=convert", "input.records=alpaca", f"output.format={fmt}", *extra)
    else:
        path = write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
        manifest = curate(path, out, "pipeline=convert", "input.records=dpo", f"output.format={fmt}", *extra)
    return out, manifest


@pytest.mark.parametrize("kind", ["documents", "chat", "preference"])
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_each_format_holds_the_rows_of_the_arrow_stream(tmp_path, kind, fmt):
    arrow_folder, arrow = dataset(tmp_path, kind, "arrow")
    folder, manifest = dataset(tmp_path, kind, fmt, "output.shard_mb=0.002")  # several shards
    assert arrow.format == "arrow" and manifest.format == fmt
    assert all(s.path.endswith(SUFFIX[fmt]) for s in manifest.shards) and len(manifest.shards) > 1
    assert all(r.path.endswith(".arrow") for r in manifest.rejects + manifest.quarantine)
    assert manifest.schema == arrow.schema and manifest.rows == arrow.rows > 0
    assert json.loads((folder / "manifest.json").read_text())["format"] == fmt
    expected = read_dataset(arrow_folder)
    assert read_dataset(folder).equals(expected)  # exactly the declared types, nested conversations included


@pytest.mark.parametrize("kind", ["documents", "chat", "preference"])
def test_other_tools_read_parquet_and_jsonl_lazily(tmp_path, kind):
    from datasets import load_dataset

    expected = read_dataset(dataset(tmp_path, kind, "arrow")[0]).to_pylist()
    key = "text" if kind == "documents" else "messages" if kind == "chat" else "chosen"
    for fmt in ("parquet", "jsonl"):
        folder, manifest = dataset(tmp_path, kind, fmt)
        paths = [str(folder / s.path) for s in manifest.shards]
        scan = (pl.scan_parquet if fmt == "parquet" else pl.scan_ndjson)(paths)
        frame = scan.select("id", key).collect()
        pyarrow_table = ds.dataset(paths, format="parquet" if fmt == "parquet" else "json").to_table()
        reader = "read_parquet" if fmt == "parquet" else "read_json"
        duck = duckdb.sql(f"SELECT id, {key} FROM {reader}({paths!r}) ORDER BY id").fetchall()
        loaded = load_dataset(fmt if fmt == "parquet" else "json", data_files=paths, cache_dir=str(tmp_path / "hf"))
        rows = loaded["train"]
        assert frame.height == pyarrow_table.num_rows == len(duck) == len(rows) == len(expected)
        first = expected[0]
        assert frame.row(0, named=True)[key] == first[key] == rows[0][key]
        assert pyarrow_table.slice(0, 1).to_pylist()[0][key] == first[key]
        assert dict(zip(["id", key], duck[[r[0] for r in duck].index(first["id"])]))[key] == first[key]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_dataset_in_any_format_is_an_input_with_its_checksums_verified(tmp_path, fmt):
    folder, manifest = dataset(tmp_path, "documents", fmt)
    again = curate(folder, tmp_path / "again", "pipeline=clean", "stages.length_filter.min_chars=100")
    assert again.rows_in == manifest.rows and again.quarantined == 0
    assert read_dataset(tmp_path / "again").column("id").to_pylist() == [
        r["id"] for r in read_dataset(folder).to_pylist() if r["n_chars"] >= 100
    ]
    shard = folder / manifest.shards[0].path
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InputError, match="checksum does not match the manifest"):
        curate(folder, tmp_path / "tampered", "pipeline=clean")


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_inspect_and_report_read_each_format_rejects_and_quarantine_too(tmp_path, fmt):
    path = write_jsonl(tmp_path / "docs.jsonl", DOCUMENTS, [b'{"text": 5}\n'])
    folder = tmp_path / "out"
    curate(path, folder, *KEEP, f"output.format={fmt}", "stages.length_filter.min_chars=30")
    shown = thresher("inspect", str(folder), "--rows", "1").stdout
    assert f"format={fmt}" in shown and "row 0" in shown and "document 0" in shown
    rejects = thresher("inspect", str(folder), "--rejects", "length_filter", "--rows", "1").stdout
    assert "rejected row 0" in rejects and "drop_reason: too_short" in rejects
    quarantine = thresher("inspect", str(folder), "--quarantine").stdout
    assert "quarantined row 0" in quarantine and "error: is int, expected a string" in quarantine
    unknown = thresher("inspect", str(folder), "--rejects", "nope", check=False)
    assert unknown.returncode == 2 and "stages with rejects: length_filter" in unknown.stderr
    html = (folder / "report.html").read_text()
    assert "document 1" in html and "too_short" in html and "n_chars" in html
    thresher("report", str(folder))


def test_trainers_views_read_parquet_and_jsonl(tmp_path):
    from train.data import hf_dataset, open_dataset

    for fmt in FORMATS:
        folder, _ = dataset(tmp_path, "chat", fmt)
        view = hf_dataset(open_dataset(folder, ["chat"]), ["messages"])
        assert len(view) == len(ALPACA) and view[0]["messages"][0] == {"role": "user", "content": "Say 0 in words."}
        pairs, _ = dataset(tmp_path, "preference", fmt)
        view = hf_dataset(open_dataset(pairs, ["preference"]), ["prompt", "chosen", "rejected"])
        assert view[3]["chosen"] == [{"role": "assistant", "content": "I pick 3, gladly."}]


def test_decontamination_reads_an_evaluation_dataset_in_any_format(tmp_path):
    eval_rows = [{"text": "the quick brown fox jumps over the lazy dog near the river bank today"}]
    evaluation = curate(
        write_jsonl(tmp_path / "eval.jsonl", eval_rows), tmp_path / "eval", *KEEP, "output.format=jsonl"
    )
    assert evaluation.format == "jsonl"
    train = [{"text": "intro " + eval_rows[0]["text"] + " outro " * 40}, {"text": "clean text " * 40}]
    manifest = curate(
        write_jsonl(tmp_path / "train.jsonl", train),
        tmp_path / "out",
        "pipeline=clean",
        "+stage@stages.decontaminate=decontaminate",
        f"stages.decontaminate.eval_paths=[{tmp_path / 'eval'}]",
    )
    assert manifest.stage("decontaminate").dropped == {"contaminated": 1}


def test_an_unknown_output_format_is_a_config_error(tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", DOCUMENTS)
    with pytest.raises(ConfigError, match="output.format: 'csv' is not one of: arrow, parquet, jsonl"):
        curate(path, tmp_path / "x", "output.format=csv")


def test_manifests_from_before_output_format_read_as_arrow(tmp_path):
    folder, manifest = dataset(tmp_path, "documents", "arrow")
    data = json.loads((folder / "manifest.json").read_text())
    del data["format"], data["arrow_schema"]
    old = Manifest.from_json(data)
    assert old.format == "arrow" and old.data_schema(folder).names == [f["name"] for f in manifest.schema]


def test_compare_reads_datasets_of_every_format_side_by_side(tmp_path):
    folders = {fmt: dataset(tmp_path, "documents", fmt)[0] for fmt in FORMATS}
    rows = Manifest.read(folders["arrow"]).rows
    page = tmp_path / "cmp.html"
    thresher(
        "report", str(folders["arrow"]), "--compare", str(folders["parquet"]), str(folders["jsonl"]), "--out", str(page)
    )
    composition = page.read_text().split("<td>docs</td>")[1].split("</tr>")[0]
    assert composition.count(f'<td class="n">{rows}</td>') == 3  # the rows of source `docs`, in each dataset
