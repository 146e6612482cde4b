"""The typed configuration of the train app (Hydra structured configs) and its validation.

`conf/train.yaml` composes `TrainConfig` with one `task/` file and one `model/` file. Hydra checks
names and types while composing (a misspelt option is a one-line error naming the valid keys);
`validate` checks what composition cannot (required values, choices, ranges) before any data or
model is read. Each task has its own schema (`PretrainTask`, `SFTTask`, ...), stored in the
`task_schema` group and pulled in by the task's YAML file, so `task.<option>` is checked too.

Options named like trl's (`max_length`, `beta`, `num_generations`, ...) are passed to trl's config
class under the same name; anything else trl offers is reachable through `+task.args.<name>=...`,
checked against the trl class's fields before the run starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from curate import fs
from curate.errors import ConfigError


@dataclass
class ModelConfig:
    """The model: a local pretrained folder (`path`), or an architecture built from scratch."""

    path: Optional[str] = None  # a folder written by save_pretrained (e.g. <run>/model); wins over the fields below
    arch: str = "llama"  # a transformers model_type (llama, mistral, qwen2, ...) built from the fields below
    hidden_size: int = 64
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: Optional[int] = None  # grouped-query attention; None = num_attention_heads
    max_position_embeddings: int = 512
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    vocab_size: Optional[int] = None  # None: the tokenizer's size rounded up to a multiple of pad_vocab_to
    pad_vocab_to: int = 64  # matmul-friendly vocabulary size (nanoGPT pads 50257 to 50304)
    initializer_range: float = 0.02
    attn_implementation: str = "sdpa"  # eager, sdpa, flash_attention_2 (also applied to a loaded `path`)


@dataclass
class OutputConfig:
    dir: str = "out/train/${task.name}"  # the run directory: lineage, metrics, checkpoints, model/
    overwrite: bool = False  # replace a different run (other config or data) found in `dir`


@dataclass
class TrainerConfig:
    """How the optimisation runs: steps, batch geometry, precision."""

    max_steps: int = 100  # optimizer steps
    micro_batch_size: int = 8  # sequences (or examples) per device per forward/backward pass
    grad_accum_steps: int = 1  # micro-batches per optimizer step; global batch = micro x accum x devices
    precision: str = "auto"  # auto (bf16 on a CUDA GPU that supports it, else fp32), fp32, bf16, fp16
    activation_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% more compute
    compile: bool = False  # torch.compile the model (GPU runs; slow to start)
    cpu_threads: Optional[int] = None  # torch threads per process; None = torch's default (one per core).
    # On a shared or oversubscribed CPU, 1 is often several times faster than contended threads.


@dataclass
class OptimConfig:
    """AdamW with linear warmup and cosine decay to min_lr_ratio x lr."""

    lr: float = 3.0e-4
    min_lr_ratio: float = 0.1  # cosine decays to lr x this (Chinchilla / nanoGPT: 0.1)
    warmup_steps: int = 10
    weight_decay: float = 0.1  # on matrices only (not on norms, biases); GPT-3: 0.1
    beta1: float = 0.9
    beta2: float = 0.95  # GPT-3 / Llama pre-training value; trl's tasks set their own in task/*.yaml
    eps: float = 1.0e-8
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping


@dataclass
class CheckpointConfig:
    every: int = 50  # optimizer steps between checkpoints (the last step is always saved)
    keep: int = 2  # newest checkpoints kept


@dataclass
class LogConfig:
    every: int = 10  # optimizer steps between metric lines (metrics.jsonl and the console)
    report_to: list[str] = field(default_factory=list)  # also send metrics to: tensorboard, wandb, ...
    peak_tflops: Optional[float] = None  # per-device peak for MFU; None: looked up from the GPU's name


@dataclass
class PtxConfig:
    """InstructGPT's pre-training mix ("PPO-ptx"): add coef x the LM loss on `tokens` rows to each step."""

    data: Optional[str] = None  # a `tokens` dataset folder
    coef: float = 0.0  # gamma in InstructGPT (they used 27.8 with their loss scaling); 0 disables
    micro_batch_size: Optional[int] = None  # token rows per micro-step; None = trainer.micro_batch_size


