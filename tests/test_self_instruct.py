"""Self-Instruct generation: the parsing and filters, and a real run with SmolLM2 from the 175
seed tasks that is killed and resumed to the same result."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import curate, kill_at_checkpoint, read_dataset
from rouge_score import rouge_scorer

from curate.manifest import Manifest
from curate.sft.self_instruct import (
    ALPACA_BLACKLIST_EXTRA,
    SELF_INSTRUCT_BLACKLIST,
    instance_problem,
    instruction_problem,
    parse_instance,
    parse_instructions,
)

BLACKLIST = SELF_INSTRUCT_BLACKLIST


def test_numbered_continuations_become_instructions():
    text = (
        " Summarize the article below.\n10. Translate   this\nsentence to German.\n11 . What is 2+2?\n12. Write a haiku"
    )
    assert parse_instructions(text, "length") == [
        ("Summarize the article below.", False),
        ("Translate this sentence to German.", False),
        ("What is 2+2?", False),
        ("Write a haiku", True),
    ]
    assert parse_instructions(text, "stop")[-1] == ("Write a haiku", False)
    assert parse_instructions("  \n", "stop") == []


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Give three tips for staying healthy.", None),
        ("Tell me a joke.", None),
        ("Say hi.", "too_short"),
        ("word " * 151, "too_long"),
        ("Draw a picture of a cat sitting on a mat.", "blacklisted_word"),
        ("Look at the image and describe it.", "blacklisted_word"),
        ("Explain how to go to the nearest station.", "blacklisted_word"),
        ("Explain the mapping between keys and values.", None),  # whole words only
        ("Write a program that sorts a list of numbers.", "write_a_program"),
        ("- List five fruits that are red.", "starts_with_punctuation"),
        ("Él quiere saber la hora exacta.", "non_ascii_start"),
    ],
)
def test_instruction_filters(text, reason):
    assert instruction_problem(text, 4, 150, BLACKLIST) == reason


def test_alpaca_blacklist_extends_self_instruct():
    text = "Compose a short piece of music for piano."
    assert instruction_problem(text, 4, 150, BLACKLIST) is None
    assert instruction_problem(text, 4, 150, BLACKLIST + ALPACA_BLACKLIST_EXTRA) == "blacklisted_word"


def test_instances_are_parsed_input_or_output_first():
    assert parse_instance(" The food was cold.\nOutput: Negative\n", False) == ("The food was cold.", "Negative")
    assert parse_instance(" <none>\nOutput: Paris is the capital.", False) == ("", "Paris is the capital.")
    assert parse_instance(" a\nOutput: b\nInput: c\nOutput: d", False) == ("a", "b")
    assert parse_instance(" just text", False) is None
    assert parse_instance(" Positive\nInput: I loved every minute.", True) == ("I loved every minute.", "Positive")
    assert instance_problem(("x", ""), "stop") == "empty_output"
    assert instance_problem(("same", "same"), "stop") == "input_equals_output"
    assert instance_problem(("Sentence:", "y"), "stop") == "incomplete_instance"
    assert instance_problem(("x", "y"), "length") == "truncated_instance"
    assert instance_problem(None, "stop") == "no_output"
    assert instance_problem(("x", "y"), "stop") is None


GENERATION = (
    "pipeline=self_instruct",
    "input.records=self_instruct_seeds",
    "stages.self_instruct.num_instructions=3",
    "stages.self_instruct.request_batch_size=2",
    "stages.self_instruct.max_requests=8",
    "stages.self_instruct.max_new_tokens=40",
    "stages.self_instruct.instance_max_new_tokens=40",
    "output.keep_work=true",
)
REASONS = {
    "too_short",
    "too_long",
    "blacklisted_word",
    "write_a_program",
    "starts_with_punctuation",
    "non_ascii_start",
    "too_similar",
    "truncated",
    "over_target",
    "no_output",
    "empty_output",
    "input_equals_output",
    "incomplete_instance",
    "truncated_instance",
    "duplicate_instance",
    "conflicting_instances",
}


def digests(folder: Path) -> list[str]:
    manifest = Manifest.read(folder)
    return [s.sha256 for s in manifest.shards + manifest.rejects]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, request):
    data = request.getfixturevalue("shared_data")
    out = tmp_path_factory.mktemp("self_instruct") / "whole"
    manifest = curate(data / "self_instruct/seed_tasks.jsonl.gz", out, *GENERATION)
    return out, manifest


@pytest.fixture(scope="module")
def shared_data():
    from conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


def test_generates_and_filters_from_the_175_seeds(uninterrupted, shared_data):
    out, manifest = uninterrupted
    stage = manifest.stages[0]
    details = stage.details
    assert manifest.rows_in == 175 and stage.consumed == 175  # the seeds are used, not output
    assert stage.generated == stage.rows_out + sum(stage.dropped.values()) > 0
    assert details["kept_instructions"] <= 3 and details["requests"] <= 8 + 3 * 2
    assert set(stage.dropped) <= REASONS

    seeds = [
        json.loads(line)["instruction"]
        for line in __import__("gzip").open(shared_data / "self_instruct/seed_tasks.jsonl.gz")
    ]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept = read_dataset(out).to_pylist() if manifest.rows else []
    rejects = read_dataset(out, "rejects").to_pylist()
    instructions = {json.loads(r["meta"])["instruction"] for r in kept}
    instructions |= {
        json.loads(r["meta"])["instruction"]
        for r in rejects
        if r["drop_reason"] not in ("too_similar", "truncated", "over_target")
        and "rouge_l_max" in json.loads(r["meta"])
    }
    assert len(instructions) == details["kept_instructions"]
    for text in instructions:  # every kept instruction is novel against every seed, by rouge-score itself
        assert max(scorer.score(text, seed)["rougeL"].fmeasure for seed in seeds) <= 0.7
        assert instruction_problem(text, 4, 150, BLACKLIST) is None
    pool = seeds + sorted(instructions)
    for row in rejects:
        meta = json.loads(row["meta"])
        if row["drop_reason"] == "too_similar":
            assert max(scorer.score(meta["instruction"], other)["rougeL"].fmeasure for other in pool) > 0.7
    for row in kept:
        meta = json.loads(row["meta"])
        assert meta["origin"] == "machine" and meta["output"] == row["messages"][1]["content"]
        assert instance_problem((meta["input"], meta["output"]), "stop") is None
    work = out / "_work" / "stage-self_instruct"
    assert (work / "instructions.jsonl").is_file() and (work / "instances.jsonl").is_file()


def test_killed_run_resumes_from_its_checkpoint(uninterrupted, shared_data, tmp_path):
    whole, _ = uninterrupted
    out = tmp_path / "killed"
    checkpoint = out / "_work" / "stage-self_instruct" / "instructions.jsonl"
    kill_at_checkpoint(shared_data / "self_instruct/seed_tasks.jsonl.gz", out, list(GENERATION), checkpoint, 1)
    assert checkpoint.is_file()
    lines_before = checkpoint.read_bytes().count(b"\n")
    with open(checkpoint, "ab") as handle:  # a batch torn by the kill
        handle.write(b'{"batch": 99, "prompts": ["tor')

    manifest = curate(shared_data / "self_instruct/seed_tasks.jsonl.gz", out, *GENERATION)
    details = manifest.stages[0].details
    assert details["new_requests"] < details["requests"]  # answers before the kill were replayed, not regenerated
    assert details["requests"] - details["new_requests"] >= 2 * lines_before
    assert digests(out) == digests(whole)
    assert (
        hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        == hashlib.sha256((whole / "_work" / "stage-self_instruct" / "instructions.jsonl").read_bytes()).hexdigest()
    )


def test_llm_backends_are_a_config_group(shared_data):
    from conftest import compose

    from curate.engine import make_plan

    seeds = shared_data / "self_instruct/seed_tasks.jsonl.gz"
    base = [
        f"input.paths=[{seeds}]",
        "output.dir=unused",
        "pipeline=self_instruct",
        "input.records=self_instruct_seeds",
    ]
    stage = make_plan(compose(base)).pipeline.stages[0]
    assert stage.llm.backend == "transformers" and stage.llm.model == "smollm2-135m-instruct" and stage.llm.threads == 1
    stage = make_plan(
        compose(base + ["llm@stages.self_instruct.llm=vllm", "stages.self_instruct.llm.model=m"])
    ).pipeline.stages[0]
    assert (stage.llm.backend, stage.llm.base_url, stage.llm.model) == ("openai", "http://localhost:8000/v1", "m")


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "stages.self_instruct.templates=/nonexistent",
            "stages.self_instruct.templates: '/nonexistent' is not a prompt folder",
        ),
        ("stages.self_instruct.llm.backend=gpt", "stages.self_instruct.llm.backend: 'gpt' is not one of"),
        ("stages.self_instruct.machine_in_prompt=9", "stages.self_instruct.machine_in_prompt: must be between"),
    ],
)
def test_bad_options_are_one_line_errors(shared_data, override, message):
    from conftest import compose

    from curate.engine import make_plan
    from curate.errors import ConfigError

    seeds = shared_data / "self_instruct/seed_tasks.jsonl.gz"
    cfg = compose(
        [
            f"input.paths=[{seeds}]",
            "output.dir=unused",
            "pipeline=self_instruct",
            "input.records=self_instruct_seeds",
            override,
        ]
    )
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make_plan(cfg)
