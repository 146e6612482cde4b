"""The wiring the trl tasks share (sft, reward, dpo, rlhf), so each task module only says what is
particular to it: which dataset columns, which trl trainer, which task options.

- `training_args`: one trl config object from the shared top-level options (steps, batch, AdamW,
  warmup + cosine, precision, checkpoints, logging, seed), the task's named options, and any other
  trl option given as `+task.args.<name>=...` (checked against the trl class's fields).
- `lora_config`: peft's LoraConfig from `task.lora`.
- `policy_path`: trl trainers load the policy from a folder (with no path, DPO/RLOO cannot name
  their reference model), so a from-scratch model is saved to `<run>/init` first.
- `fit`: resume from the newest complete checkpoint, train, save the final model, finish lineage.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from omegaconf import DictConfig

from curate.compose import resolved_dict
from curate.errors import ConfigError
from train.lineage import RunDir

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import TrainerCallback, TrainingArguments

ConfigT = TypeVar("ConfigT", bound="TrainingArguments")  # a trl config class: SFTConfig, RewardConfig, ...

# TrainingArguments fields set from the shared options: set those (optim.lr, ...), not task.args.
SHARED_FIELDS = {
    "output_dir": "output.dir",
    "max_steps": "trainer.max_steps",
    "per_device_train_batch_size": "trainer.micro_batch_size",
    "gradient_accumulation_steps": "trainer.grad_accum_steps",
    "learning_rate": "optim.lr",
    "lr_scheduler_type": "optim.warmup_steps and optim.min_lr_ratio (warmup + cosine)",
    "lr_scheduler_kwargs": "optim.min_lr_ratio",
    "warmup_steps": "optim.warmup_steps",
    "weight_decay": "optim.weight_decay",
    "adam_beta1": "optim.beta1",
    "adam_beta2": "optim.beta2",
    "adam_epsilon": "optim.eps",
    "max_grad_norm": "optim.grad_clip",
    "seed": "seed",
    "data_seed": "seed",
    "bf16": "trainer.precision",
    "fp16": "trainer.precision",
    "use_cpu": "trainer.precision",
    "activation_checkpointing": "trainer.activation_checkpointing",
    "torch_compile": "trainer.compile",
    "logging_steps": "log.every",
    "report_to": "log.report_to",
    "save_steps": "checkpoint.every",
    "save_total_limit": "checkpoint.keep",
    "fsdp": "distributed.fsdp",
    "fsdp_config": "distributed.fsdp",
    "model_init_kwargs": "model.attn_implementation",
}
# Task options that are Thresher's, not trl's.
OWN_TASK_FIELDS = ("name", "lora", "args", "algorithm", "reward_model", "max_prompt_tokens")
GENERATION_MARKER = re.compile(r"{%-?\s*generation\s*-?%}")


def precision_flags(precision: str) -> dict[str, bool]:
    """TrainingArguments' precision flags for `trainer.precision` (auto: bf16 on a GPU that has it)."""
    from train.runtime import no_accelerator

    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16", "use_cpu": no_accelerator()}


def task_options(task: DictConfig) -> dict[str, Any]:
    """The task's named options that are trl config fields (same names)."""
    options = resolved_dict(task)
    return {k: v for k, v in options.items() if k not in OWN_TASK_FIELDS and v is not None}


def training_args(config_cls: type[ConfigT], cfg: DictConfig, run: RunDir, options: dict[str, Any]) -> ConfigT:
    """A trl config (`SFTConfig`, `RewardConfig`, ...) for this run. Raises ConfigError (one line)."""
    shared = {
        "output_dir": str(run.checkpoints),
        "max_steps": cfg.trainer.max_steps,
        "per_device_train_batch_size": cfg.trainer.micro_batch_size,
        "gradient_accumulation_steps": cfg.trainer.grad_accum_steps,
        "learning_rate": cfg.optim.lr,
        "lr_scheduler_type": "cosine_with_min_lr",
        "lr_scheduler_kwargs": {"min_lr_rate": cfg.optim.min_lr_ratio},
        "warmup_steps": cfg.optim.warmup_steps,
        "weight_decay": cfg.optim.weight_decay,
        "adam_beta1": cfg.optim.beta1,
        "adam_beta2": cfg.optim.beta2,
        "adam_epsilon": cfg.optim.eps,
        "max_grad_norm": cfg.optim.grad_clip,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        **precision_flags(cfg.trainer.precision),
        "activation_checkpointing": cfg.trainer.activation_checkpointing,
        "torch_compile": cfg.trainer.compile,
        "logging_steps": cfg.log.every,
        "report_to": list(cfg.log.report_to) or "none",
        "save_strategy": "steps",
        "save_steps": cfg.checkpoint.every,
        "save_total_limit": cfg.checkpoint.keep,
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": False,  # every parameter takes part in the loss: skip the extra graph walk
        "disable_tqdm": True,
    }
    if cfg.distributed.fsdp:
        shared["fsdp"] = "full_shard auto_wrap" + (" offload" if cfg.distributed.fsdp_cpu_offload else "")
        shared["fsdp_config"] = {"fsdp_version": 2, "reshard_after_forward": True}
    extra = resolved_dict(cfg.task.args)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for key in {**options, **extra}:
        if key in SHARED_FIELDS and key in extra:
            raise ConfigError(f"task.args.{key}: set {SHARED_FIELDS[key]} instead")
        if key not in fields:
            source = "task.args" if key in extra else "task"
            raise ConfigError(f"{source}.{key}: not an option of trl's {config_cls.__name__}")
    try:
        return config_cls(**shared, **options, **extra)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"task: {str(error).strip().splitlines()[0]}") from None


