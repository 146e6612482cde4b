"""Reward model: trl's RewardTrainer on a `preference` dataset.

The model is a sequence classifier with one output (`AutoModelForSequenceClassification`,
num_labels=1) initialised from `model.path` (InstructGPT starts it from the SFT model); it is
trained with the Bradley-Terry loss -log sigmoid(r(prompt + chosen) - r(prompt + rejected)) on the
conversational `prompt` / `chosen` / `rejected` columns. The saved model is what `task=rlhf`
takes as `task.reward_model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from train.data import hf_dataset
from train.trl_common import TaskContext, lora_config, run_trl_task

if TYPE_CHECKING:
    from trl import RewardTrainer


def build(ctx: TaskContext) -> RewardTrainer:
    from trl import RewardConfig, RewardTrainer

    return RewardTrainer(
        model=ctx.policy(),
        args=ctx.args(RewardConfig),
        train_dataset=hf_dataset(ctx.folders["data"], ["prompt", "chosen", "rejected"]),
        processing_class=ctx.tokenizer,
        peft_config=lora_config(ctx.cfg.task.lora, "SEQ_CLS"),
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    return run_trl_task(cfg, build)
