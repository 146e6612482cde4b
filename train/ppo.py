"""InstructGPT's PPO with the pre-training mix (PPO-ptx): one readable loop on torch + transformers.

trl 1.x no longer ships a PPO trainer. This is the algorithm of Ziegler et al. (2019) and Ouyang et
al. (2022, InstructGPT), with trl 0.x's published defaults:

    for step in range(start, max_steps):                     # one PPO iteration
        prompts = prompt batch `step`                         # a pure function of the step: resumable
        rollout, without gradients: the policy samples one completion per prompt; the log-probs of
            its tokens under the policy and under the frozen reference (the starting SFT model);
            the value head's estimates; the score of each (prompt, completion) by the reward model
        rewards = -kl_coef x (logp - logp_ref) on every token, + the score on the last one
        advantages, returns = GAE(rewards, values; gamma, lam); advantages whitened
        for each of num_ppo_epochs epochs, for each shuffled micro-batch of the rollout:
            loss = clipped policy loss + vf_coef x clipped value loss        (Schulman et al. 2017)
            + ptx.coef x the LM loss on a micro-batch of `tokens` rows      (InstructGPT's PPO-ptx)
            an AdamW step every grad_accum_steps micro-batches (gradient norm clipped)
        kl_coef moves toward kl_target (Ziegler et al.'s proportional controller)
        log; measure the pre-training loss on task.eval_data; checkpoint

The value head is one linear layer on the policy's last hidden state (a shared trunk, as trl 0.x's
`AutoModelForCausalLMWithValueHead`), initialised to zero. Dropout is turned off, so the rollout's
log-probs and the update's agree. `accelerate` places the models, wraps the policy for DDP under a
launcher, applies autocast and saves the complete training state (policy, value head, optimizer,
scheduler, RNG of every process); `state.json` adds the step and the KL coefficient, so a resumed
run continues bit-identically. The final policy is saved as a plain causal LM in `model/` (the value
head beside it, `value_head.safetensors`).

Memory per process: the policy with its value head, the optimizer state, the frozen reference, the
reward model, and one rollout (`rollout_batch_size` sequences of prompt + completion tokens, with
five float tensors of the completion's length); forward passes run `trainer.micro_batch_size`
sequences at a time.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from curate.errors import ConfigError
from train import checkpoint
from train.config import load_reward_function
from train.data import RowOrder, TokenBatches, TokenRows, loss_pad_id, prompts_dataset
from train.lineage import RunDir, model_lineage
from train.modeling import build_causal_lm, load_tokenizer
from train.pretrain import make_accelerator, make_optimizer, make_scheduler
from train.ptx import ptx_batches
from train.rlhf import short_prompts
from train.runtime import open_inputs, process_state, start_run, tokenizer_path

if TYPE_CHECKING:
    from accelerate import Accelerator
    from transformers import PreTrainedModel


class PolicyWithValueHead(torch.nn.Module):
    """The causal LM and a scalar value head on its last hidden state (one shared trunk)."""

    def __init__(self, lm: PreTrainedModel):
        super().__init__()
        self.lm = lm
        self.value_head = torch.nn.Linear(lm.config.get_text_config().hidden_size, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, position_ids=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (batch, length, vocabulary) and values (batch, length)."""
        out = self.lm(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, output_hidden_states=True
        )
        return out.logits, self.value_head(out.hidden_states[-1]).squeeze(-1)


