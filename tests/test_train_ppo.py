"""task=ppo (train/ppo.py): InstructGPT's PPO with a value head and the pre-training mix, on a tiny
Llama pre-trained in the test.

The PPO-ptx test measures, in its own runs, what InstructGPT's PPO-ptx is for: under a scripted
reward the mean reward rises and the KL to the reference stays under its target, and with
`ptx.coef > 0` the pre-training loss stays within a stated margin of where it started while with
`ptx.coef = 0` it drifts further (the "alignment tax")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from curate.errors import ConfigError
from curate.manifest import Manifest
from tests.train_fixtures import metrics, pretrained_model, train, trained_reward_model

# The scripted reward: 5 x the share of "e" among a completion's letters, saturating at a quarter.
E_RICH = "task.reward_function=tests.ppo_rewards:e_rich"
# Small rollouts of short completions; one optimizer step per epoch over each rollout.
GEOMETRY = [
    "task.rollout_batch_size=16",
    "trainer.micro_batch_size=8",
    "trainer.grad_accum_steps=2",
    "task.max_completion_length=24",
    "task.max_prompt_tokens=48",
]
# Measured on 2 CPU cores over seeds 0-2 (40 steps): with ptx.coef=0.3 the pre-training loss rose
# by at most 0.13 nats and the KL per sequence stayed under 4.4; with ptx.coef=0 it rose by 0.46-0.62.
PTX_MARGIN = 0.25  # nats: how far the pre-training loss may move from its start with the mix on


@pytest.fixture(scope="module")
def base(inputs, tmp_path_factory) -> Path:
    """Pre-trained long enough (300 steps, loss ~4.1 nats) that the pre-training loss has something to lose."""
    return pretrained_model(tmp_path_factory.mktemp("ppo_base"), inputs.tokens, steps=300, micro_batch_size=16)


def ppo(inputs, base: Path, out: Path, *overrides: str) -> dict:
    return train(
        "task=ppo",
        f"data={inputs.chat}",
        f"model.path={base}",
        f"output.dir={out}",
        *GEOMETRY,
        "log.every=1",
        *overrides,
    )


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_ppo_ptx_raises_the_reward_and_pays_back_the_alignment_tax(inputs, base, tmp_path):
    common = [
        E_RICH,
        "trainer.max_steps=40",
        "optim.lr=5e-4",
        "task.kl_coef=0.4",
        "task.kl_target=6",
        f"task.eval_data={inputs.tokens}",
        "task.eval_rows=64",
        "task.eval_every=10",
        "checkpoint.every=100",
    ]
    ppo(inputs, base, tmp_path / "ptx", *common, f"ptx.data={inputs.tokens}", "ptx.coef=0.3")
    ppo(inputs, base, tmp_path / "plain", *common)

    with_mix, without = metrics(tmp_path / "ptx"), metrics(tmp_path / "plain")
    steps = [m for m in with_mix if "reward" in m]
    assert len(steps) == 40 and all("ptx_loss" in m for m in steps)
    rewards = [m["reward"] for m in steps]
    assert mean(rewards[-10:]) > mean(rewards[:10]) + 0.3, rewards  # the policy learns the scripted reward
    assert max(m["kl"] for m in steps) < 6  # the KL to the reference stays under task.kl_target
    rewards = [m["reward"] for m in without if "reward" in m]
    assert mean(rewards[-10:]) > mean(rewards[:10]) + 0.3

    def drift(logged: list[dict]) -> list[float]:
        losses = [m["eval_loss"] for m in logged if "eval_loss" in m]
        assert len(losses) == 5  # before the first step, then every 10 steps
        return [loss - losses[0] for loss in losses[1:]]

    mixed, plain = drift(with_mix), drift(without)
    assert max(abs(d) for d in mixed) < PTX_MARGIN, mixed  # the mix holds the pre-training loss
    assert plain[-1] > PTX_MARGIN and plain[-1] > 2 * mixed[-1], (plain, mixed)  # without it, it drifts

    lineage = json.loads((tmp_path / "ptx" / "run.json").read_text())
    assert lineage["task"] == "ppo" and lineage["reward_function"] == "tests.ppo_rewards:e_rich"
    assert lineage["ptx_data"]["fingerprint"] == Manifest.read(inputs.tokens).fingerprint
    assert lineage["eval_data"]["fingerprint"] == lineage["ptx_data"]["fingerprint"]


def test_ppo_resumes_exactly(inputs, base, tmp_path):
    args = [E_RICH, "trainer.max_steps=4", "checkpoint.every=2", "optim.lr=5e-4", "task.kl_horizon=64"]
    ppo(inputs, base, tmp_path / "run", *args)
    uninterrupted = {name: tensor.clone() for name, tensor in weights(tmp_path / "run" / "model").items()}
    # as if killed after the checkpoint of step 2: the later checkpoint and the model are gone
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-00000004")
    shutil.rmtree(tmp_path / "run" / "model")
    ppo(inputs, base, tmp_path / "run", *args)
    logged = [m for m in metrics(tmp_path / "run") if "reward" in m]
    first, second = logged[:4], logged[4:]
    assert [m["step"] for m in second] == [3, 4]
    assert first[2:] == second  # the same rewards, KL, coefficient and losses, bit for bit
    resumed = weights(tmp_path / "run" / "model")
    assert all(torch.equal(uninterrupted[name], resumed[name]) for name in uninterrupted)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_ppo_against_a_trained_reward_model(inputs, base, tmp_path):
    from transformers import AutoModelForCausalLM

    reward = trained_reward_model(tmp_path / "reward", inputs.preference, base)
    summary = ppo(
        inputs,
        base,
        tmp_path / "ppo",
        f"task.reward_model={reward}",
        "trainer.max_steps=2",
        "task.rollout_batch_size=8",
        "trainer.grad_accum_steps=1",
        f"ptx.data={inputs.tokens}",
        "ptx.coef=0.5",
    )
    assert summary["steps"] == 2
    model_dir = tmp_path / "ppo" / "model"
    policy = AutoModelForCausalLM.from_pretrained(model_dir)  # a plain causal LM; the value head beside it
    assert (model_dir / "value_head.safetensors").is_file()
    assert any(not torch.equal(a, b) for a, b in zip(policy.state_dict().values(), weights(base).values()))
    lineage = json.loads((tmp_path / "ppo" / "run.json").read_text())
    assert lineage["reward_model"]["lineage"]["task"] == "reward"
    assert lineage["base_model"]["lineage"]["task"] == "pretrain"
    assert json.loads((model_dir / "thresher_lineage.json").read_text())["fingerprint"] == lineage["fingerprint"]


def test_ppo_options_are_checked(inputs, base, tmp_path):
    common = ["task=ppo", f"data={inputs.chat}", f"model.path={base}", f"output.dir={tmp_path / 'run'}"]
    with pytest.raises(ConfigError, match="set either task.reward_model .* or task.reward_function"):
        train(*common)
    with pytest.raises(ConfigError, match="set either task.reward_model"):
        train(*common, E_RICH, f"task.reward_model={base}")
    with pytest.raises(ConfigError, match=r"task.rollout_batch_size: 12 is not a multiple of .* \(8\)"):
        train(*common, E_RICH, "task.rollout_batch_size=12", "trainer.micro_batch_size=8", "trainer.grad_accum_steps=1")
    with pytest.raises(ConfigError, match="task.reward_function: cannot load 'tests.ppo_rewards:nothing'"):
        train(*common, "task.reward_function=tests.ppo_rewards:nothing")
    with pytest.raises(ConfigError, match="ptx.data: the pre-training mix applies to"):
        train("task=pretrain", f"data={inputs.tokens}", f"ptx.data={inputs.tokens}", "ptx.coef=1")


def test_adaptive_kl_follows_ziegler_et_al():
    from train.ppo import AdaptiveKL

    controller = AdaptiveKL(0.2, target=6.0, horizon=10_000)
    controller.update(kl=12.0, samples=512)  # far above: the error is clipped at +20%
    assert controller.value == pytest.approx(0.2 * (1 + 0.2 * 512 / 10_000))
    controller.update(kl=5.4, samples=512)  # 10% below the target
    assert controller.value == pytest.approx(0.2 * (1 + 0.2 * 512 / 10_000) * (1 - 0.1 * 512 / 10_000))
    fixed = AdaptiveKL(0.05, target=None, horizon=10_000)
    fixed.update(kl=100.0, samples=512)
    assert fixed.value == 0.05


def test_gae_matches_its_definition():
    from train.ppo import gae

    rewards = torch.tensor([[0.0, 0.5, 1.0, 0.0]])
    values = torch.tensor([[0.2, 0.1, 0.4, 0.0]])  # the last token is past the completion's end
    gamma, lam = 0.9, 0.8
    advantages, returns = gae(rewards, values, gamma, lam)
    deltas = [rewards[0, t] + gamma * (values[0, t + 1] if t < 3 else 0) - values[0, t] for t in range(4)]
    expected = [sum((gamma * lam) ** (k - t) * deltas[k] for k in range(t, 4)) for t in range(4)]
    assert advantages[0].tolist() == pytest.approx([float(e) for e in expected])
    assert returns[0].tolist() == pytest.approx((advantages[0] + values[0]).tolist())
