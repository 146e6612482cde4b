"""Building and loading models and tokenizers, and counting their work (parameters, FLOPs).

A model comes either from a local pretrained folder (`model.path`, e.g. the `model/` folder of an
earlier run) or from the architecture fields of `conf/model/<name>.yaml`, built from scratch with
transformers' own classes (`AutoConfig.for_model` + `AutoModelForCausalLM.from_config`). Nothing is
downloaded: paths are local folders only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from omegaconf import DictConfig

from curate.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

# Dense bf16 peak of common accelerators (FLOP/s per device), for MFU when log.peak_tflops is unset.
# (NVIDIA data sheets, dense tensor-core bf16; the order matters: "L40S" is checked before "L4".)
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "sentencepiece.model",
    "thresher_tokenizer.json",
)
# Written by the curate app's train_tokenizer stage: the tokenizer's fingerprint, among other things.
THRESHER_TOKENIZER = "thresher_tokenizer.json"


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """A Hugging Face tokenizer from a local folder, with a pad token (the EOS token if it has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"tokenizer: '{path}' is not a Hugging Face tokenizer folder ({str(error).splitlines()[0]})"
        ) from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"tokenizer: '{path}' has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tokenizer_lineage(path: str | Path) -> dict[str, Any]:
    """The tokenizer folder and the sha256 of the files that define it."""
    folder = Path(path)
    files = {}
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            files[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return {"path": str(folder.resolve()), "files": files}


def tokenizer_fingerprint(path: str | Path) -> str | None:
    """The fingerprint the curate app's train_tokenizer stage recorded in the folder (None elsewhere)."""
    meta = Path(path) / THRESHER_TOKENIZER
    if not meta.is_file():
        return None
    return json.loads(meta.read_text()).get("fingerprint")


def vocab_size(model_cfg: DictConfig, tokenizer) -> int:
    """The model's vocabulary: configured, or the tokenizer's size rounded up to `pad_vocab_to`."""
    if model_cfg.vocab_size is not None:
        if model_cfg.vocab_size < len(tokenizer):
            raise ConfigError(
                f"model.vocab_size: {model_cfg.vocab_size} is smaller than the tokenizer's {len(tokenizer)}"
            )
        return int(model_cfg.vocab_size)
    multiple = max(1, int(model_cfg.pad_vocab_to))
    return -(-len(tokenizer) // multiple) * multiple


def model_config(model_cfg: DictConfig, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    """A transformers config for the architecture in `model_cfg` (from scratch)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.for_model(
            model_cfg.arch,
            vocab_size=vocab_size(model_cfg, tokenizer),
            hidden_size=model_cfg.hidden_size,
            intermediate_size=model_cfg.intermediate_size,
            num_hidden_layers=model_cfg.num_hidden_layers,
            num_attention_heads=model_cfg.num_attention_heads,
            num_key_value_heads=model_cfg.num_key_value_heads or model_cfg.num_attention_heads,
            max_position_embeddings=model_cfg.max_position_embeddings,
            rope_theta=model_cfg.rope_theta,
            tie_word_embeddings=model_cfg.tie_word_embeddings,
            initializer_range=model_cfg.initializer_range,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    except ValueError as error:
        raise ConfigError(f"model.arch: {str(error).splitlines()[0]}") from None


def build_causal_lm(model_cfg: DictConfig, tokenizer: PreTrainedTokenizerBase, seed: int) -> PreTrainedModel:
    """The causal LM: loaded from `model_cfg.path`, or built from the architecture with seeded weights."""
    from transformers import AutoModelForCausalLM, set_seed

    if model_cfg.path is not None:
        try:
            return AutoModelForCausalLM.from_pretrained(
                model_cfg.path, attn_implementation=model_cfg.attn_implementation, dtype=torch.float32
            )
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"model.path: '{model_cfg.path}' cannot be loaded ({str(error).splitlines()[0]})"
            ) from None
    set_seed(seed)
    return AutoModelForCausalLM.from_config(
        model_config(model_cfg, tokenizer), attn_implementation=model_cfg.attn_implementation, dtype=torch.float32
    )


def matmul_params(model: PreTrainedModel) -> int:
    """Parameters that take part in a matmul per token: all but the input embedding table (a lookup).

    With tied embeddings the shared table is the output projection, so it counts once.
    """
    total = sum(p.numel() for p in model.parameters())
    embedding = cast(torch.nn.Embedding, model.get_input_embeddings()).weight  # transformers types it nn.Module
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is embedding
    return total if tied else total - embedding.numel()


def flops_per_token(model: PreTrainedModel, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the weights plus 12 x layers x hidden x seq_len for attention
    (Kaplan et al. 2020; PaLM appendix B; nanoGPT's estimate_mfu)."""
    config = model.config
    return 6.0 * matmul_params(model) + 12.0 * config.num_hidden_layers * config.hidden_size * seq_len


def peak_flops(configured_tflops: float | None) -> float | None:
    """Per-device peak FLOP/s for MFU: configured, or looked up from the CUDA device's name (else None)."""
    if configured_tflops:
        return configured_tflops * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, value in PEAK_BF16_FLOPS.items():
        if key in name:
            return value
    return None
