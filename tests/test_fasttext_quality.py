"""fastText quality classifier: train on real labelled web text, then score and filter with it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from curate.errors import ThresherError
from curate.stages.fasttext_quality import FastTextQualityFilter, binary_metrics, roc_auc, train_fasttext
from tests.conftest import curate, read_dataset, write_jsonl
from tests.quality_helpers import run

SMALL = [
    "stages.train_quality_classifier.bucket=20000",
    "stages.train_quality_classifier.dim=32",
    "stages.train_quality_classifier.epoch=25",
    "stages.train_quality_classifier.lr=0.5",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier trained on dclm_quality_labels (499 real web snippets labelled by people)."""
    from tests.conftest import SHARED_DATA

    data = SHARED_DATA / "dclm_quality_labels"
    if not data.is_dir():
        pytest.skip("../shared/data is not available")
    out = tmp_path_factory.mktemp("clf") / "out"
    manifest = curate([data], out, "pipeline=train_quality_classifier", *SMALL)
    return data, out, manifest


def test_training_reports_held_out_metrics_and_saves_a_model_with_its_manifest(trained):
    _, out, manifest = trained
    folder = out / "stages" / "train_quality_classifier"
    model = json.loads((folder / "model.json").read_text())
    assert (folder / "model.bin").stat().st_size == model["model_bytes"]
    assert model["labels"] == {"positive": "hq", "negative": "lq"}
    assert model["preprocess"] == {"mode": "words", "lowercase": True, "max_chars": 10_000}
    rows = model["rows"]
    assert sum(rows["train"].values()) + sum(rows["valid"].values()) == 499
    metrics = model["metrics_valid"]
    assert metrics["documents"] == sum(rows["valid"].values()) > 30
    # held-out quality on real data: better than the majority class (~54%)
    assert metrics["accuracy"] >= 0.65 and metrics["roc_auc"] >= 0.7
    stage = next(s for s in manifest.stages if s.name == "train_quality_classifier")
    assert stage.details["metrics_valid"] == metrics
    table = read_dataset(out)
    assert table.num_rows == 499
    assert table.column("quality_split").to_pylist().count("valid") == metrics["documents"]
    assert sorted(set(table.column("quality_label").to_pylist())) == [0, 1]


def test_training_is_deterministic(trained, tmp_path):
    data, out, _ = trained
    again = curate([data], tmp_path / "again", "pipeline=train_quality_classifier", *SMALL)
    first = json.loads((out / "stages" / "train_quality_classifier" / "model.json").read_text())
    second = json.loads((tmp_path / "again" / "stages" / "train_quality_classifier" / "model.json").read_text())
    assert first["sha256"] == second["sha256"]
    assert again.stages[0].details["metrics_valid"] == first["metrics_valid"]


def test_filter_scores_with_the_trained_model_and_keeps_by_threshold(trained, tmp_path):
    data, out, _ = trained
    model = out / "stages" / "train_quality_classifier" / "model.bin"
    manifest = curate(
        [data],
        tmp_path / "scored",
        "pipeline=clean",
        "~stages.normalize",
        "~stages.length_filter",
        "+stage@stages.quality_classifier=quality_classifier",
        f"stages.quality_classifier.model_path='{model}'",
        "stages.quality_classifier.min_score=0.5",
    )
    kept, dropped = read_dataset(tmp_path / "scored"), read_dataset(tmp_path / "scored", "rejects")
    assert kept.num_rows + dropped.num_rows == 499 == manifest.rows_in
    assert min(kept.column("quality_score").to_pylist()) >= 0.5
    assert max(dropped.column("quality_score").to_pylist()) < 0.5
    assert set(dropped.column("drop_reason").to_pylist()) == {"quality_low_score"}
    # the labels people gave agree with the score on most documents
    labels = [json.loads(m)["label"] for m in kept.column("meta").to_pylist()]
    assert sum(labels) / len(labels) > 0.6