def lora_config(lora: DictConfig, task_type: str) -> LoraConfig | None:
    """peft's LoraConfig for `task.lora` (None when LoRA is off)."""
    if not lora.enabled:
        return None
    from peft import LoraConfig

    target = lora.target_modules
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        task_type=task_type,
        target_modules=target if isinstance(target, str) else list(target),
    )


def require_chat_template(tokenizer, tokenizer_dir: str, generation_markers: bool = False) -> None:
    """Conversational data needs a chat template; assistant-only loss needs its {% generation %} markers."""
    template = tokenizer.chat_template
    if not template:
        raise ConfigError(f"tokenizer: '{tokenizer_dir}' has no chat template (conversational data needs one)")
    if generation_markers and not GENERATION_MARKER.search(template):
        raise ConfigError(
            f"task.assistant_only_loss: the chat template of '{tokenizer_dir}' has no {{% generation %}} markers; "
            "add them around assistant turns or set task.assistant_only_loss=false"
        )


def policy_path(cfg: DictConfig, tokenizer, run: RunDir, state) -> str:
    """The folder trl loads the policy from: `model.path`, or a from-scratch model saved to <run>/init."""
    if cfg.model.path is not None:
        return str(cfg.model.path)
    from train.modeling import build_causal_lm

    init = run.root / "init"
    if state.is_main_process and not (init / "config.json").is_file():
        model = build_causal_lm(cfg.model, tokenizer, cfg.seed)
        model.save_pretrained(init)
        tokenizer.save_pretrained(init)
    state.wait_for_everyone()
    return str(init)


def model_init_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """How trl loads models from folders: fp32 master weights (autocast does bf16), the attention kernel."""
    return {"dtype": "float32", "attn_implementation": cfg.model.attn_implementation}


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest `checkpoint-N` that was written completely (transformers writes trainer_state.json last)."""
    if not folder.is_dir():
        return None
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and (p / "trainer_state.json").is_file()]
    found.sort(key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return str(found[-1]) if found else None


def metrics_callback(run: RunDir) -> TrainerCallback:
    """A transformers callback that appends every log line to the run's metrics.jsonl."""
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                run.log_metrics({"step": state.global_step, **logs})

    return MetricsCallback()


def fit(trainer, cfg: DictConfig, run: RunDir, tokenizer, lora_merge: bool = False) -> dict[str, Any]:
    """Train (resuming from the newest complete checkpoint), save the final model and tokenizer to
    <run>/model (LoRA adapters merged into the weights when `lora_merge`), record the summary."""
    trainer.add_callback(metrics_callback(run))
    resume_from = last_complete_checkpoint(run.checkpoints) if cfg.resume else None
    if resume_from and trainer.accelerator.is_main_process:
        print(f"resuming from {resume_from}", flush=True)
    result = trainer.train(resume_from_checkpoint=resume_from)
    if lora_merge:
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        if trainer.accelerator.is_main_process:
            merged.save_pretrained(run.model_dir)
    else:
        trainer.save_model(str(run.model_dir))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(run.model_dir)
        # transformers pickles its TrainingArguments next to the weights; the run's config is in
        # run.json, and a pickle is not something the next stage should ever have to load.
        (run.model_dir / "training_args.bin").unlink(missing_ok=True)
    trainer.accelerator.wait_for_everyone()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    summary = {
        "steps": trainer.state.global_step,
        "final_loss": losses[-1] if losses else math.nan,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "resumed_from": resume_from,
    }
    run.finish(summary)
    return summary


@dataclasses.dataclass
class TaskContext:
    """What a trl task's `build` function gets: config, process state, run dir, data, tokenizer."""

    cfg: DictConfig
    state: Any
    run: RunDir
    folders: dict
    tokenizer: Any
    tokenizer_dir: str

    def args(self, config_cls: type[ConfigT], **options: Any) -> ConfigT:
        """The trl config for this run: shared options, the task's named options, then `options`."""
        merged = {**task_options(self.cfg.task), "model_init_kwargs": model_init_kwargs(self.cfg), **options}
        return training_args(config_cls, self.cfg, self.run, merged)

    def policy(self) -> str:
        return policy_path(self.cfg, self.tokenizer, self.run, self.state)

    def trainer_class(self, base: type) -> type:
        """`base`, with the pre-training mix when `ptx.data` is set."""
        from train.ptx import with_ptx

        return with_ptx(base) if self.cfg.ptx.data is not None else base


def run_trl_task(
    cfg: DictConfig,
    build: Callable[[TaskContext], Any],
    generation_markers: bool = False,
    extra_lineage: dict | None = None,
) -> dict[str, Any]:
    """Set up the run (data checked, lineage written), build the trainer with `build(ctx)`, train, save."""
    from train.modeling import load_tokenizer
    from train.ptx import attach_ptx
    from train.runtime import (
        check_fsdp,
        open_inputs,
        process_state,
        start_run,
        tokenizer_path,
    )

    state = process_state(cfg)
    check_fsdp(cfg, state)
    folders = open_inputs(cfg, state)
    tokenizer_dir = tokenizer_path(cfg)
    tokenizer = load_tokenizer(tokenizer_dir)
    require_chat_template(tokenizer, tokenizer_dir, generation_markers)
    run = start_run(cfg, state, folders, tokenizer_dir, extra_lineage)
    try:
        trainer = build(TaskContext(cfg, state, run, folders, tokenizer, tokenizer_dir))
        if len(trainer.train_dataset) == 0:
            raise ConfigError(
                f"data: no example of '{cfg.data}' is left after trl's preprocessing (longer than task.max_length?)"
            )
        attach_ptx(trainer, cfg, folders)
        lora = getattr(cfg.task, "lora", None)
        return fit(trainer, cfg, run, tokenizer, lora_merge=bool(lora and lora.enabled and lora.merge))
    finally:
        run.unlock()
