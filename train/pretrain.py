"""Causal-LM pre-training on a `tokens` dataset: one readable loop.

    for step in range(start, max_steps):
        for each of grad_accum_steps micro-batches:      # gradients synchronised on the last only
            loss = model(input_ids, labels=input_ids).loss  # padding left out of the labels
            fetch the next micro-batch                    # overlaps the forward pass on a GPU
            backward(loss / grad_accum_steps)
        clip the global gradient norm; AdamW step; warmup + cosine schedule step
        log loss, lr, tokens/s (and MFU on GPUs); checkpoint every `checkpoint.every` steps

`accelerate` places the model on the device(s), wraps it for DDP or FSDP when launched with
`torchrun` / `accelerate launch`, applies bf16/fp16 autocast, and saves and restores the complete
training state (model, optimizer, scheduler, RNG of every process). The data position is the
micro-batch counter: `TokenBatches.batch(i)` is a pure function of `i`, so a resumed run reads the
same batches, with the same RNG state, and continues bit-identically.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, cast

import torch
from accelerate.utils import DistributedType
from omegaconf import DictConfig

from curate.errors import ConfigError
from train import checkpoint
from train.data import TokenBatches, TokenRows, loss_pad_id
from train.lineage import RunDir
from train.modeling import build_causal_lm, flops_per_token, load_tokenizer, peak_flops
from train.runtime import (
    check_fsdp,
    no_accelerator,
    open_inputs,
    process_state,
    start_run,
    tokenizer_path,
)

if TYPE_CHECKING:
    from accelerate import Accelerator
    from transformers import PreTrainedModel


def mixed_precision(precision: str) -> str:
    """accelerate's mixed_precision for `trainer.precision` ("auto": bf16 on a GPU that has it, else fp32)."""
    if precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]


def make_accelerator(cfg: DictConfig, no_split_modules: list[str]) -> Accelerator:
    """The Accelerator: precision, torch.compile, and FSDP when `distributed.fsdp` is set."""
    from accelerate import Accelerator
    from accelerate.utils import FullyShardedDataParallelPlugin

    fsdp = None
    if cfg.distributed.fsdp:
        fsdp = FullyShardedDataParallelPlugin(
            fsdp_version=2,
            auto_wrap_policy="transformer_based_wrap",
            transformer_cls_names_to_wrap=list(no_split_modules),
            reshard_after_forward=True,
            cpu_offload=cfg.distributed.fsdp_cpu_offload,
            state_dict_type="SHARDED_STATE_DICT",
            activation_checkpointing=cfg.trainer.activation_checkpointing,
        )
    return Accelerator(
        cpu=no_accelerator(),
        mixed_precision=mixed_precision(cfg.trainer.precision),
        fsdp_plugin=fsdp,
        dynamo_backend="inductor" if cfg.trainer.compile else "no",
        step_scheduler_with_optimizer=False,  # one scheduler step per optimizer step, whatever the world size
        log_with=list(cfg.log.report_to) or None,
        project_dir=cfg.output.dir,
    )


def make_optimizer(model: torch.nn.Module, cfg: DictConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (embeddings and linear weights), not on norms or biases."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        groups,
        lr=cfg.optim.lr,
        betas=(cfg.optim.beta1, cfg.optim.beta2),
        eps=cfg.optim.eps,
        fused=torch.cuda.is_available() or None,
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: DictConfig, total_steps: int | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then cosine decay to `min_lr_ratio` x lr at `total_steps` optimizer steps
    (default `trainer.max_steps`), transformers' schedule."""
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer,
        num_warmup_steps=cfg.optim.warmup_steps,
        num_training_steps=total_steps or cfg.trainer.max_steps,
        min_lr_rate=cfg.optim.min_lr_ratio,
    )


def check_fit(rows: TokenRows, model: PreTrainedModel) -> None:
    """The data must fit the model: every token id inside the vocabulary, rows within the context."""
    vocab = cast(torch.nn.Embedding, model.get_input_embeddings()).num_embeddings  # transformers types it nn.Module
    largest = rows.max_token_id()
    if largest >= vocab:
        raise ConfigError(
            f"data: token id {largest} is outside the model's vocabulary ({vocab}); "
            "was the data tokenized with another tokenizer?"
        )
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and rows.seq_len > context:
        raise ConfigError(
            f"model.max_position_embeddings: {context} is shorter than the data's rows ({rows.seq_len} tokens)"
        )


