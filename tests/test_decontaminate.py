"""Decontamination against evaluation sets given as files: n-grams planted from a real benchmark
(GSM8K questions) are found through case and punctuation changes; shorter overlaps are not."""

from __future__ import annotations

import gzip
import json

import decontamination_set
import pytest
from conftest import curate, read_dataset, write_jsonl
from test_dedup import base_texts

from curate.errors import ConfigError


@pytest.fixture
def benchmark(shared_data, tmp_path):
    """A few GSM8K questions and answers as an evaluation file (jsonl with two fields)."""
    with gzip.open(shared_data / "alpacadatacleaned_extensions" / "gsm_8k_train.json.gz", "rt") as handle:
        records = json.load(handle)[:50]
    rows = [{"question": r["instruction"], "answer": r["output"]} for r in records]
    return write_jsonl(tmp_path / "eval" / "gsm8k.jsonl", rows), rows


def training_corpus(tmp_path, question: str):
    words = question.split()
    assert len(words) >= 20
    filler = base_texts(6, words=120, seed=4)
    planted = " ".join(words[2:16]).upper().replace(" ", " , ")  # 14 words, other case and punctuation
    near_miss = " ".join(words[2:14])  # 12 words: below a 13-gram
    rows = [
        {"id": "clean", "text": filler[0]},
        {"id": "contaminated", "text": filler[1] + " " + planted + " " + filler[2]},
        {"id": "near-miss", "text": filler[3] + " " + near_miss + " " + filler[4]},
        {"id": "mostly-benchmark", "text": "Solve: " + question},
    ]
    return write_jsonl(tmp_path / "train.jsonl", rows), filler, planted


def run(tmp_path, name, eval_file, data, *options):
    return curate(
        data,
        tmp_path / name,
        "pipeline=clean",
        "~stages.normalize",
        "~stages.length_filter",
        "+stage@stages.decontaminate=decontaminate",
        f"stages.decontaminate.eval_paths=[{eval_file}]",
        "stages.decontaminate.eval_fields=[question,answer]",
        *options,
    )


def test_documents_sharing_a_benchmark_13_gram_are_dropped(tmp_path, benchmark):
    eval_file, rows = benchmark
    data, _, _ = training_corpus(tmp_path, rows[7]["question"])
    manifest = run(tmp_path, "drop", eval_file, data)
    kept = read_dataset(tmp_path / "drop")
    rejects = read_dataset(tmp_path / "drop", "rejects")
    assert sorted(kept.column("id").to_pylist()) == ["clean", "near-miss"]
    assert sorted(rejects.column("id").to_pylist()) == ["contaminated", "mostly-benchmark"]
    scores = dict(zip(rejects.column("id").to_pylist(), rejects.column("contaminated_ngrams").to_pylist()))
    assert scores["contaminated"] == 2  # 14 planted words hold two 13-grams
    assert manifest.stages[0].dropped == {"contaminated": 2}


def test_flag_keeps_everything_with_a_score(tmp_path, benchmark):
    eval_file, rows = benchmark
    data, _, _ = training_corpus(tmp_path, rows[7]["question"])
    run(tmp_path, "flag", eval_file, data, "stages.decontaminate.action=flag")
    kept = read_dataset(tmp_path / "flag")
    scores = dict(zip(kept.column("id").to_pylist(), kept.column("contaminated_ngrams").to_pylist()))
    assert scores["clean"] == scores["near-miss"] == 0 and scores["contaminated"] == 2
    assert scores["mostly-benchmark"] > 0


def test_cut_removes_the_span_and_drops_what_is_too_short(tmp_path, benchmark):
    eval_file, rows = benchmark
    data, filler, planted = training_corpus(tmp_path, rows[7]["question"])
    run(tmp_path, "cut", eval_file, data, "stages.decontaminate.action=cut")
    kept = {r["id"]: r["text"] for r in read_dataset(tmp_path / "cut").to_pylist()}
    assert set(kept) == {"clean", "near-miss", "contaminated"}
    text = kept["contaminated"]
    assert planted not in text and "\n\n" in text
    assert text.startswith(filler[1][:100]) and text.endswith(filler[2][-100:])
    assert len(text) < len(filler[1]) + len(filler[2])  # 200 characters removed on each side
    rejects = read_dataset(tmp_path / "cut", "rejects")
    assert rejects.column("id").to_pylist() == ["mostly-benchmark"]
    assert rejects.column("drop_reason").to_pylist() == ["contaminated"]


