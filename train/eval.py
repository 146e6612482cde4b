"""`thresher eval`: held-out measurements of a model folder, written to `eval.json`.

    thresher eval model_dir=<run dir or model folder> sets=[encyclopaedia:<documents dataset>,code:<...>] \
        [answers=<chat dataset>] [memorization.sets=[repeated:<documents dataset>,...]] \
        [win_rate.reference=<model> win_rate.reward_model=<model> win_rate.prompts=<chat|preference dataset>]

- `sets`: bits per byte on each held-out `documents` dataset, one figure per domain (Paloma's
  idea: an average over domains hides where a model is worse). Tokenizer-independent, so arms
  with different tokenizers compare.
- `answers` (chat models): loss per token and bits per byte of the assistant turns of held-out
  conversations (the chat template's `{% generation %}` markers say which tokens are the answer).
- `memorization`: the share of training documents whose first `prompt_tokens` tokens make the
  model continue with the exact next `continuation_tokens` (Lee et al. 2022; 50 + 50 there).
- `win_rate` (chat models): the reward model's preference for the model's answers over a
  reference model's, on prompts of a chat or preference dataset.

How each is computed: `train.eval_metrics`. Every dataset is opened through its manifest and its
shards' checksums are verified, as the trainers do. `eval.json` records the model's weights
(sha256), every dataset's fingerprint, the options and the results; an eval whose inputs and
options did not change is not recomputed (`overwrite=true` forces it), so an ablation resumes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

import hydra
import numpy as np
import pyarrow.compute as pc
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from curate.compose import resolved_dict
from curate.errors import ConfigError, user_errors_as_one_line
from curate.manifest import code_version
from curate.resources import CONF_DIR
from curate.runfolder import fingerprint, without_keys, write_json_atomic
from train import eval_metrics
from train.data import DatasetFolder, open_dataset
from train.lineage import MODEL_LINEAGE, RUN_FILE, now

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EVAL_FILE = "eval.json"


@dataclass
class MemorizationConfig:
    """Verbatim memorisation (Lee et al. 2022): prompts from documents the model trained on."""

    sets: list[str] = field(
        default_factory=list
    )  # training documents: "name:folder" (or a folder), e.g. the repeated ones
    prompt_tokens: int = 50  # Lee et al. 2022 / Carlini et al. 2023: 50
    continuation_tokens: int = 50  # ... and 50; shorter suits a tiny model (say so with the result)
    samples: int = 1000  # documents drawn (seeded) from each set; 0: all


@dataclass
class WinRateConfig:
    """Answers of the model against a reference model's, judged by a reward model."""

    reference: Optional[str] = None  # the reference model folder (e.g. the base or another arm's model)
    reward_model: Optional[str] = None  # a sequence-classification model folder (thresher train task=reward)
    prompts: Optional[str] = None  # a `chat` (its conversations up to the last answer) or `preference` dataset
    samples: int = 100  # prompts drawn (seeded); 0: all
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy decoding (deterministic); > 0: seeded sampling
    max_length: int = 1024  # tokens of prompt + answer the reward model reads (the last ones)


@dataclass
class EvalConfig:
    model_dir: str = MISSING  # a model folder (<run>/model) or the run directory that holds it
    sets: list[str] = field(default_factory=list)  # held-out documents datasets: "domain:folder" (or a folder)
    answers: Optional[str] = None  # a `chat` dataset of held-out conversations: loss on the assistant turns
    memorization: MemorizationConfig = field(default_factory=MemorizationConfig)
    win_rate: WinRateConfig = field(default_factory=WinRateConfig)
    context: Optional[int] = None  # tokens per window; None: the length the model was trained at (lineage)
    stride: Optional[int] = None  # targets per window of a long document; None: context - 1 (no overlap)
    document_start: str = "eos"  # token before each document: eos (Thresher's packing), bos (most hub models)
    max_bytes: int = 0  # per set: documents in a seeded order up to this many UTF-8 bytes; 0: all
    max_answers: int = 0  # conversations of `answers` (seeded); 0: all
    batch_size: int = 8
    seed: int = 0  # which documents, prompts and samples are drawn
    output: Optional[str] = None  # eval.json; None: in the run directory (or the model folder)
    overwrite: bool = False  # recompute even if eval.json holds this evaluation
    cpu_threads: Optional[int] = None  # torch threads (1 is often fastest on a shared CPU)


# Options that change how an evaluation runs, not what it measures.
VOLATILE_KEYS = ("output", "overwrite", "cpu_threads", "batch_size")


def register_configs() -> None:
    ConfigStore.instance().store(name="eval_schema", node=EvalConfig)