def test_top_fraction_keeps_exactly_the_best(trained, tmp_path):
    data, out, _ = trained
    model = out / "stages" / "train_quality_classifier" / "model.bin"
    curate(
        [data],
        tmp_path / "top",
        "pipeline=clean",
        "~stages.normalize",
        "~stages.length_filter",
        "+stage@stages.quality_classifier=quality_classifier",
        f"stages.quality_classifier.model_path='{model}'",
        "+stage@stages.top_fraction=top_fraction",
        "stages.top_fraction.fraction=0.2",
        "executor.task_mb=0.3",
    )
    kept, dropped = read_dataset(tmp_path / "top"), read_dataset(tmp_path / "top", "rejects")
    assert kept.num_rows == math.ceil(0.2 * 499)
    assert min(kept.column("quality_score").to_pylist()) >= max(dropped.column("quality_score").to_pylist())
    assert set(dropped.column("drop_reason").to_pylist()) == {"below_top_fraction"}


def test_labels_from_sources_and_rows_without_labels(tmp_path, shared_data):
    wiki = shared_data / "wikipedia_sample"
    c4 = shared_data / "c4_sample"
    out = tmp_path / "by_source"
    curate(
        [wiki, c4],
        out,
        "pipeline=train_quality_classifier",
        *SMALL,
        "input.text_unit=paragraph",
        "stages.train_quality_classifier.positive_sources=[wikipedia_sample]",
    )
    table = read_dataset(out)
    by_source = dict(zip(table.column("source").to_pylist(), table.column("quality_label").to_pylist()))
    assert by_source == {"wikipedia_sample": 1, "c4_sample": 0}

    rows = [
        {"text": f"document number {i} with some words", "label": ["hq", "lq", "maybe", None][i % 4]} for i in range(40)
    ]
    write_jsonl(tmp_path / "in" / "mixed.jsonl", rows)
    curate(tmp_path / "in", tmp_path / "mixed", "pipeline=train_quality_classifier", *SMALL)
    dropped = read_dataset(tmp_path / "mixed", "rejects")
    assert dropped.num_rows == 20 and set(dropped.column("drop_reason").to_pylist()) == {"no_label"}


def test_one_class_only_is_a_clear_error(tmp_path):
    write_jsonl(tmp_path / "in" / "one.jsonl", [{"text": f"text {i}", "label": 1} for i in range(30)])
    with pytest.raises(ThresherError, match="positive and negative"):
        curate(tmp_path / "in", tmp_path / "out", "pipeline=train_quality_classifier", *SMALL)


def test_any_fasttext_model_with_its_own_labels(tmp_path):
    rng = np.random.default_rng(0)
    good_words = "results study published journal reviewed discussed evidence method analysis data".split()
    bad_words = "click buy now cheap deals free shipping best price offer".split()
    lines = [
        f"__label__{label} " + " ".join(rng.choice(words, 12))
        for _ in range(100)
        for label, words in (("good", good_words), ("bad", bad_words))
    ]
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    train_fasttext(
        train,
        tmp_path / "user.bin",
        {"epoch": 10, "lr": 0.5, "bucket": 10_000, "dim": 16, "wordNgrams": 2, "thread": 1, "seed": 0, "verbose": 0},
    )
    good, bad = " ".join(good_words), " ".join(bad_words)
    stage = FastTextQualityFilter(model_path=str(tmp_path / "user.bin"), positive_label="good", min_score=0.5)
    stage.validate()
    reasons, scores = run(stage, [good + " again", bad + " again"])
    assert reasons == [None, "quality_low_score"]
    assert scores["quality_score"][0] > 0.5 > scores["quality_score"][1]
    with pytest.raises(ValueError, match="positive_label"):
        FastTextQualityFilter(model_path=str(tmp_path / "user.bin"), positive_label="hq").setup()
    with pytest.raises(ValueError, match="model_path"):
        FastTextQualityFilter(model_path=str(tmp_path / "missing.bin")).validate()
    (tmp_path / "not_a_model.bin").write_bytes(b"PK\x03\x04 something else")
    with pytest.raises(ValueError, match="not a fastText model"):
        FastTextQualityFilter(model_path=str(tmp_path / "not_a_model.bin")).validate()


def test_metrics():
    labels = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.6, 0.4, 0.7, 0.3, 0.1])
    metrics = binary_metrics(labels, scores)
    assert metrics["confusion"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 2}
    assert metrics["precision"] == metrics["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert roc_auc(labels, scores) == pytest.approx(6 / 9)
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.3])) is None
