"""best_of_n: N samples per prompt from a policy, scored, the best kept (Llama 2's rejection
sampling), under Sparrow's rule (the best preference score among samples a rule model finds
unlikely to break a rule), and as on-policy preference pairs from a model trained by `thresher
train`, mixed with off-policy pairs at a ratio.

The policy and the judge are a loopback OpenAI-compatible server (`alignment_server`); the rule
model is a tiny classifier trained in the test; the on-policy model, its reward model and the
tokenizer are trained in the test by the train app."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from alignment_server import RULE_BREAKING, AlignmentServer, policy_sample, rating
from conftest import SHARED_DATA, curate, kill_at_checkpoint, read_dataset

from curate.arrow_io import read_table
from curate.errors import ConfigError
from curate.manifest import Manifest
from curate.sft.judge import ULTRAFEEDBACK_ASPECTS
from curate.sft.scorers import ScorerConfig
from curate.stages.best_of_n import select
from tests.train_fixtures import pretrained_model, tiny_llama_config, train, trained_reward_model

# -- the selection rule, alone -----------------------------------------------------------------------


def scorers(*configs: dict) -> list[ScorerConfig]:
    return [ScorerConfig(**c) for c in configs]


def test_the_rule_maximises_the_weighted_sum_within_thresholds():
    texts = ["a", "b", "c", "d"]
    preference = np.array([0.9, 0.7, 0.2, np.nan])
    rule = np.array([0.8, 0.1, 0.2, 0.1])
    sparrow = scorers(
        {"name": "preference", "model": "rm"},
        {"name": "rule", "kind": "classifier", "model": "rule", "weight": 0.0, "maximum": 0.5},
    )
    chosen = select(texts, {"preference": preference, "rule": rule}, sparrow)
    assert chosen.chosen == 1  # the best preference score among samples unlikely to break a rule
    assert chosen.problems == ["above_maximum_rule", None, None, "unscored_preference"]
    pair = select(texts, {"preference": preference, "rule": rule}, sparrow, pairs=True)
    assert (pair.chosen, pair.rejected) == (1, 0)  # a rule-breaking sample ranks below every eligible one
    weighted = scorers({"name": "preference", "model": "rm"}, {"name": "rule", "model": "rule", "weight": -1.0})
    assert select(texts, {"preference": preference, "rule": rule}, weighted).chosen == 1  # 0.6 > 0.1 > 0.0
    assert select(texts, {"preference": preference, "rule": np.ones(4)}, sparrow).reason == (
        "no_sample_within_thresholds"
    )
    assert select(texts, {"preference": np.full(4, np.nan), "rule": rule}, sparrow).reason == "no_sample_scored"
    same = select(["x", "x ", "", "y"], {"preference": np.array([0.5, 0.4, 0.9, 0.45])}, sparrow[:1], pairs=True)
    assert (same.chosen, same.rejected, same.problems[2]) == (0, 3, "empty_response")  # no pair of equal texts
    tie = select(texts[:2], {"preference": np.array([0.5, 0.45])}, sparrow[:1], pairs=True, min_margin=0.1)
    assert tie.reason == "tie"


# -- Sparrow's rule through the engine, with a judge and a trained rule model ---------------------------


def alpaca_records(start: int, stop: int) -> list[dict]:
    with gzip.open(SHARED_DATA / "alpaca_en_demo" / "alpaca_en_demo.json.gz", "rt") as handle:
        return json.load(handle)[start:stop]


def prompts_file(tmp_path: Path, count: int = 12) -> Path:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(alpaca_records(0, count)))
    return path


@pytest.fixture(scope="module")
def rule_model(inputs, tmp_path_factory) -> Path:
    """A tiny Llama sequence classifier trained here to tell responses that ask for a password
    (label `breaks_rule`) from the others, on conversations of other prompts than the tests use."""
    from transformers import AutoTokenizer, LlamaForSequenceClassification

    from curate.sft.scorers import conversation_text

    tokenizer = AutoTokenizer.from_pretrained(inputs.tokenizer)
    texts, labels = [], []
    for i, record in enumerate(alpaca_records(200, 440)):
        response = policy_sample(record["instruction"], i % 4)  # kinds 0-2 keep the rules, 3 asks for a password
        messages = [{"role": "user", "content": record["instruction"]}, {"role": "assistant", "content": response}]
        texts.append(conversation_text(tokenizer, messages))
        labels.append(int(RULE_BREAKING in response))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two test workers share two cores: contended threads are several times slower
    torch.manual_seed(0)
    config = tiny_llama_config(
        len(tokenizer),
        max_position_embeddings=512,
        num_labels=2,
        id2label={0: "follows_rules", 1: "breaks_rule"},
        label2id={"follows_rules": 0, "breaks_rule": 1},
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    order = np.random.default_rng(0).permutation(len(texts))
    for step in range(90):
        batch = order[(step * 16) % len(texts) :][:16]
        encoded = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True)
        loss = model(**encoded, labels=torch.tensor([labels[i] for i in batch])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("rule_model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def server():
    s = AlignmentServer()
    yield s
    s.close()


def served(server: AlignmentServer, key: str = "stages.best_of_n.llm") -> list[str]:
    return [f"llm@{key}=vllm", f"{key}.base_url={server.url}", f"{key}.model=policy", f"{key}.mode=chat"]


def judge_and_rule(server: AlignmentServer, rule_model: Path) -> str:
    judge = f"{{name:quality,kind:judge,llm:{{backend:openai,base_url:'{server.url}',model:judge,mode:chat}}}}"
    rule = f"{{name:rule,kind:classifier,model:'{rule_model}',label:breaks_rule,weight:0,maximum:0.5}}"
    return f"stages.best_of_n.scorers=[{judge},{rule}]"


def test_best_of_n_keeps_the_best_sample_that_keeps_the_rule(tmp_path, server, rule_model):
    manifest = curate(
        prompts_file(tmp_path),
        tmp_path / "out",
        "pipeline=best_of_n",
        "input.records=alpaca",
        *served(server),
        judge_and_rule(server, rule_model),
        "stages.best_of_n.chunk_prompts=5",
    )
    stage = manifest.stages[0]
    assert stage.rows_in == 12 == stage.rows_out + sum(stage.dropped.values())
    assert server.policy_calls == 12 * 4
    samples = read_table(tmp_path / "out" / "stages" / "best_of_n" / "samples.arrow").to_pylist()
    assert len(samples) == 48 and stage.details["samples"] == 48

    rule_broken_at_the_top = 0
    by_prompt: dict[int, list[dict]] = {}
    for sample in samples:
        by_prompt.setdefault(sample["position"], []).append(sample)
        breaks = RULE_BREAKING in sample["text"]
        if sample["text"].startswith("garbled"):  # the judge's answer has no rating: unscored, never chosen
            assert sample["quality"] is None and sample["problem"] == "unscored_quality"
            assert "cannot evaluate" in json.loads(json.loads(sample["notes"])["quality"])["answers"]["helpfulness"]
        else:
            judged = sum(rating(a, sample["text"]) for a in ULTRAFEEDBACK_ASPECTS) / 4
            assert sample["quality"] == pytest.approx(judged)
            assert (sample["rule"] > 0.5) == breaks  # the trained rule model tells them apart
    for group in by_prompt.values():
        eligible = [s for s in group if s["problem"] is None]
        chosen = [s for s in group if s["chosen"]]
        if not eligible:
            assert not chosen
            continue
        best = max(eligible, key=lambda s: (s["quality"], -s["sample"]))
        assert chosen == [best] and RULE_BREAKING not in best["text"]
        scored = [s for s in group if s["quality"] is not None]
        rule_broken_at_the_top += RULE_BREAKING in max(scored, key=lambda s: s["quality"])["text"]
    assert rule_broken_at_the_top > 0  # the judge alone would have picked a rule-breaking answer

    rows = read_dataset(tmp_path / "out").to_pylist()
    chosen_texts = {s["id"]: s["text"] for s in samples if s["chosen"]}
    for row in rows:
        meta = json.loads(row["meta"])
        assert row["messages"][0]["role"] == "user" and row["messages"][-1]["content"] == chosen_texts[row["id"]]
        assert meta["best_of_n"]["chosen_scores"]["rule"] <= 0.5 and meta["policy"]["backend"] == "openai"
    assert stage.details["scores"]["quality"]["mean_of_chosen"] >= stage.details["scores"]["quality"]["mean_of_samples"]
    described = {s["name"]: s for s in stage.details["scorers"]}
    assert described["rule"]["kind"] == "classifier" and described["quality"]["aspects"] == list(ULTRAFEEDBACK_ASPECTS)


def test_bad_scorers_are_one_line_errors(tmp_path, server):
    common = [prompts_file(tmp_path), tmp_path / "out", "pipeline=best_of_n", "input.records=alpaca", *served(server)]
    with pytest.raises(
        ConfigError,
        match=r"stages.best_of_n.scorers.0.model: required value is missing \(set stages.best_of_n.scorers.0.model=...\)",
    ):
        curate(*common)
    with pytest.raises(ConfigError, match=r"scorers.0.kind: 'oracle' is not one of: reward_model, classifier"):
        curate(*common, "stages.best_of_n.scorers=[{name:r,kind:oracle}]")
    with pytest.raises(ConfigError, match="scorers: at least one scorer needs a weight"):
        curate(*common, "stages.best_of_n.scorers=[{name:r,model:x,weight:0}]")
    with pytest.raises(ConfigError, match="llm.mode: best_of_n sends conversations"):
        curate(*common, "stages.best_of_n.scorers=[{name:r,model:x}]", "stages.best_of_n.llm.mode=completion")


# -- resume at the prompt level ------------------------------------------------------------------------


def judged_run(server: AlignmentServer) -> list[str]:
    judge = f"{{name:quality,kind:judge,llm:{{backend:openai,base_url:'{server.url}',model:judge,mode:chat}}}}"
    return [
        "pipeline=best_of_n",
        "input.records=alpaca",
        *served(server),
        f"stages.best_of_n.scorers=[{judge}]",
        "stages.best_of_n.chunk_prompts=2",
        "output.keep_work=true",
    ]


def digests(folder: Path) -> list[str]:
    manifest = Manifest.read(folder)
    return [s.sha256 for s in manifest.shards + manifest.rejects]


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    prompts = prompts_file(tmp_path)
    whole_server = AlignmentServer()
    try:
        curate(prompts, tmp_path / "whole", *judged_run(whole_server))
    finally:
        whole_server.close()
    server = AlignmentServer(delay=0.05)  # slow enough for the kill to land mid-run
    try:
        out = tmp_path / "killed"
        checkpoint = out / "_work" / "stage-best_of_n" / "samples.jsonl"
        done = kill_at_checkpoint(prompts, out, judged_run(server), checkpoint, 2)
        assert 2 <= done < 6
        with open(checkpoint, "ab") as handle:  # a chunk torn by the kill
            handle.write(b'{"chunk": 9, "positions": [1')
        manifest = curate(prompts, out, *judged_run(server))
    finally:
        server.close()
    details = manifest.stages[0].details
    assert details["new_samples"] == 48 - 8 * done  # the chunks before the kill were replayed, not sampled again
    assert server.policy_calls <= 48 + 8  # in both runs: every sample once, but the chunk cut by the kill
    assert digests(out) == digests(tmp_path / "whole")


# -- on-policy pairs from a trained model, mixed with off-policy pairs ------------------------------------


@pytest.fixture(scope="module")
def sft_and_reward(inputs, tmp_path_factory) -> tuple[Path, Path]:
    base = pretrained_model(tmp_path_factory.mktemp("bon_base"), inputs.tokens)
    sft = tmp_path_factory.mktemp("bon_sft")
    train(
        "task=sft",
        f"data={inputs.chat}",
        f"model.path={base}",
        f"output.dir={sft}",
        "trainer.max_steps=3",
        "trainer.micro_batch_size=2",
        "task.max_length=256",
        "optim.warmup_steps=0",
    )
    return sft, trained_reward_model(tmp_path_factory.mktemp("bon_reward"), inputs.preference, sft / "model")


def test_on_policy_pairs_carry_the_policys_lineage_and_mix_with_off_policy_pairs(tmp_path, inputs, sft_and_reward):
    sft, reward = sft_and_reward
    manifest = curate(
        prompts_file(tmp_path, 10),
        tmp_path / "on_policy",
        "pipeline=on_policy_pairs",
        "input.records=alpaca",
        f"stages.best_of_n.llm.model={sft / 'model'}",
        f"stages.best_of_n.scorers.0.model={reward}",
        "stages.best_of_n.max_new_tokens=24",
        "stages.best_of_n.llm.threads=1",
    )
    stage = manifest.stages[0]
    record = json.loads((sft / "run.json").read_text())
    policy = stage.details["policy"]
    assert (
        policy["path"] == str((sft / "model").resolve()) and policy["lineage"]["fingerprint"] == record["fingerprint"]
    )
    assert (
        policy["lineage"]["task"] == "sft"
        and policy["lineage"]["data"]["fingerprint"] == Manifest.read(inputs.chat).fingerprint
    )
    assert stage.details["scorers"][0]["lineage"]["task"] == "reward"
    pairs = read_dataset(tmp_path / "on_policy").to_pylist()
    assert manifest.kind == "preference" and 0 < len(pairs) == manifest.rows
    for pair in pairs:
        meta = json.loads(pair["meta"])
        assert meta["policy"]["fingerprint"] == record["fingerprint"]
        assert meta["best_of_n"]["chosen_scores"]["reward"] > meta["best_of_n"]["rejected_scores"]["reward"]
        assert pair["chosen"][0]["content"] != pair["rejected"][0]["content"]

    # Tülu 3's mix: on-policy pairs with off-policy ones (LLaMA-Factory's DPO demo pairs) at one to one
    mixed = curate(
        [tmp_path / "on_policy", inputs.preference],
        tmp_path / "mixed",
        "pipeline=preferences",
        "stages.preference_pairs.on_policy_fraction=0.5",
    )
    mix = mixed.stages[0].details["mix"]
    assert mix["on_policy"] == mix["off_policy"] == len(pairs)
    rows = read_dataset(tmp_path / "mixed").to_pylist()
    assert sum("policy" in json.loads(r["meta"] or "{}") for r in rows) == len(pairs) == len(rows) // 2
    assert mixed.stages[0].dropped["mix_ratio"] == mix["available"]["off_policy"] - len(pairs)

    # DPO on the on-policy pairs starts from the policy that sampled them
    dpo = tmp_path / "dpo"
    train(
        "task=dpo",
        f"data={tmp_path / 'on_policy'}",
        f"model.path={sft / 'model'}",
        f"output.dir={dpo}",
        "trainer.max_steps=1",
        "trainer.micro_batch_size=2",
        "task.max_length=256",
    )
    lineage = json.loads((dpo / "run.json").read_text())
    assert lineage["data"]["fingerprint"] == manifest.fingerprint
    assert lineage["base_model"]["lineage"]["fingerprint"] == record["fingerprint"]