def test_plain_text_evaluation_files_and_missing_options(tmp_path, benchmark):
    _, rows = benchmark
    text_file = tmp_path / "eval.txt"
    text_file.write_text("\n".join(r["question"] for r in rows) + "\n")
    data, _, _ = training_corpus(tmp_path, rows[7]["question"])
    run(tmp_path, "text", text_file, data, "stages.decontaminate.eval_fields=[text]")
    assert sorted(read_dataset(tmp_path / "text").column("id").to_pylist()) == ["clean", "near-miss"]
    # a held-out set curated by Thresher itself (a dataset folder) is an evaluation set too
    held = tmp_path / "held"
    curate(text_file, held, "pipeline=clean", "input.text_unit=line", "~stages.length_filter")
    run(tmp_path, "dataset", held, data, "stages.decontaminate.eval_fields=[text]")
    assert sorted(read_dataset(tmp_path / "dataset").column("id").to_pylist()) == ["clean", "near-miss"]
    with pytest.raises(ConfigError, match="stages.decontaminate.eval_paths: required value is missing"):
        curate(data, tmp_path / "missing", "+stage@stages.decontaminate=decontaminate")
    with pytest.raises(ConfigError, match="stages.decontaminate.eval_paths: '.*nowhere.jsonl' does not exist"):
        run(tmp_path, "bad", tmp_path / "nowhere.jsonl", data)
    with pytest.raises(
        ConfigError, match=r"eval_fields: none of questoin holds text .*\(fields found: answer, question\)"
    ):
        run(tmp_path, "typo", benchmark[0], data, "stages.decontaminate.eval_fields=[questoin]")


def test_tulu3_rule_needs_more_than_half_of_an_items_words(tmp_path):
    item = " ".join(f"word{i}" for i in range(20))  # an evaluation item of 20 words
    eval_file = write_jsonl(tmp_path / "eval.jsonl", [{"text": item}])
    words = item.split()
    filler = base_texts(2, words=60, seed=5)
    rows = [
        {"id": "half", "text": filler[0] + " " + " ".join(words[:10]) + " " + filler[1]},  # 10 of 20: not more
        {"id": "more", "text": filler[0] + " " + " ".join(words[:11]) + " " + filler[1]},  # 11 of 20
        {"id": "two_pieces", "text": " ".join(words[:8]) + " " + filler[0] + " " + " ".join(words[12:20])},
    ]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    curate(
        data,
        tmp_path / "out",
        "pipeline=clean",
        "~stages.normalize",
        "~stages.length_filter",
        "+stage@stages.decontaminate=decontaminate_tulu3",
        f"stages.decontaminate.eval_paths=[{eval_file}]",
        "stages.decontaminate.action=flag",
    )
    coverage = {r["id"]: r["contamination_coverage"] for r in read_dataset(tmp_path / "out").to_pylist()}
    assert coverage == {"half": 0.5, "more": pytest.approx(0.55), "two_pieces": pytest.approx(0.8)}
    with pytest.raises(ConfigError, match="action: cut removes matching spans; with match=coverage"):
        run(tmp_path, "cut", eval_file, data, "stages.decontaminate.match=coverage", "stages.decontaminate.action=cut")


def flagged_by(tmp_path, shared_data, stage: str) -> dict[str, float]:
    """Each planted-set document's share of flagged, per variant, by `stage` (recall and false positives)."""
    evaluation, training = decontamination_set.build(shared_data)
    eval_file = write_jsonl(tmp_path / "eval.jsonl", evaluation)
    data = write_jsonl(tmp_path / "train.jsonl", training)
    curate(
        data,
        tmp_path / stage,
        "pipeline=clean",
        "~stages.normalize",
        "~stages.length_filter",
        f"+stage@stages.decontaminate={stage}",
        f"stages.decontaminate.eval_paths=[{eval_file}]",
        "stages.decontaminate.action=flag",
    )
    rows = read_dataset(tmp_path / stage).to_pylist()
    if stage == "decontaminate_tulu3":
        marks = {r["id"]: r["contamination_coverage"] > 0.5 for r in rows}
    else:
        marks = {r["id"]: r["contaminated_ngrams"] > 0 for r in rows}
    return decontamination_set.rates(marks, training)


