"""Supervised fine-tuning: trl's SFTTrainer on a `chat` dataset.

The `messages` column is what SFTTrainer reads as conversational data: it applies the tokenizer's
chat template, masks everything but the assistant turns (`task.assistant_only_loss`, which needs
`{% generation %}` markers in the template), and packs conversations into rows of
`task.max_length` (`task.packing`). `task.lora.enabled` trains low-rank adapters instead of all
weights (peft), merged into the saved model unless `task.lora.merge=false`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from train.data import hf_dataset
from train.trl_common import TaskContext, lora_config, run_trl_task

if TYPE_CHECKING:
    from trl import SFTTrainer


def build(ctx: TaskContext) -> SFTTrainer:
    from trl import SFTConfig, SFTTrainer

    return ctx.trainer_class(SFTTrainer)(
        model=ctx.policy(),
        args=ctx.args(SFTConfig),
        train_dataset=hf_dataset(ctx.folders["data"], ["messages"]),
        processing_class=ctx.tokenizer,
        peft_config=lora_config(ctx.cfg.task.lora, "CAUSAL_LM"),
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    return run_trl_task(cfg, build, generation_markers=cfg.task.assistant_only_loss)
