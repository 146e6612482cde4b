"""Converters to chat and preference rows, on the real files in ../shared/data as they are, and
on the same records with malformed ones mixed in (quarantined with file, position and field)."""

from __future__ import annotations

import gzip
import json

import pytest
from conftest import curate, read_dataset, write_jsonl

from curate.mapping import FieldError
from curate.records import MAPPERS

KEEP = ("pipeline=clean", "~stages.normalize", "~stages.length_filter")


def records(path) -> list:
    data = gzip.open(path).read()
    return json.loads(data) if data.lstrip()[:1] == b"[" else [json.loads(line) for line in data.splitlines()]


@pytest.mark.parametrize(
    "name, path, rows, quarantined",
    [
        ("alpaca", "alpaca_en_demo/alpaca_en_demo.json.gz", 999, 0),
        ("lima", "lima/lima.json.gz", 1029, 0),
        ("self_instruct_seeds", "self_instruct/seed_tasks.jsonl.gz", 175, 0),
        ("responses", "self_instruct/davinci-t0-ft_predictions.jsonl.gz", 252, 0),
        ("hh_rlhf", "hh_rlhf/harmless-base_test.jsonl.gz", 2303, 9),  # 9 transcripts with two Assistant turns in a row
        ("dpo", "llamafactory_pref_demo/dpo_en_demo.json.gz", 300, 0),
    ],
)
def test_real_files_as_they_are(tmp_path, shared_data, name, path, rows, quarantined):
    manifest = curate(shared_data / path, tmp_path / "out", *KEEP, f"input.records={name}")
    assert manifest.rows == rows and manifest.quarantined == quarantined
    assert manifest.rows_in == rows + quarantined == len(records(shared_data / path))
    assert manifest.kind == MAPPERS[name]().kind
    table = read_dataset(tmp_path / "out")
    if manifest.kind == "chat":
        for messages in table.column("messages").to_pylist():
            roles = [m["role"] for m in messages if m["role"] != "system"]
            assert roles[0] == "user" and roles[-1] == "assistant"
            assert all(a != b for a, b in zip(roles, roles[1:]))
    else:
        for prompt, chosen, rejected in zip(*(table.column(c).to_pylist() for c in ("prompt", "chosen", "rejected"))):
            assert prompt[-1]["role"] == "user" and chosen[0]["role"] == rejected[0]["role"] == "assistant"
    if quarantined:
        bad = read_dataset(tmp_path / "out", "quarantine").to_pylist()
        assert all(q["file"].endswith(path.split("/")[-1]) and q["position"] >= 1 and q["raw"] for q in bad)
        assert all("turns must alternate" in q["error"] for q in bad)


def test_prompt_completion_on_templated_t0_data(tmp_path, shared_data):
    manifest = curate(
        shared_data / "t0_templated_prompts/t0_ag_news_templates.tar.gz",
        tmp_path / "out",
        *KEEP,
        "input.records=prompt_completion",
    )
    assert manifest.rows == 7 * 200 and manifest.quarantined == 0  # seven templates, 200 examples each
    rows = read_dataset(tmp_path / "out").to_pylist()
    assert not any("<|endoftext|>" in r["messages"][1]["content"] for r in rows)
    assert {r["messages"][1]["content"] for r in rows[:200]} <= {
        "World",
        "Sports",
        "Business",
        "Science and technology",
    }


def test_hh_rlhf_prompt_is_the_shared_history(shared_data):
    record = records(shared_data / "hh_rlhf/harmless-base_test.jsonl.gz")[0]
    row = MAPPERS["hh_rlhf"]().map(record, "x:1", "hh")
    assert record["chosen"].startswith("\n\nHuman: " + row["prompt"][0]["content"])
    assert len(row["prompt"]) % 2 == 1 and row["prompt"][-1]["role"] == "user"
    assert record["chosen"].rstrip().endswith(row["chosen"][-1]["content"])
    assert record["rejected"].rstrip().endswith(row["rejected"][-1]["content"])
    assert row["chosen"] != row["rejected"]


def test_lima_history_becomes_turns(shared_data):
    lima = records(shared_data / "lima/lima.json.gz")
    multi = next(r for r in lima if r["history"])
    row = MAPPERS["lima"]().map(multi, "x:1", "lima")
    assert len(row["messages"]) == 2 * len(multi["history"]) + 2
    assert row["messages"][0]["content"] == multi["history"][0][0]
    assert row["messages"][-1]["content"] == multi["output"].strip()


def test_bad_records_are_quarantined_with_their_field(tmp_path, shared_data):
    good = records(shared_data / "alpaca_en_demo/alpaca_en_demo.json.gz")[:20]
    bad = [
        {"instruction": "Say hi", "input": ""},  # no output
        {"instruction": ["not", "a string"], "output": "x"},
        {"instruction": "Say hi", "output": "   "},
        {"instruction": "Say hi", "output": "hi", "history": [["only one"]]},
    ]
    write_jsonl(tmp_path / "in.jsonl", good[:10] + bad + good[10:], [b'{"broken json\n'])
    manifest = curate(tmp_path / "in.jsonl", tmp_path / "out", *KEEP, "input.records=alpaca")
    assert manifest.rows == 20 and manifest.quarantined == 5
    quarantine = read_dataset(tmp_path / "out", "quarantine").to_pylist()
    found = {(q["position"], q["field"]) for q in quarantine}
    assert found == {(11, "output"), (12, "instruction"), (13, "output"), (14, "history[0]"), (25, None)}
    assert next(q for q in quarantine if q["position"] == 11)["error"] == "missing"


