"""Direct preference optimisation: trl's DPOTrainer on a `preference` dataset.

The policy starts from `model.path` (the SFT model); the frozen reference is the same folder
loaded a second time (with LoRA, the policy with its adapters disabled). `task.beta` sets the
strength of the implicit KL constraint, `task.loss_type` the loss (sigmoid = the DPO paper's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from train.data import hf_dataset
from train.trl_common import TaskContext, lora_config, run_trl_task

if TYPE_CHECKING:
    from trl import DPOTrainer


def build(ctx: TaskContext) -> DPOTrainer:
    from trl import DPOConfig, DPOTrainer

    return ctx.trainer_class(DPOTrainer)(
        model=ctx.policy(),
        args=ctx.args(DPOConfig, loss_type=[ctx.cfg.task.loss_type]),
        train_dataset=hf_dataset(ctx.folders["data"], ["prompt", "chosen", "rejected"]),
        processing_class=ctx.tokenizer,
        peft_config=lora_config(ctx.cfg.task.lora, "CAUSAL_LM"),
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    return run_trl_task(cfg, build)
