"""Mixing: weights met, epoch caps respected, deterministic, everything unsampled kept as rejects;
and --multirun sweeps write one dataset per point."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import curate, read_dataset, thresher, write_jsonl

from curate.errors import ConfigError, ThresherError
from curate.manifest import Manifest


def sources(tmp_path, sizes: dict[str, int]) -> list:
    """One curated dataset per source, with `n` documents each."""
    folders = []
    for name, n in sizes.items():
        rows = [{"id": f"{name}{i}", "text": f"{name} document {i} " + "word " * (20 + i % 7)} for i in range(n)]
        write_jsonl(tmp_path / "raw" / f"{name}.jsonl", rows)
        curate(tmp_path / "raw" / f"{name}.jsonl", tmp_path / name, f"input.source={name}", "executor.workers=1")
        folders.append(tmp_path / name)
    return folders


def test_weights_and_epoch_caps_in_documents(tmp_path):
    inputs = sources(tmp_path, {"small": 10, "big": 100, "other": 5})
    manifest = curate(
        inputs,
        tmp_path / "mix",
        "pipeline=mix",
        "stages.mix.unit=documents",
        "stages.mix.weights=[small:0.5,big:0.5]",
        "stages.mix.epoch_caps=[small:4]",
    )
    rows = read_dataset(tmp_path / "mix").to_pylist()
    counts = Counter(r["source"] for r in rows)
    # total = min(4 * 10 / 0.5, 1 * 100 / 0.5) = 80: small repeated 4 times, 40 of big's 100
    assert counts == {"small": 40, "big": 40}
    small = Counter(r["id"] for r in rows if r["source"] == "small")
    assert set(small.values()) == {4}
    assert sorted({r["mix_epoch"] for r in rows if r["source"] == "small"}) == [0, 1, 2, 3]
    details = manifest.stages[0].details
    assert details["sources"]["small"]["epochs"] == 4.0 and details["sources"]["big"]["epochs"] == 0.4
    assert details["unweighted_sources"] == ["other"]
    assert manifest.stages[0].dropped == {"mix_not_sampled": 60, "mix_source_not_weighted": 5}
    rejects = read_dataset(tmp_path / "mix", "rejects")
    assert rejects.num_rows == 65 and len(set(rejects.column("id").to_pylist())) == 65


def test_token_weights_on_real_data_and_determinism(tmp_path, shared_data):
    for name, path, extra in (("web", "c4_sample", []), ("qa", "stackexchange_beer", ["input.text_field=Body"])):
        curate(shared_data / path, tmp_path / name, f"input.source={name}", *extra)
    options = ("pipeline=mix", "stages.mix.weights=[web:0.6,qa:0.4]")
    manifest = curate([tmp_path / "web", tmp_path / "qa"], tmp_path / "a", *options)
    shares = {s: v["share"] for s, v in manifest.stages[0].details["sources"].items()}
    assert shares["web"] == pytest.approx(0.6, abs=0.01) and shares["qa"] == pytest.approx(0.4, abs=0.01)
    again = curate([tmp_path / "web", tmp_path / "qa"], tmp_path / "b", *options)
    assert [s.sha256 for s in again.shards] == [s.sha256 for s in manifest.shards]
    reseeded = curate([tmp_path / "web", tmp_path / "qa"], tmp_path / "c", *options, "stages.mix.seed=1")
    assert read_dataset(tmp_path / "c").column("id") != read_dataset(tmp_path / "a").column("id")
    assert reseeded.stages[0].details["sources"]["web"]["epochs"] == 1.0


def test_total_beyond_the_caps_reports_the_shortfall(tmp_path):
    inputs = sources(tmp_path, {"a": 10, "b": 10})
    manifest = curate(
        inputs,
        tmp_path / "mix",
        "pipeline=mix",
        "stages.mix.unit=documents",
        "stages.mix.weights=[a:0.5,b:0.5]",
        "stages.mix.total=30",
        "stages.mix.epoch_caps=[a:2]",
    )
    details = manifest.stages[0].details["sources"]
    assert details["a"]["documents"] == 15 and details["b"]["documents"] == 10
    assert details["b"]["short_by"] == 5.0 and details["a"]["short_by"] == 0.0


def test_mix_errors(tmp_path):
    inputs = sources(tmp_path, {"a": 3})
    with pytest.raises(ConfigError, match=r"stages.mix.weights: give at least one"):
        curate(inputs, tmp_path / "m1", "pipeline=mix")
    with pytest.raises(ConfigError, match=r"stages.mix.weights: 'a-1' is not 'source:number'"):
        curate(inputs, tmp_path / "m2", "pipeline=mix", "stages.mix.weights=[a-1]")
    with pytest.raises(ThresherError, match=r"source 'b' has a weight but no rows in the input \(sources present: a\)"):
        curate(inputs, tmp_path / "m3", "pipeline=mix", "stages.mix.weights=[a:1,b:1]")


def test_multirun_sweep_writes_one_dataset_per_point(tmp_path):
    inputs = sources(tmp_path, {"a": 20, "b": 20})
    thresher(
        "curate",
        "--multirun",
        "pipeline=mix",
        f"input.paths=[{inputs[0]},{inputs[1]}]",
        f"output.dir={tmp_path / 'sweep'}",
        "stages.mix.unit=documents",
        "executor.workers=1",
        "stages.mix.weights=[a:0.5,b:0.5],[a:0.8,b:0.2]",
    )
    points = sorted(p for p in (tmp_path / "sweep").iterdir() if (p / "manifest.json").is_file())
    assert [p.name.split("_")[0] for p in points] == ["0", "1"]
    shares = [Manifest.read(p).stages[0].details["sources"]["a"]["share"] for p in points]
    assert shares == [0.5, 0.8]


def test_compare_report_puts_datasets_side_by_side(tmp_path):
    inputs = sources(tmp_path, {"a": 20, "b": 20})
    for weights, out in (("[a:0.5,b:0.5]", "even"), ("[a:0.8,b:0.2]", "skewed")):
        curate(inputs, tmp_path / out, "pipeline=mix", "stages.mix.unit=documents", f"stages.mix.weights={weights}")
    path = thresher(
        "report", str(tmp_path / "even"), "--compare", str(tmp_path / "skewed"), "--out", str(tmp_path / "cmp.html")
    ).stdout.strip()
    html = (tmp_path / "cmp.html").read_text()
    assert path.endswith("cmp.html") and "stages.mix.weights" in html  # the option the runs differ in
    assert "[&#39;a:0.5&#39;, &#39;b:0.5&#39;]" in html and "data:image/png;base64," in html
    even = read_dataset(tmp_path / "even").column("source").to_pylist()
    assert html.count(f'<td class="n">{even.count("a")}</td>') >= 1
