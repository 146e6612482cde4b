"""Mixing pre-training data into alignment: InstructGPT's "PPO-ptx" objective.

InstructGPT (Ouyang et al. 2022, eq. 2) adds gamma x the log-likelihood of pre-training data to
the RL objective, so alignment does not erode what pre-training taught ("alignment tax"). Here the
same term is added to any trl trainer whose model is a causal LM (SFT, DPO, RLOO, GRPO): after the
trainer's own backward pass on a micro-batch, one micro-batch of `tokens` rows is run through the
policy and `coef / grad_accum x LM loss` is back-propagated into the same gradients, before the
optimizer step. trl's trainers have no such option; subclassing `training_step` is the extension
point transformers documents for it.

The rows come from `TokenBatches`, indexed by the trainer's global step and micro-step, so a
resumed run draws the same pre-training batches as an uninterrupted one, and each rank its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from train.data import TokenBatches

if TYPE_CHECKING:  # mixed into a transformers Trainer subclass (`with_ptx`), whose methods it extends
    from transformers import Trainer as TrainerBase
else:
    TrainerBase = object


class PtxMixin(TrainerBase):
    """Adds the pre-training loss to `training_step` of a transformers/trl Trainer subclass."""

    ptx_batches: TokenBatches | None = None
    ptx_coef: float = 0.0

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.ptx_batches is None or self.ptx_coef == 0:
            return loss
        step = self.state.global_step
        if getattr(self, "_ptx_step", None) != step:
            self._ptx_step, self._ptx_micro = step, 0
        index = step * self.args.gradient_accumulation_steps + self._ptx_micro
        self._ptx_micro += 1
        batch = {k: v.to(self.args.device) for k, v in self.ptx_batches.batch(index).items()}
        with self.compute_loss_context_manager():
            ptx_loss = model(**batch).loss
        self.accelerator.backward(ptx_loss * (self.ptx_coef / self.current_gradient_accumulation_steps))
        self._ptx_losses = getattr(self, "_ptx_losses", []) + [ptx_loss.detach().float().item()]
        return loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        losses = getattr(self, "_ptx_losses", [])
        if losses and "loss" in logs:
            logs["ptx_loss"] = sum(losses) / len(losses)
            self._ptx_losses = []
        super().log(logs, *args, **kwargs)


def with_ptx(trainer_cls: type) -> type:
    """`trainer_cls` with the pre-training mix (inactive until `attach_ptx`)."""
    return type(f"Ptx{trainer_cls.__name__}", (PtxMixin, trainer_cls), {})


def ptx_batches(folder, model, tokenizer, batch_size: int, seed: int, rank: int, world_size: int) -> TokenBatches:
    """The pre-training rows of `folder` (a `tokens` dataset) as micro-batches for `model`, after
    checking that they fit it (token ids inside its vocabulary, rows within its context)."""
    from curate.errors import ConfigError
    from train.data import TokenRows, loss_pad_id

    rows = TokenRows(folder.shard_paths)
    vocab = model.get_input_embeddings().num_embeddings
    if rows.max_token_id() >= vocab:
        raise ConfigError(f"ptx.data: token id {rows.max_token_id()} is outside the policy's vocabulary ({vocab})")
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and rows.seq_len > context:
        raise ConfigError(f"ptx.data: rows of {rows.seq_len} tokens exceed the policy's context ({context})")
    return TokenBatches(rows, batch_size, seed, rank, world_size, pad_id=loss_pad_id(tokenizer))


def attach_ptx(trainer, cfg, folders: dict) -> None:
    """Turn the mix on for `trainer` when `ptx.data` is set: rows of that `tokens` dataset, weighted by `ptx.coef`."""
    if "ptx" not in folders:
        return
    trainer.ptx_batches = ptx_batches(
        folders["ptx"],
        trainer.accelerator.unwrap_model(trainer.model),
        trainer.processing_class,
        cfg.ptx.micro_batch_size or cfg.trainer.micro_batch_size,
        cfg.seed,
        trainer.accelerator.process_index,
        trainer.accelerator.num_processes,
    )
    trainer.ptx_coef = cfg.ptx.coef