class Meter:
    """Throughput and MFU over the steps since the last log line."""

    def __init__(self, tokens_per_step: int, flops_per_token: float, peak: float | None, devices: int):
        self.tokens_per_step, self.flops_per_token = tokens_per_step, flops_per_token
        self.peak, self.devices = peak, devices
        self.reset()

    def reset(self) -> None:
        self.started, self.steps = time.perf_counter(), 0

    def read(self) -> dict[str, float]:
        seconds = max(time.perf_counter() - self.started, 1e-9)
        tokens_per_s = self.steps * self.tokens_per_step / seconds
        metrics = {"tokens_per_s": tokens_per_s, "step_s": seconds / max(self.steps, 1)}
        if self.peak:
            metrics["mfu"] = tokens_per_s * self.flops_per_token / (self.peak * self.devices)
        self.reset()
        return metrics


def run(cfg: DictConfig) -> dict[str, Any]:
    """Pre-train per `cfg`; returns the summary recorded in run.json."""
    state = process_state(cfg)
    check_fsdp(cfg, state)
    folders = open_inputs(cfg, state)
    tokenizer_dir = tokenizer_path(cfg, folders["data"])
    tokenizer = load_tokenizer(tokenizer_dir)
    run_dir = start_run(cfg, state, folders, tokenizer_dir)
    try:
        return train(cfg, run_dir, folders, tokenizer)
    finally:
        run_dir.unlock()


