"""Inputs for the trainer tests, built from real data with the engine's own writer.

Until the curate recipes that produce them land (`train_tokenizer`, `tokenize_pack`, the chat and
preference converters), the trainer tests build their inputs here, and only here:
- a real SentencePiece tokenizer trained on tinyshakespeare, exported as a Hugging Face folder with
  a ChatML chat template carrying `{% generation %}` markers (what assistant-only loss needs);
- dataset folders written with `curate.writers.ShardWriter` and the declared schemas of
  `curate.schema.KINDS`, plus a manifest.json in the documented format (docs/formats.md):
  `tokens` (packed fixed-length rows of tinyshakespeare), `chat` (alpaca_en_demo records),
  `preference` (LLaMA-Factory's dpo_en_demo pairs).
Switching to the real recipes means replacing the bodies of these functions, not the tests.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from curate.manifest import code_version, write_json_atomic
from curate.schema import KINDS, schema_to_json
from curate.writers import ShardWriter

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def shakespeare_paragraphs(shared_data: Path, limit: int | None = None) -> list[str]:
    """tinyshakespeare's speeches (paragraphs), in order."""
    text = gzip.open(shared_data / "tinyshakespeare" / "input.txt.gz", "rt", encoding="utf-8").read()
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return paragraphs[:limit] if limit else paragraphs


def train_tokenizer(folder: Path, texts: Iterable[str], vocab_size: int = 512) -> Path:
    """Train a byte-fallback BPE SentencePiece model (STACK.md options) and export it as an HF folder."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(texts), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "sp"), vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, split_digits=True, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        normalization_rule_name="identity", add_dummy_prefix=False, character_coverage=1.0,
        user_defined_symbols=["<|im_start|>", "<|im_end|>"], unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        pad_piece="<pad>", minloglevel=2, num_threads=1,
    )
    staging = folder / "staging"
    staging.mkdir()
    shutil.copy(folder / "sp.model", staging / "tokenizer.model")
    tokenizer = LlamaTokenizer.from_pretrained(str(staging), add_prefix_space=False)
    tokenizer.pad_token = "<pad>"
    tokenizer.chat_template = CHAT_TEMPLATE
    hf = folder / "hf"
    tokenizer.save_pretrained(hf)
    shutil.rmtree(staging)
    corpus.unlink()
    return hf


def write_dataset(folder: Path, kind: str, table: pa.Table, extra: dict | None = None, shard_rows: int = 0) -> Path:
    """Write `table` as a dataset folder of `kind` (shards + manifest.json), as the engine lays it out."""
    schema = KINDS[kind]
    step = shard_rows or max(table.num_rows, 1)  # several shards exercise multi-shard reading
    shards = []
    for start in range(0, table.num_rows, step):
        writer = ShardWriter(folder / "data", f"part-{start // step:05d}", schema, max_bytes=1 << 40, root=folder)
        writer.write(table.slice(start, step))
        shards += writer.close()
    digest = hashlib.sha256("".join(s["sha256"] for s in shards).encode()).hexdigest()[:16]
    manifest = {
        "kind": kind,
        "schema": schema_to_json(schema),
        "rows": table.num_rows,
        "rows_in": table.num_rows,
        "dropped": 0,
        "quarantined": 0,
        "shards": shards,
        "rejects": [],
        "quarantine": [],
        "stages": [],
        "inputs": [],
        "config": {"built_by": "tests/train_fixtures.py"},
        "fingerprint": digest,
        "version": code_version(),
        "created": "2025-01-01T00:00:00Z",
        **(extra or {}),
    }
    write_json_atomic(folder / "manifest.json", manifest)
    return folder


def tokens_dataset(folder: Path, tokenizer_dir: Path, texts: Iterable[str], seq_len: int, shard_rows: int = 0) -> Path:
    """Tokenize `texts` (EOS after each), concatenate and cut into rows of `seq_len` with document starts."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    stream: list[int] = []
    starts: list[int] = []
    for text in texts:
        starts.append(len(stream))
        stream += tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
    rows, doc_starts = [], []
    for begin in range(0, len(stream) - seq_len + 1, seq_len):
        rows.append(stream[begin:begin + seq_len])
        doc_starts.append([s - begin for s in starts if begin <= s < begin + seq_len])
    table = pa.table({"input_ids": rows, "doc_starts": doc_starts}, schema=KINDS["tokens"])
    return write_dataset(folder, "tokens", table, {"tokenizer": {"path": str(tokenizer_dir)}}, shard_rows)


def chat_dataset(folder: Path, shared_data: Path, limit: int = 64, max_chars: int = 600) -> Path:
    """alpaca_en_demo's instruction/input/output records as one user turn and one assistant turn
    (the first `limit` records of at most `max_chars` characters: small models, short tests)."""
    records = json.load(gzip.open(shared_data / "alpaca_en_demo" / "alpaca_en_demo.json.gz"))
    rows = []
    for i, record in enumerate(records):
        if len(rows) == limit:
            break
        if sum(len(record[k]) for k in ("instruction", "input", "output")) > max_chars:
            continue
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record["input"] else "")
        rows.append({
            "id": f"alpaca_en_demo:{i}",
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}],
            "source": "alpaca_en_demo",
            "meta": None,
        })
    return write_dataset(folder, "chat", pa.Table.from_pylist(rows, schema=KINDS["chat"]))


def preference_dataset(folder: Path, shared_data: Path, limit: int = 64, max_chars: int = 1200) -> Path:
    """LLaMA-Factory's dpo_en_demo (ShareGPT turns) as conversational prompt / chosen / rejected
    (the first `limit` pairs whose prompt plus longer answer has at most `max_chars` characters)."""
    records = json.load(gzip.open(shared_data / "llamafactory_pref_demo" / "dpo_en_demo.json.gz"))
    roles = {"human": "user", "gpt": "assistant", "system": "system"}
    rows = []
    for i, record in enumerate(records):
        size = sum(len(t["value"]) for t in record["conversations"])
        if len(rows) == limit:
            break
        if size + max(len(record["chosen"]["value"]), len(record["rejected"]["value"])) > max_chars:
            continue
        rows.append({
            "id": f"dpo_en_demo:{i}",
            "prompt": [{"role": roles[turn["from"]], "content": turn["value"]} for turn in record["conversations"]],
            "chosen": [{"role": "assistant", "content": record["chosen"]["value"]}],
            "rejected": [{"role": "assistant", "content": record["rejected"]["value"]}],
            "source": "dpo_en_demo",
            "meta": None,
        })
    return write_dataset(folder, "preference", pa.Table.from_pylist(rows, schema=KINDS["preference"]))


# --------------------------------------------------------------------------------------------
# Running the train app in-process, and the inputs every trainer test shares


def compose_train(overrides: list[str]):
    """The resolved train config for `overrides`, exactly as `thresher train` composes it."""
    from hydra import compose, initialize_config_dir

    from train.config import CONF_DIR, register_configs

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
        paragraphs = shakespeare_paragraphs(shared_data, limit=1500)
        tokenizer = train_tokenizer(root / "tokenizer", paragraphs)
        _INPUTS[root] = Inputs(
            tokenizer=tokenizer,
            tokens=tokens_dataset(root / "tokens", tokenizer, paragraphs, seq_len=64, shard_rows=400),
            chat=chat_dataset(root / "chat", shared_data),
            preference=preference_dataset(root / "preference", shared_data, limit=24),
        )
    return _INPUTS[root]
