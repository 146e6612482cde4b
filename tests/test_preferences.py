"""Preference pairs: checking ready-made pairs (HH-RLHF, DPO demos) and building pairs from ranked
responses (Self-Instruct's six models on the same 252 prompts), in trl's conversational format."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
from conftest import curate, read_dataset, write_jsonl
from rouge_score import rouge_scorer

from curate.manifest import Manifest

PREDICTIONS = "self_instruct/*_predictions.jsonl.gz"


def prediction_files(shared_data) -> list:
    """Each model's file as its own input entry, so that its source is the model (a glob is one source)."""
    return sorted(shared_data.glob(PREDICTIONS))


def test_hh_rlhf_pairs_are_checked(tmp_path, shared_data):
    source = shared_data / "hh_rlhf/harmless-base_test.jsonl.gz"
    shutil.copy(source, tmp_path / "again.jsonl.gz")  # the same pairs twice: the copies are duplicates
    manifest = curate(
        [source, tmp_path / "again.jsonl.gz"],
        tmp_path / "out",
        "pipeline=preferences",
        "input.records=hh_rlhf",
        "executor.task_mb=0.5",
    )
    stage = manifest.stages[0]
    assert manifest.quarantined == 18 and stage.rows_in == 2 * 2303
    assert stage.dropped == {"empty_response": 8, "duplicate": 2299}
    assert manifest.rows == 2299 and stage.consumed == stage.generated == 0
    rows = read_dataset(tmp_path / "out")
    assert rows.schema.names == ["id", "prompt", "chosen", "rejected", "source", "meta"]
    rejects = read_dataset(tmp_path / "out", "rejects").to_pylist()
    empty = [r for r in rejects if r["drop_reason"] == "empty_response"]
    assert all(not r["chosen"][-1]["content"] or not r["rejected"][-1]["content"] for r in empty)


def test_pairs_load_in_trl(tmp_path, shared_data):
    import datasets
    from transformers import AutoTokenizer
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    from curate.llm.models import model_path

    curate(
        shared_data / "llamafactory_pref_demo/dpo_en_demo.json.gz",
        tmp_path / "out",
        "pipeline=preferences",
        "input.records=dpo",
    )
    manifest = Manifest.read(tmp_path / "out")
    dataset = datasets.Dataset.from_file(str(tmp_path / "out" / manifest.shards[0].path))
    example = dataset[0]
    assert is_conversational(example)
    tokenizer = AutoTokenizer.from_pretrained(model_path("smollm2-135m-instruct"))
    text = maybe_apply_chat_template({k: example[k] for k in ("prompt", "chosen", "rejected")}, tokenizer)
    assert text["prompt"].endswith("<|im_start|>assistant\n") and text["chosen"].strip() and text["rejected"].strip()


def test_pairs_from_six_models_ranked_by_reference_rouge(tmp_path, shared_data):
    manifest = curate(
        prediction_files(shared_data),
        tmp_path / "out",
        "pipeline=preferences",
        "input.records=responses",
        "stages.preference_pairs.rank_by=reference_rouge",
    )
    stage, details = manifest.stages[0], manifest.stages[0].details
    assert manifest.rows_in == 6 * 252 and details["prompts"] == 252 and details["candidates"] == 1512
    assert stage.rows_in + stage.generated == stage.rows_out + sum(stage.dropped.values()) + stage.consumed
    assert stage.dropped["empty_response"] == 51  # the models' empty answers (48 from davinci-t0-ft)
    pairs = read_dataset(tmp_path / "out").to_pylist()
    assert len(pairs) == details["pairs"] == manifest.rows
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    predictions = {}
    for path in sorted(shared_data.glob(PREDICTIONS)):
        for line in gzip.open(path):
            record = json.loads(line)
            predictions[(record["instruction"].strip(), record["response"].strip())] = record["target"]
    for pair in pairs[:200]:
        meta = json.loads(pair["meta"])
        assert meta["chosen_score"] > meta["rejected_score"] and meta["chosen_source"] != meta["rejected_source"]
        instruction = pair["prompt"][0]["content"].split("\n\n")[0]
        chosen = pair["chosen"][0]["content"]
        target = predictions[next(k for k in predictions if k[1] == chosen and instruction.startswith(k[0][:40]))]
        assert meta["chosen_score"] == scorer.score(target, chosen)["rougeL"].fmeasure
    per_prompt = {}
    for pair in pairs:
        per_prompt.setdefault(json.dumps(pair["prompt"]), set()).update(
            (pair["chosen"][0]["content"], pair["rejected"][0]["content"])
        )
    assert max(len(v) for v in per_prompt.values()) <= 6

    best = curate(
        prediction_files(shared_data),
        tmp_path / "best",
        "pipeline=preferences",
        "input.records=responses",
        "stages.preference_pairs.rank_by=reference_rouge",
        "stages.preference_pairs.pairing=best_vs_worst",
    )
    assert best.rows <= 252 and best.rows > 200