def train(cfg: DictConfig, run_dir: RunDir, folders, tokenizer) -> dict[str, Any]:
    rows = TokenRows(folders["data"].shard_paths)
    model = build_causal_lm(cfg.model, tokenizer, cfg.seed)
    check_fit(rows, model)
    if cfg.trainer.activation_checkpointing and not cfg.distributed.fsdp:
        model.gradient_checkpointing_enable()
    accelerator = make_accelerator(cfg, getattr(model, "_no_split_modules", None) or [])
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    if cfg.distributed.fsdp and accelerator.distributed_type != DistributedType.FSDP:
        raise ConfigError("distributed.fsdp: accelerate did not enable FSDP (see its launch configuration)")
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    accum = cfg.trainer.grad_accum_steps
    batches = TokenBatches(
        rows,
        cfg.trainer.micro_batch_size,
        cfg.seed,
        accelerator.process_index,
        accelerator.num_processes,
        shuffle=cfg.task.shuffle,
        pad_id=loss_pad_id(tokenizer),
        doc_mask=cfg.task.doc_mask,
    )
    tokens_per_step = cfg.trainer.micro_batch_size * accum * accelerator.num_processes * rows.seq_len
    unwrapped = accelerator.unwrap_model(model)
    meter = Meter(
        tokens_per_step,
        flops_per_token(unwrapped, rows.seq_len),
        peak_flops(cfg.log.peak_tflops),
        accelerator.num_processes,
    )
    if cfg.log.report_to:
        accelerator.init_trackers("thresher", config={"task": "pretrain", "output": cfg.output.dir})

    step = 0
    resume_from = checkpoint.latest(run_dir.checkpoints) if cfg.resume else None
    if resume_from is not None:
        step = checkpoint.load(accelerator, resume_from)["step"]
        accelerator.print(f"resumed from {resume_from} at step {step}")
    accelerator.print(
        f"pretrain: {sum(p.numel() for p in unwrapped.parameters()):,} parameters, {len(rows):,} rows of "
        f"{rows.seq_len} tokens, {tokens_per_step:,} tokens per step, {accelerator.num_processes} process(es) "
        f"on {accelerator.device}"
    )

    def fetch(index: int, source: TokenBatches = batches) -> dict[str, torch.Tensor]:
        """Micro-batch `index` on the device (pinned + non-blocking on GPUs: the copy overlaps compute)."""
        batch = source.batch(index)
        if accelerator.device.type == "cuda":
            batch = {k: v.pin_memory() for k, v in batch.items()}
        return {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}

    held_out = None
    if "eval" in folders:
        eval_rows = TokenRows(folders["eval"].shard_paths)
        check_fit(eval_rows, unwrapped)
        held_out = TokenBatches(
            eval_rows,
            cfg.trainer.micro_batch_size,
            cfg.seed,
            accelerator.process_index,
            accelerator.num_processes,
            shuffle=False,
            pad_id=loss_pad_id(tokenizer),
            doc_mask=cfg.task.doc_mask,
        )
    eval_loss = None

    def evaluate(held_out: TokenBatches) -> float:
        """Mean loss per predicted token on the held-out rows, in order (each process its slice)."""
        count = held_out.per_epoch
        if cfg.task.eval_rows:
            count = min(count, max(1, cfg.task.eval_rows // held_out.global_batch))
        totals = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
        model.eval()
        with torch.no_grad():
            for index in range(count):
                batch = fetch(index, held_out)
                predicted = (batch["labels"][:, 1:] != -100).sum()
                totals += torch.stack([model(**batch).loss.double() * predicted, predicted.double()])
        model.train()
        totals = accelerator.reduce(totals, reduction="sum")
        return (totals[0] / totals[1]).item()

    model.train()
    last_loss = math.nan
    batch = fetch(step * accum)
    while step < cfg.trainer.max_steps:
        loss_sum = torch.zeros((), device=accelerator.device)
        for micro in range(accum):
            sync = accelerator.no_sync(model) if micro < accum - 1 else nullcontext()
            with sync:
                loss = model(**batch).loss
                # fetch the next micro-batch while the device runs the forward pass (nanoGPT does the same)
                batch = fetch(step * accum + micro + 1)
                accelerator.backward(loss / accum)
            loss_sum += loss.detach()
        grad_norm = None
        if cfg.optim.grad_clip > 0:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        meter.steps += 1

        if step % cfg.log.every == 0 or step == cfg.trainer.max_steps:
            last_loss = accelerator.reduce(loss_sum / accum, reduction="mean").item()
            epoch, _ = batches.position(step * accum)
            metrics = {
                "step": step,
                "loss": last_loss,
                "lr": lr,
                "epoch": epoch,
                "tokens": step * tokens_per_step,
                **meter.read(),
            }
            if grad_norm is not None:
                metrics["grad_norm"] = float(grad_norm)
            run_dir.log_metrics(metrics)
            if cfg.log.report_to:
                accelerator.log({k: v for k, v in metrics.items() if k != "step"}, step=step)
            mfu = f" | mfu {metrics['mfu']:.1%}" if "mfu" in metrics else ""
            accelerator.print(
                f"step {step}/{cfg.trainer.max_steps} | loss {last_loss:.4f} | lr {lr:.2e} | "
                f"{metrics['tokens_per_s']:,.0f} tok/s{mfu}",
                flush=True,
            )
        if held_out is not None and (
            step == cfg.trainer.max_steps or (cfg.task.eval_every and step % cfg.task.eval_every == 0)
        ):
            eval_loss = evaluate(held_out)
            run_dir.log_metrics({"step": step, "eval_loss": eval_loss})
            accelerator.print(f"step {step} | held-out loss {eval_loss:.4f}", flush=True)
            meter.reset()  # evaluation time is not training throughput
        if step % cfg.checkpoint.every == 0 or step == cfg.trainer.max_steps:
            saved = checkpoint.save(
                accelerator,
                run_dir.checkpoints,
                step,
                {"step": step, "micro_batches": step * accum, "tokens": step * tokens_per_step},
                cfg.checkpoint.keep,
            )
            accelerator.print(f"saved checkpoint {saved.name}", flush=True)
            meter.reset()  # the time spent saving is not training throughput

    save_model(accelerator, model, tokenizer, run_dir)
    if cfg.log.report_to:
        accelerator.end_training()
    summary = {
        "steps": step,
        "final_loss": last_loss,
        "tokens": step * tokens_per_step,
        "rows": len(rows),
        "seq_len": rows.seq_len,
        **({"eval_loss": eval_loss} if eval_loss is not None else {}),
    }
    run_dir.finish(summary)
    return summary


def save_model(accelerator, model, tokenizer, run_dir: RunDir) -> None:
    """The final model (full weights gathered from every process) and its tokenizer, in `model/`."""
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # gathers FSDP shards; every process must call it
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(run_dir.model_dir, state_dict=state_dict)
        tokenizer.save_pretrained(run_dir.model_dir)
    accelerator.wait_for_everyone()