@dataclass
class DistributedConfig:
    """Multi-device settings. The process layout comes from the launcher (torchrun / accelerate launch)."""

    fsdp: bool = False  # shard parameters, gradients and optimizer state (large models); else DDP
    fsdp_cpu_offload: bool = False  # keep sharded parameters on the CPU between uses
    timeout_minutes: int = 30  # collective-operation timeout


@dataclass
class LoraOptions:
    """Low-rank adapters (peft). `merge` saves the merged full model so later stages load a plain model."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Any = "all-linear"  # "all-linear" or a list of module names
    merge: bool = True


@dataclass
class PretrainTask:
    """Causal LM pre-training on a `tokens` dataset (the loop in train/pretrain.py)."""

    name: str = "pretrain"
    shuffle: bool = True  # visit the rows in a seeded random order, a new one each epoch
    doc_mask: bool = False  # attend within each packed document only (Llama 3), from the rows' doc_starts
    eval_data: Optional[str] = None  # a held-out `tokens` dataset (same tokenizer): its loss is measured
    eval_every: int = 0  # evaluate every N steps as well as at the end (0: at the end only)
    eval_rows: int = 0  # evaluate on the first N rows of eval_data (0: all of them)


@dataclass
class SFTTask:
    """trl SFTTrainer on a `chat` dataset."""

    name: str = "sft"
    max_length: int = 1024  # tokens per example (and per packed row)
    assistant_only_loss: bool = True  # loss on assistant turns only (needs {% generation %} in the chat template)
    packing: bool = True  # several conversations per row
    packing_strategy: str = "bfd"  # bfd (best-fit, no cross-attention between examples), wrapped
    lora: LoraOptions = field(default_factory=LoraOptions)
    args: dict[str, Any] = field(default_factory=dict)  # more trl SFTConfig options


@dataclass
class RewardTask:
    """trl RewardTrainer (Bradley-Terry) on a `preference` dataset."""

    name: str = "reward"
    max_length: int = 1024
    center_rewards_coefficient: Optional[float] = None  # pushes mean reward to 0 (Eisenstein et al. 2023: 0.01)
    lora: LoraOptions = field(default_factory=LoraOptions)
    args: dict[str, Any] = field(default_factory=dict)  # more trl RewardConfig options


@dataclass
class DPOTask:
    """trl DPOTrainer on a `preference` dataset; the reference model is the initial policy."""

    name: str = "dpo"
    beta: float = 0.1  # strength of the KL constraint to the reference (DPO paper: 0.1)
    loss_type: str = "sigmoid"  # sigmoid (DPO), ipo, hinge, ... (trl's list)
    max_length: int = 1024
    lora: LoraOptions = field(default_factory=LoraOptions)
    args: dict[str, Any] = field(default_factory=dict)  # more trl DPOConfig options


@dataclass
class RLHFTask:
    """Online policy optimisation against a trained reward model (trl RLOOTrainer or GRPOTrainer)."""

    name: str = "rlhf"
    algorithm: str = "rloo"  # rloo (REINFORCE leave-one-out) or grpo
    reward_model: str = MISSING  # the reward run's model folder (<reward run>/model)
    num_generations: int = 4  # completions per prompt (the group / leave-one-out baseline)
    max_completion_length: int = 64
    max_prompt_tokens: int = 512  # longer prompts are skipped (trl 1.x no longer truncates them); 0 = keep all
    temperature: float = 1.0
    beta: Optional[float] = None  # KL coefficient to the initial policy; None = trl's default (rloo 0.05, grpo 0)
    lora: LoraOptions = field(default_factory=LoraOptions)
    args: dict[str, Any] = field(default_factory=dict)  # more trl RLOOConfig / GRPOConfig options


@dataclass
class PPOTask:
    """InstructGPT's PPO (train/ppo.py): a value head, GAE, clipped policy and value losses, a KL
    penalty to the starting model; `ptx.data` + `ptx.coef` add the pre-training mix (PPO-ptx).
    Defaults: trl 0.x's PPOConfig (4 epochs per rollout, clip 0.2 for policy and value, vf_coef 0.1,
    gamma 1, lambda 0.95, KL coefficient 0.2 adapted toward 6 nats per sequence over a horizon of
    10,000 samples, as Ziegler et al. 2019)."""

    name: str = "ppo"
    reward_model: Optional[str] = None  # a task=reward run's model folder (<reward run>/model)
    reward_function: Optional[str] = None  # or "module:function", called as f(prompts, completions) -> rewards
    rollout_batch_size: int = 64  # prompts per PPO step per process (one completion each)
    num_ppo_epochs: int = 4  # passes over each rollout
    max_completion_length: int = 64  # new tokens per completion
    max_prompt_tokens: int = 512  # longer prompts (chat-templated) are skipped; 0 = keep all
    temperature: float = 1.0  # sampling temperature (the log-probs use the same)
    kl_coef: float = 0.2  # KL penalty coefficient (the starting value when kl_target is set)
    kl_target: Optional[float] = 6.0  # KL per sequence the coefficient adapts toward; null: fixed kl_coef
    kl_horizon: float = 10000.0  # samples over which the coefficient moves by at most 20% of the error
    gamma: float = 1.0  # discount over completion tokens
    lam: float = 0.95  # GAE lambda
    cliprange: float = 0.2  # policy ratio clip
    cliprange_value: float = 0.2  # value clip around the rollout's values
    vf_coef: float = 0.1  # weight of the value loss
    eval_data: Optional[str] = None  # a held-out `tokens` dataset: its LM loss (eval_loss) measures the alignment tax
    eval_every: int = 0  # measure it every N steps as well as before the first and after the last (0: those two)
    eval_rows: int = 0  # on its first N rows (0: all of them)


TASK_SCHEMAS = {
    "pretrain": PretrainTask,
    "sft": SFTTask,
    "reward": RewardTask,
    "dpo": DPOTask,
    "rlhf": RLHFTask,
    "ppo": PPOTask,
}


@dataclass
class TrainConfig:
    data: str = MISSING  # the dataset folder to train on (its kind must suit the task)
    tokenizer: Optional[str] = None  # a Hugging Face tokenizer folder; None: the one in model.path
    seed: int = 0
    resume: bool = True  # continue from the newest checkpoint in output.dir, if there is one
    output: OutputConfig = field(default_factory=OutputConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    task: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    ptx: PtxConfig = field(default_factory=PtxConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for name, schema in TASK_SCHEMAS.items():
        store.store(group="task_schema", name=name, node=schema)


CHOICES = {
    "trainer.precision": ("auto", "fp32", "bf16", "fp16"),
    "model.attn_implementation": ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention"),
}
POSITIVE = (
    "trainer.max_steps",
    "trainer.micro_batch_size",
    "trainer.grad_accum_steps",
    "optim.lr",
    "checkpoint.every",
    "checkpoint.keep",
    "log.every",
    "distributed.timeout_minutes",
)
NON_NEGATIVE = ("optim.warmup_steps", "optim.weight_decay", "optim.grad_clip", "ptx.coef")
PTX_TASKS = ("sft", "dpo", "rlhf", "ppo")  # trainers whose model is a causal LM that can take an LM loss


def validate(cfg: DictConfig) -> None:
    """Check what composition cannot, before anything is read. Raises ConfigError (one line)."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
    if missing:
        raise ConfigError(f"{missing[0]}: required value is missing (set {missing[0]}=...)")
    if cfg.task.name not in TASK_SCHEMAS:
        raise ConfigError(f"task.name: '{cfg.task.name}' is not one of: {', '.join(TASK_SCHEMAS)}")
    for key, allowed in CHOICES.items():
        if OmegaConf.select(cfg, key) not in allowed:
            raise ConfigError(f"{key}: '{OmegaConf.select(cfg, key)}' is not one of: {', '.join(allowed)}")
    for key in POSITIVE:
        if not OmegaConf.select(cfg, key) > 0:
            raise ConfigError(f"{key}: must be > 0")
    for key in NON_NEGATIVE:
        if OmegaConf.select(cfg, key) < 0:
            raise ConfigError(f"{key}: must be >= 0")
    if not 0.0 <= cfg.optim.min_lr_ratio <= 1.0:
        raise ConfigError("optim.min_lr_ratio: must be within [0, 1]")
    for key in ("data", "tokenizer", "model.path", "ptx.data"):
        value = OmegaConf.select(cfg, key)
        if value is not None and not fs.exists(value):  # local, or a URL (s3://...: curate.fs)
            raise ConfigError(f"{key}: '{value}' does not exist")
    if (cfg.ptx.coef > 0) != (cfg.ptx.data is not None):
        raise ConfigError("ptx.data and ptx.coef: set both (a tokens dataset and a coefficient > 0) or neither")
    if cfg.ptx.data is not None and cfg.task.name not in PTX_TASKS:
        raise ConfigError(f"ptx.data: the pre-training mix applies to {', '.join(PTX_TASKS)}, not task={cfg.task.name}")
    if cfg.trainer.cpu_threads is not None and cfg.trainer.cpu_threads <= 0:
        raise ConfigError("trainer.cpu_threads: must be > 0 (or null for torch's default)")
    if cfg.ptx.micro_batch_size is not None and cfg.ptx.micro_batch_size <= 0:
        raise ConfigError("ptx.micro_batch_size: must be > 0")
    if cfg.task.name == "rlhf":
        if cfg.task.algorithm not in ("rloo", "grpo"):
            raise ConfigError(f"task.algorithm: '{cfg.task.algorithm}' is not one of: rloo, grpo")
        if not Path(cfg.task.reward_model).is_dir():
            raise ConfigError(
                f"task.reward_model: '{cfg.task.reward_model}' is not a model folder (train one with task=reward)"
            )
        if cfg.task.num_generations < 2:
            raise ConfigError(
                "task.num_generations: must be >= 2 (the baseline is computed across a prompt's completions)"
            )
    if cfg.task.name == "ppo":
        validate_ppo(cfg)
    if cfg.task.name != "pretrain" and cfg.tokenizer is None and cfg.model.path is None:
        raise ConfigError(f"tokenizer: required for task={cfg.task.name} unless model.path holds one")


