"""The quality recipes end to end through the real config tree and engine, on real web text."""

from __future__ import annotations

from curate.manifest import Manifest
from tests.conftest import compose, curate, read_dataset, write_jsonl


def test_web_heuristics_recipe_order_and_accounting(tmp_path, shared_data):
    assert list(compose(["pipeline=web_heuristics", "input.paths=[x]", "output.dir=y"]).stages) == [
        "gopher_repetition",
        "gopher_quality",
        "c4",
        "fineweb_quality",
    ]
    out = tmp_path / "web"
    manifest = curate(shared_data / "c4_sample", out, "pipeline=web_heuristics")
    kept, rejects = read_dataset(out), read_dataset(out, "rejects")
    assert manifest.rows_in == 300 == kept.num_rows + rejects.num_rows
    # every drop names its rule, prefixed by its rule set
    for stage in manifest.stages:
        prefix = stage.name.split("_")[0]
        assert all(reason.startswith(prefix) for reason in stage.dropped), stage.dropped
    assert set(rejects.column("drop_stage").to_pylist()) <= {s.name for s in manifest.stages}
    # score columns are typed and stay in the shards
    schema = {f["name"]: f["type"] for f in manifest.schema}
    assert schema["gopher_words"] == "int32" and schema["fineweb_line_punct_ratio"] == "double"
    assert schema["c4_lorem_ipsum"] == "bool"
    # kept text went through C4's line cleaning: every line ends in terminal punctuation
    for text in kept.column("text").to_pylist():
        assert all(line.endswith((".", "?", "!", '"', "'")) for line in text.split("\n"))
    html = (out / "report.html").read_text()
    assert "gopher_few_alpha_words" in html and "gopher_mean_word_length" in html


def test_web_recipe_identifies_language_first(tmp_path, shared_data):
    cfg = compose(["pipeline=web", "input.paths=[x]", "output.dir=y"])
    assert list(cfg.stages)[0] == "language" and "quality_classifier" not in cfg.stages
    foreign = write_jsonl(
        tmp_path / "in" / "foreign.jsonl",
        [
            {
                "id": "fr",
                "text": "Le conseil municipal a voté hier soir le nouveau budget de la ville. Les habitants "
                "pourront donner leur avis lors d'une réunion publique au mois de mars.",
            },
            {
                "id": "de",
                "text": "Der Gemeinderat hat gestern Abend den neuen Haushalt der Stadt beschlossen. Die "
                "Bürger können ihre Meinung im März bei einer öffentlichen Versammlung äußern.",
            },
        ],
    )
    out = tmp_path / "web"
    dolma = [
        shared_data / "dolma_test_data" / name
        for name in ("cc_en_head-0091.jsonl.gz", "provided_documents_000.json.gz")
    ]
    manifest = curate([*dolma, foreign], out, "pipeline=web")  # the text files (the folder's WARC files hold HTML)
    language = manifest.stages[0]
    assert language.name == "language" and language.dropped == {"lang_other": 2}
    rejects = read_dataset(out, "rejects")
    dropped = dict(zip(rejects.column("id").to_pylist(), rejects.column("lang").to_pylist()))
    assert dropped["fr"] == "fr" and dropped["de"] == "de"
    kept = read_dataset(out)
    assert kept.num_rows > 0 and set(kept.column("lang").to_pylist()) == {"en"}
    assert min(kept.column("lang_score").to_pylist()) > 0.65


def test_thresholds_are_overridable_from_the_command_line(tmp_path, shared_data):
    out = tmp_path / "strict"
    manifest = curate(
        shared_data / "c4_sample",
        out,
        "pipeline=web_heuristics",
        "stages.gopher_quality.min_doc_words=400",
        "~stages.c4",
        "~stages.fineweb_quality",
    )
    stage = next(s for s in manifest.stages if s.name == "gopher_quality")
    assert stage.options["min_doc_words"] == 400
    assert stage.dropped["gopher_short_doc"] > 100
    assert Manifest.read(out).config["stages"]["gopher_quality"]["min_doc_words"] == 400


def test_web_heuristics_is_deterministic_across_worker_counts(tmp_path, shared_data):
    inputs = [shared_data / "c4_sample", shared_data / "dclm_quality_labels"]
    one = curate(inputs, tmp_path / "one", "pipeline=web_heuristics", "executor.workers=1", "executor.task_mb=0.5")
    two = curate(inputs, tmp_path / "two", "pipeline=web_heuristics", "executor.workers=2", "executor.task_mb=0.5")
    assert one.tasks > 1
    assert [s.sha256 for s in one.shards] == [s.sha256 for s in two.shards]
    assert [s.sha256 for s in one.rejects] == [s.sha256 for s in two.rejects]
