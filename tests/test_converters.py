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


# -- input.fields and input.strip_template -------------------------------------------------------------
# Stanford Alpaca's PROMPT_DICT (train.py), as datasets rendered through it carry it in the prompt.
ALPACA_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)


def test_field_mapping_converts_dolly_style_files(tmp_path, shared_data):
    """{prompt, context, answer} records (Dolly-style names) through the `alpaca` and `dolly`
    converters give the rows the original Alpaca records give."""
    originals = records(shared_data / "alpaca_en_demo/alpaca_en_demo.json.gz")[:60]
    renamed = [
        {"prompt": r["instruction"], "context": r["input"], "answer": r["output"], "topic": i}
        for i, r in enumerate(originals)
    ]
    write_jsonl(tmp_path / "alpaca.jsonl", originals)
    write_jsonl(tmp_path / "renamed.jsonl", renamed)
    curate(tmp_path / "alpaca.jsonl", tmp_path / "plain", *KEEP, "input.records=alpaca")
    expected = read_dataset(tmp_path / "plain").column("messages").to_pylist()
    for converter, fields in [
        ("alpaca", "input.fields={instruction: prompt, input: context, output: answer}"),
        ("dolly", "input.fields=[instruction:prompt,response:answer]"),
    ]:
        out = tmp_path / converter
        manifest = curate(tmp_path / "renamed.jsonl", out, *KEEP, f"input.records={converter}", fields)
        assert manifest.rows == 60 and manifest.quarantined == 0
        table = read_dataset(out)
        assert table.column("messages").to_pylist() == expected
        metas = [json.loads(m) for m in table.column("meta").to_pylist()]
        assert [m["topic"] for m in metas] == list(range(60))  # the unmapped field stays in meta
        assert all("prompt" not in m and "answer" not in m for m in metas)  # mapped fields are not repeated
        assert [m["instruction"] for m in metas] == [r["instruction"].strip() for r in originals]