def test_recall_of_each_rule_on_planted_evaluation_items(tmp_path, shared_data):
    """The figures of docs/dedup.md (benchmarks/decontamination_recall.py writes them)."""
    tulu = flagged_by(tmp_path, shared_data, "decontaminate_tulu3")
    ngram13 = flagged_by(tmp_path, shared_data, "decontaminate")
    assert tulu["verbatim"] == ngram13["verbatim"] == 1.0
    for variant in ("embedded", "rewrapped", "paraphrased"):  # normalisation undoes case, punctuation, line breaks
        assert tulu[variant] == tulu["embedded"] >= 0.99 and ngram13[variant] == ngram13["embedded"] >= 0.93
    assert tulu["partial"] >= 0.93 and ngram13["partial"] >= 0.8
    assert all(tulu[v] >= ngram13[v] for v in decontamination_set.POSITIVE)  # 8-grams find shorter items
    assert tulu["fragment"] == ngram13["fragment"] == 0.0  # a quoted phrase of 10 words is not the item
    assert tulu["clean"] == tulu["neighbours"] == ngram13["clean"] == ngram13["neighbours"] == 0.0


def test_chat_rows_are_checked_on_every_turn(tmp_path, benchmark):
    """Chat rows (`columns=[messages]`): a benchmark question in a user turn or in an answer
    contaminates; n-grams do not span turns; the Tülu 3 rule counts a conversation's turns together."""
    eval_file, items = benchmark
    question, answer = items[3]["question"], items[5]["answer"]
    filler = base_texts(4, words=40, seed=7)
    words = items[9]["question"].split()
    rows = [
        {"id": "in_prompt", "instruction": "Please solve: " + question, "output": filler[0]},
        {"id": "in_answer", "instruction": filler[1], "output": "Here goes. " + answer},
        {"id": "clean", "instruction": filler[2], "output": filler[3]},
        # 13 benchmark words split 7 + 6 over the two turns: no 13-gram lies within one turn
        {"id": "across_turns", "instruction": " ".join(words[:7]), "output": " ".join(words[7:13])},
        {"id": "one_turn", "instruction": " ".join(words[:7]), "output": filler[3]},
    ]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    common = ("input.records=alpaca", "stages.decontaminate.columns=[messages]")
    manifest = run(tmp_path, "chat", eval_file, data, *common)
    assert manifest.kind == "chat" and manifest.stage("decontaminate").dropped == {"contaminated": 2}
    assert sorted(read_dataset(tmp_path / "chat").column("id").to_pylist()) == ["across_turns", "clean", "one_turn"]
    flagged = run(
        tmp_path,
        "coverage",
        eval_file,
        data,
        *common,
        "stages.decontaminate.match=coverage",
        "stages.decontaminate.ngram=6",
        "stages.decontaminate.action=flag",
    )
    coverage = {r["id"]: r["contamination_coverage"] for r in read_dataset(tmp_path / "coverage").to_pylist()}
    assert coverage["in_prompt"] == 1.0 and coverage["clean"] == 0.0
    assert coverage["across_turns"] > coverage["one_turn"] > 0  # both turns' 6-grams cover the item
    assert flagged.stage("decontaminate").rows_out == 5
    with pytest.raises(ConfigError, match="needs column 'text'.*available: id, messages"):
        run(tmp_path, "text", eval_file, data, "input.records=alpaca")  # the default checks documents' text


def test_preference_rows_are_checked_on_prompt_chosen_and_rejected(tmp_path, benchmark):
    eval_file, items = benchmark
    filler = base_texts(6, words=30, seed=8)
    rows = [
        {"id": "prompt", "prompt": items[1]["question"], "chosen": filler[0], "rejected": filler[1]},
        {"id": "chosen", "prompt": filler[2], "chosen": items[2]["answer"], "rejected": filler[3]},
        {"id": "rejected", "prompt": filler[4], "chosen": filler[5], "rejected": "No: " + items[4]["question"]},
        {"id": "clean", "prompt": filler[0], "chosen": filler[2], "rejected": filler[4]},
    ]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    columns = "stages.decontaminate.columns=[prompt,chosen,rejected]"
    manifest = run(tmp_path, "all", eval_file, data, "input.records=dpo", columns)
    assert manifest.kind == "preference" and manifest.stage("decontaminate").dropped == {"contaminated": 3}
    assert read_dataset(tmp_path / "all").column("id").to_pylist() == ["clean"]
    prompts_only = run(
        tmp_path, "prompts", eval_file, data, "input.records=dpo", "stages.decontaminate.columns=[prompt]"
    )
    assert prompts_only.stage("decontaminate").dropped == {"contaminated": 1}
    with pytest.raises(ConfigError, match="action: cut removes spans from the text column"):
        run(tmp_path, "cut", eval_file, data, "input.records=dpo", columns, "stages.decontaminate.action=cut")