def validate_ppo(cfg: DictConfig) -> None:
    task = cfg.task
    if (task.reward_model is None) == (task.reward_function is None):
        raise ConfigError(
            "task.reward_model: set either task.reward_model (a reward run's model folder) or task.reward_function"
        )
    if task.reward_function is not None:
        load_reward_function(task.reward_function)
    if task.reward_model is not None and not Path(task.reward_model).is_dir():
        raise ConfigError(
            f"task.reward_model: '{task.reward_model}' is not a model folder (train one with task=reward)"
        )
    for key in ("rollout_batch_size", "num_ppo_epochs", "max_completion_length", "temperature", "kl_horizon"):
        if not task[key] > 0:
            raise ConfigError(f"task.{key}: must be > 0")
    for key in ("kl_coef", "cliprange", "cliprange_value", "vf_coef", "eval_every", "eval_rows", "max_prompt_tokens"):
        if task[key] < 0:
            raise ConfigError(f"task.{key}: must be >= 0")
    if task.kl_target is not None and task.kl_target <= 0:
        raise ConfigError("task.kl_target: must be > 0 (or null for a fixed task.kl_coef)")
    if not (0 <= task.gamma <= 1 and 0 <= task.lam <= 1):
        raise ConfigError("task.gamma: gamma and lam must be within [0, 1]")
    per_update = cfg.trainer.micro_batch_size * cfg.trainer.grad_accum_steps
    if task.rollout_batch_size % per_update:
        raise ConfigError(
            f"task.rollout_batch_size: {task.rollout_batch_size} is not a multiple of "
            f"trainer.micro_batch_size x trainer.grad_accum_steps ({per_update})"
        )
    if task.eval_data is not None and not Path(task.eval_data).exists():
        raise ConfigError(f"task.eval_data: '{task.eval_data}' does not exist")


def load_reward_function(spec: str) -> Callable:
    """`task.reward_function`: 'module:function' in an importable module, called as
    function(prompts, completions) -> one reward per completion (prompts are conversations)."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ConfigError(f"task.reward_function: '{spec}' is not 'module:function'")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"task.reward_function: cannot load '{spec}' ({error})") from None
    if not callable(function):
        raise ConfigError(f"task.reward_function: '{spec}' is not callable")
    return function