register_configs()


@dataclass
class ModelFolder:
    """A model folder and, when a Thresher run wrote it, the run directory and its lineage."""

    path: Path
    run_dir: Path | None
    lineage: dict[str, Any] | None

    @classmethod
    def find(cls, given: str | Path, key: str = "model_dir") -> ModelFolder:
        """The model folder `given` names (itself, or the `model/` of a run directory)."""
        path = Path(given)
        if (path / RUN_FILE).is_file() and (path / "model").is_dir():
            path = path / "model"
        if not (path / "config.json").is_file():
            raise ConfigError(f"{key}: '{given}' is neither a model folder (config.json) nor a run directory")
        run_dir = path.parent if path.name == "model" and (path.parent / RUN_FILE).is_file() else None
        lineage_file = path / MODEL_LINEAGE
        lineage = json.loads(lineage_file.read_text()) if lineage_file.is_file() else None
        return cls(path, run_dir, lineage)

    def weights_sha256(self) -> str:
        """The identity of the weights: sha256 over the config and the weight files, in name order."""
        digest = hashlib.sha256()
        for file in sorted(self.path.iterdir()):
            if file.name == "config.json" or file.suffix in (".safetensors", ".bin"):
                with open(file, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
        return digest.hexdigest()

    def trained_context(self) -> int | None:
        """The sequence length the model was trained at, as its lineage records it (None if unknown)."""
        record = self.lineage
        while record:
            seq_len = (record.get("summary") or {}).get("seq_len")
            max_length = ((record.get("config") or {}).get("task") or {}).get("max_length")
            if seq_len or max_length:
                return int(cast(int, seq_len or max_length))
            record = (record.get("base_model") or {}).get("lineage")
        return None


def named_sets(entries: list[str], key: str = "sets") -> dict[str, str]:
    """Dataset entries ("name:folder" or a folder, named after it) as name -> folder."""
    sets: dict[str, str] = {}
    for entry in entries:
        name, sep, folder = str(entry).partition(":")
        if not sep or "/" in name or not name:
            name, folder = Path(str(entry)).name, str(entry)
        if name in sets:
            raise ConfigError(f"{key}: the name '{name}' is given twice")
        sets[name] = folder
    return sets


def validate(cfg: DictConfig) -> None:
    """Check what composition cannot, before any model or data is read. Raises ConfigError."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
    if missing:
        raise ConfigError(f"{missing[0]}: required value is missing (set {missing[0]}=...)")
    win = cfg.win_rate
    if not (cfg.sets or cfg.answers or cfg.memorization.sets or win.prompts):
        raise ConfigError("sets: nothing to evaluate (give sets, answers, memorization.sets or win_rate.prompts)")
    if cfg.document_start not in ("eos", "bos"):
        raise ConfigError(f"document_start: '{cfg.document_start}' is not one of: eos, bos")
    for key in ("batch_size", "memorization.prompt_tokens", "memorization.continuation_tokens"):
        if OmegaConf.select(cfg, key) <= 0:
            raise ConfigError(f"{key}: must be > 0")
    for key in ("max_bytes", "max_answers", "memorization.samples", "win_rate.samples", "win_rate.temperature"):
        if OmegaConf.select(cfg, key) < 0:
            raise ConfigError(f"{key}: must be >= 0")
    if cfg.context is not None and cfg.context < 2:
        raise ConfigError("context: must be >= 2")
    if cfg.stride is not None and (cfg.stride < 1 or (cfg.context is not None and cfg.stride >= cfg.context)):
        raise ConfigError("stride: must be within [1, context - 1]")
    given = [win.reference, win.reward_model, win.prompts]
    if any(given) and not all(given):
        raise ConfigError("win_rate: set reference, reward_model and prompts together")
    named_sets(list(cfg.sets), "sets")
    named_sets(list(cfg.memorization.sets), "memorization.sets")
    for key in ("model_dir", "answers", "win_rate.reference", "win_rate.reward_model"):
        value = OmegaConf.select(cfg, key)
        if value is not None and not Path(value).exists():
            raise ConfigError(f"{key}: '{value}' does not exist")


# -- reading the held-out data ----------------------------------------------------------------------


def dataset_identity(folder: DatasetFolder) -> dict[str, Any]:
    manifest = folder.manifest
    return {
        "path": str(folder.path.resolve()),
        "kind": folder.kind,
        "rows": folder.rows,
        "fingerprint": manifest.fingerprint,
        "shards": [s.sha256 for s in manifest.shards],
    }


def drawn_rows(folder: DatasetFolder, column: str, seed: int, limit_rows: int = 0, limit_bytes: int = 0) -> list:
    """Values of `column`, rows in a seeded order, up to `limit_rows` rows or `limit_bytes` of text
    (0: no limit). The shards are memory-mapped: only the rows drawn are read."""
    import pyarrow as pa

    table = folder.read_table([column])
    order = np.random.default_rng(seed).permutation(table.num_rows)
    if limit_rows:
        order = order[:limit_rows]
    if limit_bytes:
        sizes = pc.binary_length(table.column(column)).to_numpy(zero_copy_only=False)
        within = np.cumsum(sizes[order]) <= limit_bytes
        order = order[: max(1, int(within.sum()))]
    return table.column(column).take(pa.array(order)).to_pylist()


def prompts_of(folder: DatasetFolder, seed: int, samples: int) -> list[list[dict]]:
    """Prompts as conversations: a preference row's `prompt`, or a chat up to its last answer."""
    if folder.kind == "preference":
        return [list(p) for p in drawn_rows(folder, "prompt", seed, samples)]
    prompts = []
    for messages in drawn_rows(folder, "messages", seed, samples):
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        if any(m["role"] == "user" for m in messages[:last]):
            prompts.append(messages[:last])
    return prompts


# -- models -----------------------------------------------------------------------------------------


def load_causal_lm(given: str | Path, key: str = "model_dir") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    import torch
    from transformers import AutoModelForCausalLM

    from train.modeling import load_tokenizer

    path = ModelFolder.find(given, key).path
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{key}: '{given}' cannot be loaded ({str(error).splitlines()[0]})") from None
    return on_device(model), load_tokenizer(path)


def load_reward_model(given: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    import torch
    from transformers import AutoModelForSequenceClassification

    from train.modeling import load_tokenizer

    path = ModelFolder.find(given, "win_rate.reward_model").path
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32)
    except (OSError, ValueError) as error:
        raise ConfigError(f"win_rate.reward_model: '{given}' cannot be loaded ({str(error).splitlines()[0]})") from None
    return on_device(model), load_tokenizer(path)


def on_device(model: PreTrainedModel) -> PreTrainedModel:
    """The model in evaluation mode on the GPU if there is one (moved in place)."""
    import torch

    cast(Any, model).to("cuda" if torch.cuda.is_available() else "cpu")  # transformers wraps `to` untyped
    return model.eval()


def start_token(tokenizer: PreTrainedTokenizerBase, which: str) -> int:
    token_id = tokenizer.eos_token_id if which == "eos" else tokenizer.bos_token_id
    if token_id is None:
        raise ConfigError(f"document_start: the tokenizer has no {which} token")
    return int(token_id)


def chat_ready(tokenizer: PreTrainedTokenizerBase, key: str) -> None:
    if not eval_metrics.has_generation_markers(tokenizer):
        raise ConfigError(
            f"{key}: the model's chat template has no {{% generation %}} markers, so its answer tokens "
            "cannot be told apart (Thresher's tokenizers have them: pipeline=train_tokenizer)"
        )


# -- the evaluation ---------------------------------------------------------------------------------


def output_file(cfg: DictConfig, model: ModelFolder) -> Path:
    if cfg.output:
        return Path(cfg.output)
    return (model.run_dir or model.path) / EVAL_FILE


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation `cfg` describes; write and return the eval.json record."""
    validate(cfg)
    if cfg.cpu_threads:
        import torch

        torch.set_num_threads(cfg.cpu_threads)
    folder = ModelFolder.find(cfg.model_dir)
    sets = {name: open_dataset(path, ("documents",), f"sets.{name}") for name, path in named_sets(cfg.sets).items()}
    answers = open_dataset(cfg.answers, ("chat",), "answers") if cfg.answers else None
    memorized = {
        name: open_dataset(path, ("documents",), f"memorization.sets.{name}")
        for name, path in named_sets(cfg.memorization.sets, "memorization.sets").items()
    }
    prompts = (
        open_dataset(cfg.win_rate.prompts, ("chat", "preference"), "win_rate.prompts") if cfg.win_rate.prompts else None
    )
    options = without_keys(resolved_dict(cfg), VOLATILE_KEYS)
    identity = {
        "weights": folder.weights_sha256(),
        "sets": {name: dataset_identity(d) for name, d in sets.items()},
        **({"answers": dataset_identity(answers)} if answers else {}),
        **({"memorization": {name: dataset_identity(d) for name, d in memorized.items()}} if memorized else {}),
        **({"prompts": dataset_identity(prompts)} if prompts else {}),
    }
    out = output_file(cfg, folder)
    key = fingerprint(options, identity)
    if out.is_file() and not cfg.overwrite:
        previous = json.loads(out.read_text())
        if previous.get("fingerprint") == key:
            print(f"eval: {out} is up to date (same model, data and options)")
            return previous

    started = time.perf_counter()
    model, tokenizer = load_causal_lm(folder.path)
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
    context = int(cfg.context or folder.trained_context() or limit or 1024)
    if limit and context > limit:
        raise ConfigError(f"context: {context} is longer than the model's max_position_embeddings ({limit})")
    stride = int(cfg.stride or context - 1)
    record: dict[str, Any] = {
        "model": {
            "path": str(folder.path.resolve()),
            "weights_sha256": identity["weights"],
            "run": (folder.lineage or {}).get("fingerprint"),
            "task": (folder.lineage or {}).get("task"),
        },
        "fingerprint": key,
        "version": code_version(),
        "created": now(),
        "context": context,
        "stride": stride,
        "document_start": cfg.document_start,
        "sets": {},
        "inputs": identity,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    start_id = start_token(tokenizer, cfg.document_start)
    for name, dataset in sets.items():
        texts = drawn_rows(dataset, "text", cfg.seed, limit_bytes=cfg.max_bytes)
        result = eval_metrics.bits_per_byte(model, tokenizer, texts, start_id, context, stride, cfg.batch_size)
        record["sets"][name] = {"path": str(dataset.path), **result}
        print(f"eval: {name}: {result['bits_per_byte']:.4f} bits per byte over {result['bytes']:,} bytes")
    if answers is not None:
        chat_ready(tokenizer, "answers")
        conversations = drawn_rows(answers, "messages", cfg.seed, limit_rows=cfg.max_answers)
        result = eval_metrics.answer_loss(model, tokenizer, conversations, context, cfg.batch_size)
        record["answers"] = {"path": str(answers.path), **result}
        if result["loss"] is None:
            raise ConfigError(
                f"answers: no conversation of '{answers.path}' fits {context} tokens ({result['skipped']})"
            )
        print(f"eval: answers: loss {result['loss']:.4f} per token over {result['conversations']:,} conversations")
    memo = cfg.memorization
    if memorized and memo.prompt_tokens + memo.continuation_tokens + 1 > context:
        raise ConfigError("memorization: prompt_tokens + continuation_tokens + 1 must fit the context")
    for name, dataset in memorized.items():
        texts = drawn_rows(dataset, "text", cfg.seed, limit_rows=memo.samples)
        result = eval_metrics.memorization(
            model, tokenizer, texts, start_id, memo.prompt_tokens, memo.continuation_tokens, cfg.batch_size
        )
        record.setdefault("memorization", {})[name] = {"path": str(dataset.path), **result}
        if result["exact_share"] is not None:
            print(
                f"eval: memorization ({name}): {result['exact_share']:.1%} of {result['prompts']:,} prompts continued exactly"
            )
    if prompts is not None:
        record["win_rate"] = judge(cfg, model, tokenizer, prompts)
    record["seconds"] = round(time.perf_counter() - started, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, record)
    print(f"eval: wrote {out}")
    return record


def judge(cfg: DictConfig, model, tokenizer, prompts: DatasetFolder) -> dict[str, Any]:
    """The win rate against the reference model under the reward model."""
    win = cfg.win_rate
    chat_ready(tokenizer, "win_rate")
    reference, reference_tokenizer = load_causal_lm(win.reference, "win_rate.reference")
    reward_model, reward_tokenizer = load_reward_model(win.reward_model)
    conversations = prompts_of(prompts, cfg.seed, win.samples)
    if not conversations:
        raise ConfigError(f"win_rate.prompts: '{prompts.path}' has no conversation with a user turn")
    result = eval_metrics.win_rate(
        model,
        tokenizer,
        reference,
        reference_tokenizer,
        reward_model,
        reward_tokenizer,
        conversations,
        win.max_new_tokens,
        win.temperature,
        cfg.seed,
        win.max_length,
    )
    print(f"eval: win rate {result['win_rate']:.1%} against {win.reference} over {result['prompts']} prompts")
    return {
        "reference": str(Path(win.reference).resolve()),
        "reward_model": str(Path(win.reward_model).resolve()),
        **result,
    }


def compose_eval(overrides: list[str]) -> DictConfig:
    """The resolved eval config for `overrides`, as `thresher eval` composes it."""
    from curate.compose import compose

    register_configs()
    return compose(overrides, "eval")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def hydra_main(cfg: DictConfig) -> None:
    try:
        with user_errors_as_one_line():
            evaluate(cfg)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def main() -> None:
    from curate.app import precheck

    precheck("eval", sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()
