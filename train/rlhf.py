"""RLHF: online policy optimisation against a trained reward model (trl's RLOOTrainer or GRPOTrainer).

The last step of InstructGPT's pipeline (SFT -> reward model -> RL). For each prompt of the dataset
(`prompt` of a `preference` dataset, or a `chat` conversation up to its last assistant turn) the
policy samples `task.num_generations` completions; the reward model (`task.reward_model`, a
`task=reward` run's model folder, with its own tokenizer) scores them; the advantage of each
completion is its reward against the others' (RLOO: leave-one-out mean; GRPO: group-normalised),
and the policy is updated with a KL penalty `task.beta` to the initial policy. trl 1.x has no PPO
trainer: RLOO is the critic-free REINFORCE estimator Ahmadian et al. (2024) found as good as PPO
for RLHF. `ptx.data` adds InstructGPT's pre-training mix.

Prompts longer than `task.max_prompt_tokens` (in the policy's chat template, default 512 as older
trl versions truncated to) are skipped and counted in the log: trl 1.x generates from the whole
prompt, and a long one costs quadratic time or overflows a small model's context.

Batch geometry (trl): `trainer.micro_batch_size` counts completions, so each step sees
micro_batch_size x grad_accum_steps x devices / num_generations prompts; that product must be a
multiple of `task.num_generations`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from train.data import prompts_dataset
from train.lineage import model_lineage
from train.modeling import load_tokenizer
from train.trl_common import TaskContext, lora_config, run_trl_task

if TYPE_CHECKING:
    import datasets
    from trl import GRPOTrainer, RLOOTrainer


def short_prompts(prompts: datasets.Dataset, tokenizer, max_tokens: int) -> datasets.Dataset:
    """The prompts whose chat-templated length is at most `max_tokens` (all of them for 0)."""
    if max_tokens <= 0:
        return prompts

    def fits(row: dict) -> bool:
        encoded = tokenizer.apply_chat_template(
            row["prompt"], tokenize=True, add_generation_prompt=True, return_dict=True
        )
        return len(encoded["input_ids"]) <= max_tokens

    kept = prompts.filter(fits)
    print(f"{len(kept):,} of {len(prompts):,} prompts within task.max_prompt_tokens={max_tokens}", flush=True)
    if len(kept) == 0:
        from curate.errors import ConfigError

        raise ConfigError(f"task.max_prompt_tokens: no prompt of the data is {max_tokens} tokens or shorter")
    return kept


def build(ctx: TaskContext) -> RLOOTrainer | GRPOTrainer:
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    base, config = {"rloo": (RLOOTrainer, RLOOConfig), "grpo": (GRPOTrainer, GRPOConfig)}[ctx.cfg.task.algorithm]
    reward_model = str(ctx.cfg.task.reward_model)
    return ctx.trainer_class(base)(
        model=ctx.policy(),
        reward_funcs=reward_model,
        args=ctx.args(config),
        train_dataset=short_prompts(
            prompts_dataset(ctx.folders["data"]), ctx.tokenizer, ctx.cfg.task.max_prompt_tokens
        ),
        processing_class=ctx.tokenizer,
        reward_processing_classes=load_tokenizer(reward_model),
        peft_config=lora_config(ctx.cfg.task.lora, "CAUSAL_LM"),
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    return run_trl_task(cfg, build, extra_lineage={"reward_model": model_lineage(cfg.task.reward_model)})
