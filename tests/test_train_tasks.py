"""The trl tasks, each a few steps from dataset folders on a tiny model pre-trained in the test:
SFT (assistant-only loss, packing, LoRA, resume), reward model, DPO, RLHF with RLOO and GRPO
(with the pre-training mix), and the lineage chain from the RLHF policy back to the token data."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from curate.errors import ConfigError
from curate.manifest import Manifest
from tests.conftest import REPO
from tests.train_fixtures import metrics, pretrained_model, train, trained_reward_model

STEPS = ["log.every=1", "checkpoint.every=2", "optim.warmup_steps=0"]


@pytest.fixture(scope="module")
def base(inputs, tmp_path_factory) -> Path:
    """A tiny model pre-trained for a few steps: the starting point of every trl task here."""
    return pretrained_model(tmp_path_factory.mktemp("base"), inputs.tokens)


@pytest.fixture(scope="module")
def reward_model(inputs, base, tmp_path_factory) -> Path:
    return trained_reward_model(tmp_path_factory.mktemp("reward"), inputs.preference, base)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def changed(before: Path, after: Path) -> bool:
    old, new = weights(before), weights(after)
    return any(not torch.equal(old[name], new[name]) for name in old if name in new)


def files(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def test_sft_on_chat_shards(inputs, base, tmp_path):
    untouched = files(inputs.chat)
    run_dir = tmp_path / "sft"
    summary = train(
        "task=sft",
        f"data={inputs.chat}",
        f"model.path={base}",
        f"output.dir={run_dir}",
        "trainer.max_steps=3",
        "trainer.micro_batch_size=2",
        "task.max_length=256",
        *STEPS,
    )
    assert summary["steps"] == 3 and math.isfinite(summary["final_loss"])
    assert changed(base, run_dir / "model")
    assert [m["step"] for m in metrics(run_dir) if "loss" in m] == [1, 2, 3]
    assert not (run_dir / "model" / "training_args.bin").exists()  # no pickle next to the weights
    assert files(inputs.chat) == untouched  # nothing (e.g. a datasets cache) written into the dataset folder

    lineage = json.loads((run_dir / "run.json").read_text())
    config = lineage["config"]["task"]
    assert config["assistant_only_loss"] and config["packing"]
    chat_manifest = Manifest.read(inputs.chat)
    tokens_manifest = Manifest.read(inputs.tokens)
    assert lineage["data"]["fingerprint"] == chat_manifest.fingerprint
    # the chain: this SFT model <- the pre-trained model <- the token shards it was trained on
    assert lineage["base_model"]["lineage"]["data"]["fingerprint"] == tokens_manifest.fingerprint


def test_sft_with_lora_saves_a_merged_model(inputs, base, tmp_path):
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path / "lora"
    train(
        "task=sft",
        f"data={inputs.chat}",
        f"model.path={base}",
        f"output.dir={run_dir}",
        "trainer.max_steps=2",
        "trainer.micro_batch_size=2",
        "task.max_length=256",
        "task.lora.enabled=true",
        "task.lora.r=4",
        "optim.lr=1e-2",
        *STEPS,
    )
    assert not (run_dir / "model" / "adapter_config.json").exists()
    assert changed(base, run_dir / "model")  # the trained adapters are merged into the weights
    model = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_sft_resumes_from_its_last_checkpoint(inputs, base, tmp_path):
    args = [
        "task=sft",
        f"data={inputs.chat}",
        f"model.path={base}",
        f"output.dir={tmp_path / 'run'}",
        "trainer.max_steps=4",
        "trainer.micro_batch_size=2",
        "task.max_length=256",
        *STEPS,
    ]
    train(*args)
    # as if killed after the checkpoint of step 2: the later checkpoint and the model are gone
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "checkpoint-4")
    shutil.rmtree(tmp_path / "run" / "model")
    summary = train(*args)
    assert summary["resumed_from"].endswith("checkpoint-2")
    losses = [(m["step"], m["loss"]) for m in metrics(tmp_path / "run") if "loss" in m]
    first, second = dict(losses[:4]), dict(losses[4:])
    assert sorted(second) == [3, 4]
    assert all(second[step] == first[step] for step in second), (first, second)


def test_sft_needs_generation_markers_for_assistant_only_loss(inputs, base, tmp_path):
    folder = tmp_path / "plain_template"
    shutil.copytree(base, folder)
    template = (folder / "chat_template.jinja").read_text()
    stripped = template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    (folder / "chat_template.jinja").write_text(stripped)
    with pytest.raises(ConfigError, match="no {% generation %} markers"):
        train("task=sft", f"data={inputs.chat}", f"model.path={folder}", f"output.dir={tmp_path / 'run'}")


def test_trl_options_are_checked(inputs, base, tmp_path):
    common = ["task=sft", f"data={inputs.chat}", f"model.path={base}"]
    with pytest.raises(ConfigError, match="task.args.not_an_option: not an option of trl's SFTConfig"):
        train(*common, f"output.dir={tmp_path / 'a'}", "+task.args.not_an_option=1")
    with pytest.raises(ConfigError, match="task.args.learning_rate: set optim.lr instead"):
        train(*common, f"output.dir={tmp_path / 'b'}", "+task.args.learning_rate=0.1")
    with pytest.raises(ConfigError, match="distributed.fsdp: FSDP shards a model across several GPUs"):
        train(*common, f"output.dir={tmp_path / 'd'}", "distributed.fsdp=true")
    with pytest.raises(ConfigError, match="holds a 'chat' dataset; this task reads preference"):
        train("task=dpo", f"data={inputs.chat}", f"model.path={base}", f"output.dir={tmp_path / 'c'}")


def test_reward_model_scores_pairs(inputs, reward_model):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(reward_model)
    tokenizer = AutoTokenizer.from_pretrained(reward_model)
    assert model.config.num_labels == 1
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}], tokenize=False
    )
    with torch.no_grad():
        score = model(**tokenizer(text, return_tensors="pt")).logits
    assert score.shape == (1, 1) and torch.isfinite(score).all()
    logged = metrics(reward_model.parent)
    assert {"loss", "accuracy", "margin"} <= set(logged[0])


def test_dpo_on_preference_shards_with_the_pretraining_mix(inputs, base, tmp_path):
    run_dir = tmp_path / "dpo"
    summary = train(
        "task=dpo",
        f"data={inputs.preference}",
        f"model.path={base}",
        f"output.dir={run_dir}",
        "trainer.max_steps=2",
        "trainer.micro_batch_size=2",
        "task.max_length=512",
        "optim.lr=1e-3",
        f"ptx.data={inputs.tokens}",
        "ptx.coef=0.1",
        *STEPS,
    )
    assert summary["steps"] == 2
    logged = [m for m in metrics(run_dir) if "loss" in m]
    assert logged[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference at step 1
    assert "rewards/margins" in logged[-1]
    assert all(math.isfinite(m["ptx_loss"]) for m in logged)  # the pre-training mix works with DPO too
    assert changed(base, run_dir / "model")


@pytest.mark.parametrize("algorithm", ["rloo", "grpo"])
def test_rlhf_against_the_reward_model(inputs, base, reward_model, tmp_path, algorithm):
    run_dir = tmp_path / algorithm
    extra = [f"ptx.data={inputs.tokens}", "ptx.coef=0.5"] if algorithm == "grpo" else []
    summary = train(
        "task=rlhf",
        f"task.algorithm={algorithm}",
        f"data={inputs.preference}",
        f"model.path={base}",
        f"task.reward_model={reward_model}",
        f"output.dir={run_dir}",
        "trainer.max_steps=2",
        "trainer.micro_batch_size=4",
        "task.num_generations=2",
        "task.max_completion_length=12",
        "optim.lr=1e-4",
        *STEPS,
        *extra,
    )
    assert summary["steps"] == 2
    logged = [m for m in metrics(run_dir) if "loss" in m]
    assert all(math.isfinite(m["reward"]) for m in logged)
    lineage = json.loads((run_dir / "run.json").read_text())
    assert lineage["reward_model"]["path"] == str(reward_model.resolve())
    assert lineage["reward_model"]["lineage"]["task"] == "reward"
    if extra:  # InstructGPT's pre-training mix: its LM loss is logged, its data is in the lineage
        assert all(math.isfinite(m["ptx_loss"]) for m in logged)
        tokens_manifest = Manifest.read(inputs.tokens)
        assert lineage["ptx_data"]["fingerprint"] == tokens_manifest.fingerprint
    assert changed(base, run_dir / "model")


def test_rlhf_skips_prompts_over_max_prompt_tokens(inputs, base):
    from transformers import AutoTokenizer

    from curate.errors import ConfigError
    from train.data import open_dataset, prompts_dataset
    from train.rlhf import short_prompts

    tokenizer = AutoTokenizer.from_pretrained(base)
    prompts = prompts_dataset(open_dataset(inputs.preference, ("preference",)))
    lengths = [
        len(tokenizer.apply_chat_template(p, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"])
        for p in prompts["prompt"]
    ]
    limit = sorted(lengths)[len(lengths) // 2]
    kept = short_prompts(prompts, tokenizer, limit)
    assert len(kept) == sum(n <= limit for n in lengths) and 0 < len(kept) < len(prompts)
    assert len(short_prompts(prompts, tokenizer, 0)) == len(prompts)
    with pytest.raises(ConfigError, match="task.max_prompt_tokens: no prompt of the data is 1 tokens or shorter"):
        short_prompts(prompts, tokenizer, 1)


def test_rlhf_prompts_from_a_chat_dataset(inputs):
    from train.data import open_dataset, prompts_dataset

    prompts = prompts_dataset(open_dataset(inputs.chat, ("chat",)))
    assert len(prompts) > 0
    for row in prompts.select(range(5)):
        assert [m["role"] for m in row["prompt"]] == ["user"]  # the conversation up to the assistant's answer


def test_sft_under_two_ddp_processes(inputs, base, tmp_path):
    """The trl tasks run under a launcher too: torchrun, 2 CPU processes (gloo), one final model."""
    run_dir = tmp_path / "ddp"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "train",
            "task=sft",
            f"data={inputs.chat}",
            f"model.path={base}",
            f"output.dir={run_dir}",
            "trainer.max_steps=2",
            "trainer.micro_batch_size=2",
            "task.max_length=256",
            *STEPS,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "run.json").read_text())["world_size"] == 2
    assert [m["step"] for m in metrics(run_dir) if "loss" in m] == [1, 2]  # logged once, by the main process
    assert changed(base, run_dir / "model")