def test_field_mapping_errors_name_the_inputs_field(tmp_path):
    rows = [
        {"question": "Say hi", "reply": "hi"},
        {"question": "Say hi"},  # no reply
        {"question": "Say hi", "reply": "hi", "output": "hello"},  # two values for `output`
        {"data": {"question": "Name a colour", "lang": "en"}, "reply": "Blue"},  # nested
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    manifest = curate(
        tmp_path / "in.jsonl",
        tmp_path / "out",
        *KEEP,
        "input.records=alpaca",
        "input.fields={instruction: question, output: reply}",
        "input.max_quarantine_frac=1",
    )
    assert manifest.rows == 1 and manifest.quarantined == 3
    bad = {q["position"]: q for q in read_dataset(tmp_path / "out", "quarantine").to_pylist()}
    assert bad[2]["field"] == "reply" and bad[2]["error"] == "missing (read as 'output', input.fields)"
    assert bad[3]["field"] == "reply" and "has 'output' as well" in bad[3]["error"]
    assert bad[4]["field"] == "question"  # a dotted path is needed for the nested field
    manifest = curate(
        tmp_path / "in.jsonl",
        tmp_path / "nested",
        *KEEP,
        "input.records=alpaca",
        "input.fields={instruction: data.question, output: reply}",
        "input.max_quarantine_frac=1",
    )
    row = read_dataset(tmp_path / "nested").to_pylist()[-1]
    assert row["messages"][0]["content"] == "Name a colour"
    assert json.loads(row["meta"])["data"] == {"lang": "en"}  # the rest of the nested object is kept


def test_strip_alpaca_template_from_user_turns(tmp_path, shared_data):
    """Real Alpaca records rendered through Stanford Alpaca's prompt template, as prompt/completion
    and as trl preference pairs: stripping the template gives back the instruction and its input."""
    originals = records(shared_data / "alpaca_en_demo/alpaca_en_demo.json.gz")[:80]
    assert any(r["input"] for r in originals) and any(not r["input"] for r in originals)
    rendered = [(ALPACA_INPUT if r["input"] else ALPACA_NO_INPUT).format(**r) for r in originals]
    write_jsonl(tmp_path / "alpaca.jsonl", originals)
    write_jsonl(tmp_path / "pc.jsonl", [{"prompt": p, "completion": r["output"]} for p, r in zip(rendered, originals)])
    write_jsonl(
        tmp_path / "pairs.jsonl",
        [{"prompt": p, "chosen": r["output"], "rejected": "I don't know."} for p, r in zip(rendered, originals)],
    )
    curate(tmp_path / "alpaca.jsonl", tmp_path / "plain", *KEEP, "input.records=alpaca")
    expected = read_dataset(tmp_path / "plain").column("messages").to_pylist()

    curate(tmp_path / "pc.jsonl", tmp_path / "kept", *KEEP, "input.records=prompt_completion")
    assert read_dataset(tmp_path / "kept").column("messages").to_pylist()[0][0]["content"] == rendered[0]
    manifest = curate(
        tmp_path / "pc.jsonl", tmp_path / "pc", *KEEP, "input.records=prompt_completion", "input.strip_template=alpaca"
    )
    assert manifest.rows == 80 and manifest.quarantined == 0
    assert read_dataset(tmp_path / "pc").column("messages").to_pylist() == expected

    manifest = curate(
        tmp_path / "pairs.jsonl", tmp_path / "dpo", *KEEP, "input.records=dpo", "input.strip_template=alpaca"
    )
    assert manifest.kind == "preference" and manifest.rows == 80
    prompts = read_dataset(tmp_path / "dpo").column("prompt").to_pylist()
    assert prompts == [m[:1] for m in expected]


@pytest.mark.parametrize(
    "template, text, system, prompt",
    [
        (
            "alpaca",
            "Below is an instruction that describes a task. Write a response that appropriately completes "
            "the request.\n\n### Instruction:\nList three primes.\n\nInput:\nunder 10\n\n### Response:\n",
            "",
            "List three primes.\n\nunder 10",
        ),  # Dolly's variant: "Input:" without ###
        (
            "vicuna",
            "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
            "helpful, detailed, and polite answers to the user's questions. USER: What is 2+2? ASSISTANT:",
            "",
            "What is 2+2?",
        ),
        (
            "llama2",
            "<s>[INST] <<SYS>>\nAnswer in French.\n<</SYS>>\n\nHow are you? [/INST]",
            "Answer in French.",
            "How are you?",
        ),
        (
            "chatml",
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nName a fruit.<|im_end|>\n"
            "<|im_start|>assistant\n",
            "Be terse.",
            "Name a fruit.",
        ),
    ],
)
def test_known_templates_are_stripped(template, text, system, prompt):
    from curate.converters.templates import strip_template

    turns = [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]
    stripped, found = strip_template(turns, template)
    assert found is not None
    assert stripped == ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": "ok"},
    ]
    # A turn that only quotes the template, or another template, is left as it is.
    for other in (f"Explain this prompt:\n{text}", "Just a question?"):
        assert strip_template([{"role": "user", "content": other}], template) == (
            [{"role": "user", "content": other}],
            None,
        )


def test_input_mapping_options_are_checked(tmp_path):
    from test_config import one_line_error

    data = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "hi", "answer": "hello"}])
    base = [f"input.paths=[{data}]", f"output.dir={tmp_path / 'o'}", "pipeline=convert"]
    assert one_line_error(tmp_path, *base, "input.records=alpaca", "input.fields={instructions: prompt}") == (
        "error: input.fields.instructions: the 'alpaca' converter reads no field 'instructions'; it reads: "
        "instruction, input, output, system, history (and the id from input.id_field)"
    )
    assert one_line_error(tmp_path, *base, "input.fields={text: prompt}").startswith(
        "error: input.fields: input.records=documents takes input.text_field"
    )
    assert one_line_error(tmp_path, *base, "input.records=alpaca", "input.strip_template=alpacca") == (
        "error: input.strip_template: 'alpacca' is not one of: alpaca, vicuna, llama2, chatml"
    )
    assert one_line_error(tmp_path, *base, "input.strip_template=alpaca").startswith(
        "error: input.strip_template: input.records=documents makes documents rows"
    )
    assert not (tmp_path / "o").exists()
