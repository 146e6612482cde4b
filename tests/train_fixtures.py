"""Inputs for the trainer tests and benchmarks, made by the curate app's own recipes:
- a SentencePiece tokenizer trained by `pipeline=train_tokenizer` on tinyshakespeare's speeches
  (its Hugging Face export carries a chat template with `{% generation %}` markers);
- a `tokens` dataset packed by `pipeline=tokenize`;
- a `chat` dataset converted from alpaca_en_demo (`pipeline=convert input.records=alpaca`);
- a `preference` dataset converted from LLaMA-Factory's dpo_en_demo (`input.records=dpo`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from curate.api import run_recipe


def documents(folder: Path, shared_data: Path) -> Path:
    """tinyshakespeare, one document per speech (paragraph), through the `clean` recipe."""
    if not (folder / "manifest.json").is_file():
        run_recipe(
            shared_data / "tinyshakespeare",
            folder,
            "pipeline=clean",
            "input.text_unit=paragraph",
            "stages.length_filter.min_chars=1",
        )
    return folder


def train_tokenizer(folder: Path, docs: Path, vocab_size: int = 512) -> Path:
    """`pipeline=train_tokenizer` on `docs` (every document sampled); returns the tokenizer folder."""
    if not (folder / "manifest.json").is_file():
        run_recipe(
            docs,
            folder,
            "pipeline=train_tokenizer",
            f"stages.train_tokenizer.vocab_size={vocab_size}",
            "stages.train_tokenizer.sample_rate=1.0",
        )
    return folder / "tokenizer"


def tokens_dataset(folder: Path, tokenizer: Path, docs: Path, seq_len: int, shard_mb: float = 0.1) -> Path:
    """`pipeline=tokenize`: rows of `seq_len` tokens, in several shards (multi-shard reading)."""
    if not (folder / "manifest.json").is_file():
        run_recipe(
            docs,
            folder,
            "pipeline=tokenize",
            f"stages.tokenize_pack.tokenizer={tokenizer}",
            f"stages.tokenize_pack.seq_len={seq_len}",
            f"output.shard_mb={shard_mb}",
        )
    return folder


def chat_dataset(folder: Path, shared_data: Path) -> Path:
    """alpaca_en_demo's 999 instruction/input/output records as chat rows."""
    if not (folder / "manifest.json").is_file():
        run_recipe(shared_data / "alpaca_en_demo", folder, "pipeline=convert", "input.records=alpaca")
    return folder


def preference_dataset(folder: Path, shared_data: Path) -> Path:
    """LLaMA-Factory's 300 dpo_en_demo pairs as conversational prompt / chosen / rejected rows."""
    if not (folder / "manifest.json").is_file():
        run_recipe(shared_data / "llamafactory_pref_demo", folder, "pipeline=convert", "input.records=dpo")
    return folder


def tiny_llama_config(vocab_size: int, **options):
    """A Llama config small enough for a test (hidden 32, one layer of two heads); `options`
    change or add fields (labels, more layers, the pad token)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        **{
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            **options,
        }
    )


def tiny_reward_model(folder: Path, tokenizer) -> Path:
    """A randomly initialised one-layer Llama sequence classifier (one output) saved with
    `tokenizer`: a real reward model's interface, for plumbing tests (its verdicts mean nothing)."""
    import torch
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(0)
    config = tiny_llama_config(len(tokenizer), num_labels=1, pad_token_id=tokenizer.pad_token_id)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------------------------
# Running the train app in-process, and the inputs every trainer test shares


def compose_train(overrides: list[str]):
    """The resolved train config for `overrides`, exactly as `thresher train` composes it."""
    from hydra import compose, initialize_config_dir

    from curate.resources import CONF_DIR
    from train.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def train(*overrides: str) -> dict:
    """Run the train app in this process; returns the run's summary.

    One torch thread per process: the suite runs 2 workers on 2 shared cores, where contended
    threads are several times slower (see benchmarks/train_bench.py).
    """
    from train.app import run

    return run(compose_train(["trainer.cpu_threads=1", *overrides]))


def metrics(run_dir: Path) -> list[dict]:
    """The run's metrics.jsonl lines."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@dataclass
class Inputs:
    tokenizer: Path
    tokens: Path
    chat: Path
    preference: Path


_INPUTS: dict[Path, Inputs] = {}


def build_inputs(root: Path, shared_data: Path) -> Inputs:
    """The tokenizer and the three dataset folders, built once per test process under `root`."""
    if root not in _INPUTS:
        docs = documents(root / "documents", shared_data)
        tokenizer = train_tokenizer(root / "tokenizer", docs)
        _INPUTS[root] = Inputs(
            tokenizer=tokenizer,
            tokens=tokens_dataset(root / "tokens", tokenizer, docs, seq_len=64),
            chat=chat_dataset(root / "chat", shared_data),
            preference=preference_dataset(root / "preference", shared_data),
        )
    return _INPUTS[root]


def pretrained_model(run_dir: Path, tokens: Path, steps: int = 10, micro_batch_size: int = 8) -> Path:
    """A tiny Llama pre-trained on `tokens` for `steps` steps: the starting point of the alignment tests."""
    train(
        "task=pretrain",
        f"data={tokens}",
        f"output.dir={run_dir}",
        f"trainer.max_steps={steps}",
        f"trainer.micro_batch_size={micro_batch_size}",
        "optim.lr=3e-3",
        f"optim.warmup_steps={max(2, steps // 30)}",
        "checkpoint.every=1000",
    )
    return run_dir / "model"


def trained_reward_model(run_dir: Path, preference: Path, base: Path) -> Path:
    """A reward model trained for two steps from `base` on `preference` pairs (trl's RewardTrainer)."""
    train(
        "task=reward",
        f"data={preference}",
        f"model.path={base}",
        f"output.dir={run_dir}",
        "trainer.max_steps=2",
        "trainer.micro_batch_size=4",
        "task.max_length=512",
        "log.every=1",
        "checkpoint.every=2",
        "optim.warmup_steps=0",
    )
    return run_dir / "model"