def test_generated_pairs_do_not_depend_on_workers(tmp_path, shared_data):
    options = (
        "pipeline=preferences",
        "input.records=responses",
        "stages.preference_pairs.rank_by=reference_rouge",
        "executor.task_mb=0.01",
    )
    one = curate(str(shared_data / PREDICTIONS), tmp_path / "w1", *options, "executor.workers=1")
    two = curate(str(shared_data / PREDICTIONS), tmp_path / "w2", *options, "executor.workers=2")
    assert one.tasks == 6 and len(one.shards) > 1
    assert [s.sha256 for s in one.shards + one.rejects] == [s.sha256 for s in two.shards + two.rejects]


def test_k_ranked_responses_all_pairs_ties_and_length_ratio(tmp_path):
    records = [
        {
            "prompt": "Name a colour.",
            "responses": [
                {"text": "Red.", "score": 9},
                {"text": "Blue.", "score": 9},
                {"text": "A dog.", "score": 2},
                {"text": "", "score": 1},
            ],
        },
        {"prompt": "Say hi.", "responses": ["Hello there, nice to meet you!", "Hi.", "No."]},  # ranked best first
        {"prompt": "Add 2+2.", "responses": [{"text": "4", "score": 5}, {"text": "4", "score": 1}]},
    ]
    write_jsonl(tmp_path / "k.jsonl", records)
    manifest = curate(
        tmp_path / "k.jsonl",
        tmp_path / "out",
        "pipeline=preferences",
        "input.records=ranked_responses",
        "stages.preference_pairs.max_length_ratio=5",
    )
    details = manifest.stages[0].details
    pairs = read_dataset(tmp_path / "out").to_pylist()
    got = {(p["prompt"][0]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs}
    assert got == {
        ("Name a colour.", "Red.", "A dog."),
        ("Name a colour.", "Blue.", "A dog."),
        ("Say hi.", "Hi.", "No."),
    }
    assert details["tied_pairs_skipped"] == 1  # Red. vs Blue.
    assert details["pairs_dropped"] == {"length_ratio": 2}  # the long greeting vs "Hi." and "No."
    assert manifest.stages[0].consumed == 2 and manifest.stages[0].dropped.get("no_pair") == 1


def test_source_order_and_reward_model(tmp_path):
    import torch
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    from curate.llm.models import model_path
    from tests.train_fixtures import tiny_llama_config

    rows = []
    for i in range(4):
        rows += [
            {"prompt": f"Question {i}?", "response": f"Good answer {i}.", "model": "strong"},
            {"prompt": f"Question {i}?", "response": f"Bad answer {i}!", "model": "weak"},
        ]
    for name in ("strong", "weak"):
        write_jsonl(tmp_path / "in" / f"{name}.jsonl", [r for r in rows if r["model"] == name])
    manifest = curate(
        tmp_path / "in",
        tmp_path / "order",
        "pipeline=preferences",
        "input.records=responses",
        "stages.preference_pairs.rank_by=source_order",
        "stages.preference_pairs.source_order=[strong,weak]",
    )
    assert manifest.stages[0].dropped == {"unranked": 8}  # a folder is one source ("in"), not a listed one
    manifest = curate(
        [tmp_path / "in" / "weak.jsonl", tmp_path / "in" / "strong.jsonl"],
        tmp_path / "order2",
        "pipeline=preferences",
        "input.records=responses",
        "stages.preference_pairs.rank_by=source_order",
        "stages.preference_pairs.source_order=[strong,weak]",
    )
    pairs = read_dataset(tmp_path / "order2").to_pylist()
    assert len(pairs) == 4 and all(p["chosen"][0]["content"].startswith("Good") for p in pairs)

    tokenizer = AutoTokenizer.from_pretrained(model_path("smollm2-135m-instruct"))
    torch.manual_seed(0)
    LlamaForSequenceClassification(
        tiny_llama_config(
            tokenizer.vocab_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    ranked = curate(
        tmp_path / "in",
        tmp_path / "rm_pairs",
        "pipeline=preferences",
        "input.records=responses",
        "stages.preference_pairs.rank_by=reward_model",
        f"stages.preference_pairs.reward_model={tmp_path / 'rm'}",
    )
    pairs = read_dataset(tmp_path / "rm_pairs").to_pylist()
    assert ranked.rows == 4 and all(
        json.loads(p["meta"])["chosen_score"] > json.loads(p["meta"])["rejected_score"] for p in pairs
    )
    checked = curate(
        tmp_path / "rm_pairs",
        tmp_path / "checked",
        "pipeline=preferences",
        f"stages.preference_pairs.reward_model={tmp_path / 'rm'}",
        "stages.preference_pairs.min_reward_margin=1000",
    )
    assert checked.stages[0].dropped == {"reward_disagrees": 4}
    meta = json.loads(read_dataset(tmp_path / "checked", "rejects").to_pylist()[0]["meta"])
    assert meta["reward_chosen"] > meta["reward_rejected"]


def test_needs_pairs_or_responses(tmp_path):
    from curate.errors import ConfigError

    write_jsonl(tmp_path / "docs.jsonl", [{"text": "plain documents"}])
    with pytest.raises(ConfigError, match="needs preference rows"):
        curate(tmp_path / "docs.jsonl", tmp_path / "out", "pipeline=preferences")