@pytest.mark.parametrize(
    "name, record, row",
    [
        (
            "sharegpt",
            {
                "conversations": [
                    {"from": "system", "value": "Be brief."},
                    {"from": "human", "value": "Hi"},
                    {"from": "gpt", "value": "Hello!"},
                ]
            },
            [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!")],
        ),
        (
            "messages",
            {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
            [("user", "2+2?"), ("assistant", "4")],
        ),
        (
            "dolly",
            {"instruction": "Summarise.", "context": "A long text.", "response": "Short.", "category": "summarization"},
            [("user", "Summarise.\n\nA long text."), ("assistant", "Short.")],
        ),
        (
            "prompt_completion",
            {"prompt": "Title: X\nTopic?", "completion": " Sports<|endoftext|>"},
            [("user", "Title: X\nTopic?"), ("assistant", "Sports")],
        ),
        (
            "lima",
            {"conversations": ["Q1", "A1", "Q2", "A2"], "source": "stackexchange"},
            [("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2")],
        ),
    ],
)
def test_chat_formats(name, record, row):
    out = MAPPERS[name]().map(record, "f:1", "src")
    assert [(m["role"], m["content"]) for m in out["messages"]] == row
    assert out["id"] == "f:1" and out["source"] == "src"


@pytest.mark.parametrize(
    "name, record, field",
    [
        (
            "sharegpt",
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "human", "value": "Hi?"}]},
            "conversations[1]",
        ),
        ("sharegpt", {"conversations": [{"from": "human", "value": "Hi"}]}, "conversations"),
        ("sharegpt", {"conversations": [{"from": "alien", "value": "Hi"}]}, "conversations[0].from"),
        ("messages", {"messages": "hello"}, "messages"),
        ("dolly", {"instruction": "x", "context": 3, "response": "y"}, "context"),
        ("prompt_completion", {"prompt": "x", "completion": "<|endoftext|>"}, "completion"),
        ("lima", {"conversations": ["Q1", 2]}, "conversations"),
        ("self_instruct_seeds", {"instruction": "x", "instances": [], "is_classification": False}, "instances"),
        (
            "self_instruct_seeds",
            {"instruction": "x", "instances": [{"input": "", "output": "y"}], "is_classification": "no"},
            "is_classification",
        ),
        ("hh_rlhf", {"chosen": "Human: hi", "rejected": "\n\nHuman: hi\n\nAssistant: yo"}, "chosen"),
        ("hh_rlhf", {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"}, "chosen"),
        (
            "dpo",
            {"conversations": [{"from": "human", "value": "q"}], "chosen": {"from": "gpt", "value": "a"}},
            "rejected",
        ),
        ("dpo", {"prompt": "q", "chosen": "a", "rejected": 5}, "rejected"),
        ("ranked_responses", {"prompt": "q", "responses": ["only one"]}, "responses"),
        (
            "ranked_responses",
            {"prompt": "q", "responses": [{"text": "a", "score": "high"}, {"text": "b", "score": 1}]},
            "responses[0].score",
        ),
    ],
)
def test_malformed_records_name_the_field(name, record, field):
    with pytest.raises(FieldError) as error:
        MAPPERS[name]().map(record, "f:1", "src")
    assert error.value.field == field


def test_dpo_formats_agree():
    sharegpt = {
        "conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"}],
        "chosen": {"from": "gpt", "value": "good"},
        "rejected": {"from": "gpt", "value": "bad"},
    }
    trl = {
        "prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }
    strings = {"system": "S", "prompt": "Q", "chosen": "good", "rejected": "bad"}
    rows = [MAPPERS["dpo"]().map(r, "f:1", "s") for r in (sharegpt, trl, strings)]
    assert all(
        r["prompt"] == rows[0]["prompt"] and r["chosen"] == rows[0]["chosen"] and r["rejected"] == rows[0]["rejected"]
        for r in rows
    )


def test_ranked_responses_keep_every_candidate():
    record = {
        "instruction": "Name a colour.",
        "completions": [
            {"response": "Blue.", "overall_score": 7.5, "model": "a"},
            {"response": "Dog.", "overall_score": 2, "model": "b"},
            {"response": "Red, a warm colour.", "overall_score": 9, "model": "c"},
        ],
    }
    row = MAPPERS["ranked_responses"]().map(record, "f:1", "s")
    assert row["messages"][-1]["content"] == "Red, a warm colour."
    candidates = json.loads(row["meta"])["responses"]
    assert [c["score"] for c in candidates] == [7.5, 2.0, 9.0] and candidates[1]["model"] == "b"


def test_chat_rows_load_in_trl(tmp_path, shared_data):
    import datasets
    from transformers import AutoTokenizer
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    from curate.llm.models import model_path

    manifest = curate(shared_data / "lima/lima.json.gz", tmp_path / "out", *KEEP, "input.records=lima")
    dataset = datasets.Dataset.from_file(str(tmp_path / "out" / manifest.shards[0].path))
    multi_turn = next(row for row in dataset if len(row["messages"]) > 2)
    assert is_conversational(multi_turn)
    tokenizer = AutoTokenizer.from_pretrained(model_path("smollm2-135m-instruct"))
    text = maybe_apply_chat_template({"messages": multi_turn["messages"]}, tokenizer)["text"]
    assert text.count("<|im_start|>assistant") == len(multi_turn["messages"]) // 2