def without_dropout(model: torch.nn.Module) -> None:
    """PPO compares the log-probs of the rollout with those of the update: no dropout in either."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    config = getattr(model, "config", None)
    for name in ("attention_dropout", "hidden_dropout", "dropout"):
        if config is not None and isinstance(getattr(config, name, None), float):
            setattr(config, name, 0.0)


# -- rewards ---------------------------------------------------------------------------------------


class Rewarder:
    """The score of each (prompt, completion): a reward model folder (a `task=reward` run's model,
    with its own tokenizer and chat template) or a Python function."""

    def __init__(self, task: DictConfig, device: torch.device):
        self.function: Callable[[list[list[dict]], list[str]], Sequence[float]] | None = None
        self.model = None
        if task.reward_function:
            self.function = load_reward_function(task.reward_function)
        else:
            from curate.sft.scorers import RewardModelScorer

            self.model = RewardModelScorer(
                task.reward_model, batch_size=16, max_length=4096, threads=0, device=str(device)
            )

    def __call__(self, prompts: list[list[dict]], completions: list[str]) -> torch.Tensor:
        if self.function is not None:
            scores = [float(s) for s in self.function(prompts, completions)]
            if len(scores) != len(completions):
                raise ConfigError(
                    f"task.reward_function: returned {len(scores)} rewards for {len(completions)} completions"
                )
        else:
            assert self.model is not None
            conversations = [p + [{"role": "assistant", "content": c}] for p, c in zip(prompts, completions)]
            scores = self.model.score(conversations).tolist()
        return torch.tensor(scores, dtype=torch.float32)


class AdaptiveKL:
    """Ziegler et al. (2019)'s controller: kl_coef grows when the KL per sequence is above `target`
    and shrinks below it, by at most 20% of the error per `horizon` samples. No target: fixed."""

    def __init__(self, value: float, target: float | None, horizon: float):
        self.value, self.target, self.horizon = value, target, horizon

    def update(self, kl: float, samples: int) -> None:
        if self.target is None:
            return
        error = float(np.clip(kl / self.target - 1, -0.2, 0.2))
        self.value *= 1 + error * samples / self.horizon


# -- rollouts --------------------------------------------------------------------------------------


@dataclass
class Rollout:
    """One PPO iteration's samples: prompts left-padded to `prompt_length`, completions after them
    (right-padded); per-completion-token tensors are (batch, completion length)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int
    mask: torch.Tensor  # completion tokens up to and including the first EOS
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    def rows(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rollout's rows at `index` (after `PPO.advantages`)."""
        assert self.advantages is not None and self.returns is not None
        return {
            "input_ids": self.input_ids[index],
            "attention_mask": self.attention_mask[index],
            "mask": self.mask[index],
            "logprobs": self.logprobs[index],
            "values": self.values[index],
            "advantages": self.advantages[index],
            "returns": self.returns[index],
        }


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip the left padding (as transformers' generate computes them)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def completion_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, start: int, temperature: float) -> torch.Tensor:
    """Log-probs of the tokens from `start` on, under `logits` scaled by the sampling temperature."""
    logits = logits[:, start - 1 : -1].float() / temperature
    tokens = input_ids[:, start:].unsqueeze(-1)
    return (logits.gather(-1, tokens) - torch.logsumexp(logits, dim=-1, keepdim=True)).squeeze(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def whiten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(variance + 1e-8) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over completion tokens; rewards and
    values are zero after each completion's end. Returns (advantages, returns)."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages, advantages + values


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        ids[i, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
        mask[i, width - len(sequence) :] = 1
    return ids, mask


class PPO:
    """The state of one PPO run: models, optimizer, data, and the steps of the loop."""

    def __init__(self, cfg: DictConfig, accelerator: Accelerator, model, optimizer, scheduler, reference, tokenizer):
        self.cfg, self.task = cfg, cfg.task
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.reference, self.tokenizer = reference, tokenizer
        self.device = accelerator.device
        self.kl = AdaptiveKL(self.task.kl_coef, self.task.kl_target, self.task.kl_horizon)
        self.micro = cfg.trainer.micro_batch_size
        self.accum = cfg.trainer.grad_accum_steps
        self.ptx: TokenBatches | None = None
        self.rewarder: Rewarder | None = None

    @property
    def micro_batches_per_step(self) -> int:
        return self.task.num_ppo_epochs * self.task.rollout_batch_size // self.micro

    # -- rollout ---------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: list[list[dict]], prompt_ids: list[list[int]]) -> Rollout:
        from transformers import GenerationConfig

        task, tokenizer = self.task, self.tokenizer
        policy = self.accelerator.unwrap_model(self.model)
        ids, attention = left_pad(prompt_ids, tokenizer.pad_token_id)
        ids, attention = ids.to(self.device), attention.to(self.device)
        sampling = GenerationConfig(
            do_sample=True,
            temperature=task.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=task.max_completion_length,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        self.model.eval()
        with self.accelerator.autocast():
            sequences = policy.lm.generate(input_ids=ids, attention_mask=attention, generation_config=sampling)
        start = ids.shape[1]
        completion = sequences[:, start:]
        is_eos = completion == tokenizer.eos_token_id
        # tokens up to and including the first EOS (all of them when the completion was cut at the length limit)
        ended_before = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
        mask = (~ended_before).long()
        completion = completion.masked_fill(mask == 0, tokenizer.pad_token_id)
        sequences = torch.cat([ids, completion], dim=1)
        attention_mask = torch.cat([attention, mask], dim=1)

        logprobs, values, ref_logprobs = [], [], []
        for chunk in range(0, len(sequences), self.micro):
            rows = slice(chunk, chunk + self.micro)
            with self.accelerator.autocast():
                logits, value = self.model(sequences[rows], attention_mask[rows], positions(attention_mask[rows]))
                ref_logits = self.reference(
                    input_ids=sequences[rows],
                    attention_mask=attention_mask[rows],
                    position_ids=positions(attention_mask[rows]),
                ).logits
            logprobs.append(completion_logprobs(logits, sequences[rows], start, task.temperature))
            ref_logprobs.append(completion_logprobs(ref_logits, sequences[rows], start, task.temperature))
            values.append(value[:, start - 1 : -1].float())
        texts = tokenizer.batch_decode(completion.cpu().tolist(), skip_special_tokens=True)
        assert self.rewarder is not None
        scores = self.rewarder(prompts, texts).to(self.device)
        maskf = mask.float()
        return Rollout(
            sequences,
            attention_mask,
            start,
            maskf,
            torch.cat(logprobs) * maskf,
            torch.cat(ref_logprobs) * maskf,
            torch.cat(values) * maskf,
            scores,
        )

    def advantages(self, rollout: Rollout) -> dict[str, float]:
        """Per-token rewards (KL penalty, score at the end), GAE, whitened advantages; the rollout's metrics."""
        kl = (rollout.logprobs - rollout.ref_logprobs) * rollout.mask
        rewards = -self.kl.value * kl
        last = (rollout.mask.sum(1).long() - 1).clamp(min=0)
        rewards[torch.arange(len(rewards), device=rewards.device), last] += rollout.scores
        advantages, returns = gae(rewards * rollout.mask, rollout.values, self.task.gamma, self.task.lam)
        rollout.advantages = whiten(advantages, rollout.mask)
        rollout.returns = returns
        reduce = self.accelerator.reduce
        sequence_kl = reduce(kl.sum(1).mean(), reduction="mean").item()
        return {
            "reward": reduce(rollout.scores.mean(), reduction="mean").item(),
            "reward_std": rollout.scores.std().item() if len(rollout.scores) > 1 else 0.0,
            "kl": sequence_kl,
            "kl_coef": self.kl.value,
            "non_score_reward": -self.kl.value * sequence_kl,
            "completion_length": reduce(rollout.mask.sum(1).mean(), reduction="mean").item(),
        }

    # -- update ----------------------------------------------------------------------------------
    def ptx_loss(self, index: int) -> torch.Tensor:
        assert self.ptx is not None
        batch = {k: v.to(self.device) for k, v in self.ptx.batch(index).items()}
        return lm_loss(self.model, batch)

    def ppo_loss(self, rows: dict[str, torch.Tensor], start: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        task, mask = self.task, rows["mask"]
        logits, values = self.model(rows["input_ids"], rows["attention_mask"], positions(rows["attention_mask"]))
        logprobs = completion_logprobs(logits, rows["input_ids"], start, task.temperature)
        values = values[:, start - 1 : -1].float()
        clipped = rows["values"] + (values - rows["values"]).clamp(-task.cliprange_value, task.cliprange_value)
        value_loss = 0.5 * masked_mean(
            torch.max((values - rows["returns"]) ** 2, (clipped - rows["returns"]) ** 2), mask
        )
        ratio = torch.exp(logprobs - rows["logprobs"])
        advantages = rows["advantages"]
        policy_loss = masked_mean(
            torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - task.cliprange, 1 + task.cliprange)), mask
        )
        with torch.no_grad():
            scaled = logits[:, start - 1 : -1].float() / task.temperature
            entropy = torch.logsumexp(scaled, -1) - (torch.softmax(scaled, -1) * scaled).sum(-1)
            metrics = {
                "policy_loss": policy_loss.detach(),
                "value_loss": value_loss.detach(),
                "clipfrac": masked_mean(((ratio - 1).abs() > task.cliprange).float(), mask),
                "approx_kl": 0.5 * masked_mean((logprobs - rows["logprobs"]) ** 2, mask),
                "entropy": masked_mean(entropy, mask),
            }
        return policy_loss + task.vf_coef * value_loss, metrics

    def update(self, rollout: Rollout, step: int) -> dict[str, float]:
        """num_ppo_epochs passes over the rollout in shuffled micro-batches; one optimizer step per
        grad_accum_steps micro-batches, each with its share of the pre-training mix."""
        accelerator, count = self.accelerator, 0
        totals: dict[str, float] = {}
        self.model.train()
        micro_index = step * self.micro_batches_per_step
        for epoch in range(self.task.num_ppo_epochs):
            order = torch.from_numpy(
                np.random.default_rng([self.cfg.seed, step, epoch]).permutation(len(rollout.input_ids))
            ).to(self.device)
            for first in range(0, len(order), self.micro):
                rows = rollout.rows(order[first : first + self.micro])
                sync = (first // self.micro + 1) % self.accum == 0
                if self.ptx is not None:  # its backward first, unsynchronised: the PPO backward syncs both
                    with accelerator.no_sync(self.model):
                        with accelerator.autocast():
                            ptx = self.ptx_loss(micro_index)
                        accelerator.backward(ptx * (self.cfg.ptx.coef / self.accum))
                    totals["ptx_loss"] = totals.get("ptx_loss", 0.0) + ptx.item()
                with nullcontext() if sync else accelerator.no_sync(self.model):
                    with accelerator.autocast():
                        loss, metrics = self.ppo_loss(rows, rollout.prompt_length)
                    accelerator.backward(loss / self.accum)
                for name, value in metrics.items():
                    totals[name] = totals.get(name, 0.0) + value.item()
                count += 1
                micro_index += 1
                if sync:
                    if self.cfg.optim.grad_clip > 0:
                        accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
        return {name: value / count for name, value in totals.items()}


def lm_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token loss of the policy on `tokens` rows (labels -100 are left out)."""
    logits, _ = model(batch["input_ids"], None, batch.get("position_ids"))
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch["labels"][:, 1:].flatten(), ignore_index=-100)


@torch.no_grad()
def evaluate(model, held_out: TokenBatches, rows: int, accelerator) -> float:
    """The pre-training loss on the first `rows` held-out rows (0: all), mean per predicted token."""
    count = held_out.per_epoch if not rows else min(held_out.per_epoch, max(1, rows // held_out.global_batch))
    totals = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
    model.eval()
    for index in range(count):
        batch = {k: v.to(accelerator.device) for k, v in held_out.batch(index).items()}
        predicted = (batch["labels"][:, 1:] != -100).sum()
        with accelerator.autocast():
            loss = lm_loss(model, batch)
        totals += torch.stack([loss.double() * predicted, predicted.double()])
    totals = accelerator.reduce(totals, reduction="sum")
    return (totals[0] / totals[1]).item()


# -- the run ---------------------------------------------------------------------------------------


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train with PPO(-ptx) per `cfg`; returns the summary recorded in run.json."""
    state = process_state(cfg)
    if cfg.distributed.fsdp:
        raise ConfigError("distributed.fsdp: task=ppo replicates the policy (DDP); FSDP is not supported")
    folders = open_inputs(cfg, state)
    tokenizer_dir = tokenizer_path(cfg)
    tokenizer = load_tokenizer(tokenizer_dir)
    tokenizer.padding_side = "left"
    if not tokenizer.chat_template:
        raise ConfigError(f"tokenizer: '{tokenizer_dir}' has no chat template (the prompts are conversations)")
    task = cfg.task
    extra = (
        {"reward_model": model_lineage(task.reward_model)}
        if task.reward_model
        else {"reward_function": task.reward_function}
    )
    run_dir = start_run(cfg, state, folders, tokenizer_dir, extra)
    try:
        return train(cfg, run_dir, folders, tokenizer)
    finally:
        run_dir.unlock()


def train(cfg: DictConfig, run_dir: RunDir, folders, tokenizer) -> dict[str, Any]:
    from transformers import set_seed

    task = cfg.task
    set_seed(cfg.seed)
    lm = build_causal_lm(cfg.model, tokenizer, cfg.seed)
    without_dropout(lm)
    reference = copy.deepcopy(lm).eval().requires_grad_(False)
    model = PolicyWithValueHead(lm)
    accelerator = make_accelerator(cfg, getattr(lm, "_no_split_modules", None) or [])
    optimizer = make_optimizer(model, cfg)
    per_step = (
        task.num_ppo_epochs * task.rollout_batch_size // (cfg.trainer.micro_batch_size * cfg.trainer.grad_accum_steps)
    )
    scheduler = make_scheduler(optimizer, cfg, total_steps=cfg.trainer.max_steps * per_step)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    reference.to(accelerator.device)
    ppo = PPO(cfg, accelerator, model, optimizer, scheduler, reference, tokenizer)
    ppo.rewarder = Rewarder(task, accelerator.device)
    rank, world = accelerator.process_index, accelerator.num_processes
    if "ptx" in folders:
        ppo.ptx = ptx_batches(
            folders["ptx"],
            lm,
            tokenizer,
            cfg.ptx.micro_batch_size or cfg.trainer.micro_batch_size,
            cfg.seed,
            rank,
            world,
        )
    held_out = None
    if "eval" in folders:
        held_out = TokenBatches(
            TokenRows(folders["eval"].shard_paths),
            cfg.trainer.micro_batch_size,
            cfg.seed,
            rank,
            world,
            shuffle=False,
            pad_id=loss_pad_id(tokenizer),
        )
    prompts = short_prompts(prompts_dataset(folders["data"]), tokenizer, task.max_prompt_tokens)["prompt"]
    order = RowOrder(
        len(prompts), task.rollout_batch_size, cfg.seed, rank, world, batch_option="task.rollout_batch_size"
    )

    step = 0
    resume_from = checkpoint.latest(run_dir.checkpoints) if cfg.resume else None
    if resume_from is not None:
        saved = checkpoint.load(accelerator, resume_from)
        step, ppo.kl.value = saved["step"], saved["kl_coef"]
        accelerator.print(f"resumed from {resume_from} at step {step}")
    accelerator.print(
        f"ppo: {sum(p.numel() for p in lm.parameters()):,} parameters, {len(prompts):,} prompts, "
        f"{task.rollout_batch_size * world} completions per step, {per_step} optimizer step(s) per PPO step, "
        f"{world} process(es) on {accelerator.device}"
    )
    if held_out is not None and step == 0:
        run_dir.log_metrics({"step": 0, "eval_loss": evaluate(model, held_out, task.eval_rows, accelerator)})

    last: dict[str, float] = {}
    while step < cfg.trainer.max_steps:
        chosen = order.indices(step).tolist()
        batch = [prompts[i] for i in chosen]
        ids = [
            tokenizer.apply_chat_template(p, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
            for p in batch
        ]
        rollout = ppo.rollout(batch, ids)
        metrics = ppo.advantages(rollout)
        metrics.update(ppo.update(rollout, step))
        ppo.kl.update(metrics["kl"], task.rollout_batch_size * world)
        step += 1
        last = {"step": step, **metrics, "lr": scheduler.get_last_lr()[0]}
        if held_out is not None and (
            step == cfg.trainer.max_steps or (task.eval_every and step % task.eval_every == 0)
        ):
            last["eval_loss"] = evaluate(model, held_out, task.eval_rows, accelerator)
        if step % cfg.log.every == 0 or step == cfg.trainer.max_steps or "eval_loss" in last:
            run_dir.log_metrics(last)
            accelerator.print(
                f"step {step}/{cfg.trainer.max_steps} | reward {metrics['reward']:.4f} | kl {metrics['kl']:.3f} "
                f"| kl_coef {ppo.kl.value:.4f}"
                + (f" | ptx {metrics['ptx_loss']:.4f}" if "ptx_loss" in metrics else ""),
                flush=True,
            )
        if step % cfg.checkpoint.every == 0 or step == cfg.trainer.max_steps:
            checkpoint.save(
                accelerator, run_dir.checkpoints, step, {"step": step, "kl_coef": ppo.kl.value}, cfg.checkpoint.keep
            )

    save_policy(accelerator, model, tokenizer, run_dir)
    summary = {
        "steps": step,
        "final_reward": last.get("reward", math.nan),
        "final_kl": last.get("kl", math.nan),
        "kl_coef": ppo.kl.value,
        **({"eval_loss": last["eval_loss"]} if "eval_loss" in last else {}),
    }
    run_dir.finish(summary)
    return summary


def save_policy(accelerator, model, tokenizer, run_dir: RunDir) -> None:
    """The policy as a plain causal LM (+ tokenizer) in `model/`; the value head beside it."""
    from safetensors.torch import save_file

    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        policy = accelerator.unwrap_model(model)
        lm_state = {k[len("lm.") :]: v for k, v in state_dict.items() if k.startswith("lm.")}
        policy.lm.save_pretrained(run_dir.model_dir, state_dict=lm_state)
        tokenizer.save_pretrained(run_dir.model_dir)
        head = {k[len("value_head.") :]: v.contiguous() for k, v in state_dict.items() if k.startswith("value_head.")}
        save_file(head, str(run_dir.model_dir / "value_head.safetensors"))
    accelerator.wait_for_everyone()
