"""Trainer benchmark: the pre-training data loader's overhead, and the speed of every task on CPU.

    python benchmarks/train_bench.py [--steps 40] [--threads 1]

1. Loader overhead. The same training steps (forward, backward, AdamW step) of a causal LM, fed
   either by `TokenBatches` (rows gathered from the memory-mapped Arrow shards, labels built) or
   by the very same batches prepared in memory beforehand. The two alternate step by step (ABAB...)
   so that load from other users of the machine hits both alike; the measured overhead is the
   difference of the median step times. The loader's own time per batch is also taken inside that
   loop (caches cold from the model's work) and alone (batches/s, tokens/s, with doc_mask
   positions too); its time over the step time is the overhead without the noise of other users.
   Done for two model sizes (the tiny test model and a 4-layer, 256-wide one).
2. Task speed. Every task run through the train app on the tiny model: steps/s of the training
   loop and the set-up time (loading, trl's preprocessing) of a run.

Inputs: the real tinyshakespeare text and a SentencePiece tokenizer trained on it, and the
alpaca_en_demo / dpo_en_demo records, built by tests/train_fixtures.py (as the tests do).
Writes benchmarks/results/train.json. The CPU is shared: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")

import torch  # noqa: E402

from tests.train_fixtures import (  # noqa: E402
    chat_dataset,
    documents,
    metrics,
    preference_dataset,
    tokens_dataset,
    train,
    train_tokenizer,
)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def make_model(hidden: int, layers: int, vocab: int, context: int, heads: int = 0, kv_heads: int | None = None):
    """A seeded Llama of that shape (heads: hidden / 32 unless given; kv_heads: all heads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=hidden * 11 // 4,
            num_hidden_layers=layers,
            num_attention_heads=heads or max(hidden // 32, 2),
            num_key_value_heads=kv_heads,
            max_position_embeddings=context,
            tie_word_embeddings=True,
        )
    )


def step_times(model, optimizer, start: int, count: int, source, fetch_times: list | None = None) -> list[float]:
    """Per-step seconds of `count` training steps whose batches come from `source(index)`
    (the time spent in `source` alone is appended to `fetch_times`)."""
    times = []
    for index in range(start, start + count):
        began = time.perf_counter()
        batch = source(index)
        if fetch_times is not None:
            fetch_times.append(time.perf_counter() - began)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - began)
    return times


def loader_overhead(tokens: Path, pad_id: int, micro_batch: int, steps: int) -> dict:
    from train.data import TokenBatches, TokenRows, open_dataset

    rows = TokenRows(open_dataset(tokens, ("tokens",)).shard_paths)
    result = {"rows": len(rows), "seq_len": rows.seq_len, "micro_batch_size": micro_batch, "models": []}

    for doc_mask in (False, True):
        batches = TokenBatches(rows, micro_batch, seed=0, pad_id=pad_id, doc_mask=doc_mask)
        n = 2000
        began = time.perf_counter()
        for index in range(n):
            batches.batch(index)
        seconds = time.perf_counter() - began
        result[f"loader_only{'_doc_mask' if doc_mask else ''}"] = {
            "batches_per_s": round(n / seconds, 1),
            "tokens_per_s": round(n * micro_batch * rows.seq_len / seconds),
            "us_per_batch": round(seconds / n * 1e6, 1),
        }

    for name, hidden, layers in (("tiny (64 wide, 2 layers)", 64, 2), ("small (256 wide, 4 layers)", 256, 4)):
        model = make_model(hidden, layers, 512, rows.seq_len)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batches = TokenBatches(rows, micro_batch, seed=0, pad_id=pad_id)
        in_memory = [batches.batch(i) for i in range(2 * steps + 5)]  # the same tensors, prepared beforehand
        step_times(model, optimizer, 0, 5, in_memory.__getitem__)  # warm-up
        mapped, memory, fetch = [], [], []
        for i in range(steps):  # alternate step by step, so that load from other users hits both alike
            mapped += step_times(model, optimizer, 5 + 2 * i, 1, batches.batch, fetch)
            memory += step_times(model, optimizer, 6 + 2 * i, 1, in_memory.__getitem__)
        mapped_s, memory_s = statistics.median(mapped), statistics.median(memory)
        result["models"].append(
            {
                "model": name,
                "parameters": sum(p.numel() for p in model.parameters()),
                "median_step_ms_mmap_loader": round(mapped_s * 1e3, 3),
                "median_step_ms_in_memory": round(memory_s * 1e3, 3),
                "overhead_percent_measured": round((mapped_s - memory_s) / memory_s * 100, 2),
                "loader_us_per_batch_in_loop": round(statistics.median(fetch) * 1e6, 1),
                "overhead_percent_loader_time": round(statistics.median(fetch) / memory_s * 100, 3),
                "steps_each": steps,
            }
        )
    return result


def task_speed(inputs: dict, root: Path, steps: int) -> list[dict]:
    common = [
        "trainer.cpu_threads=" + str(torch.get_num_threads()),
        f"trainer.max_steps={steps}",
        "log.every=1",
        f"checkpoint.every={steps}",
        "optim.warmup_steps=0",
    ]
    base = root / "pretrain"  # each task starts from the runs before it: pretrain -> sft/reward/dpo -> rlhf
    runs = [
        (
            "pretrain",
            ["task=pretrain", f"data={inputs['tokens']}", "trainer.micro_batch_size=8", "optim.lr=3e-3"],
            "8 rows x 128 tokens",
        ),
        (
            "sft",
            [
                "task=sft",
                f"data={inputs['chat']}",
                f"model.path={base / 'model'}",
                "trainer.micro_batch_size=2",
                "task.max_length=256",
            ],
            "2 packed rows of 256 tokens",
        ),
        (
            "reward",
            [
                "task=reward",
                f"data={inputs['preference']}",
                f"model.path={base / 'model'}",
                "trainer.micro_batch_size=4",
                "task.max_length=512",
            ],
            "4 pairs, up to 512 tokens",
        ),
        (
            "dpo",
            [
                "task=dpo",
                f"data={inputs['preference']}",
                f"model.path={base / 'model'}",
                "trainer.micro_batch_size=2",
                "task.max_length=512",
            ],
            "2 pairs, up to 512 tokens, + reference",
        ),
        (
            "rlhf (rloo)",
            [
                "task=rlhf",
                "task.algorithm=rloo",
                f"data={inputs['preference']}",
                f"model.path={base / 'model'}",
                f"task.reward_model={root / 'reward' / 'model'}",
                "trainer.micro_batch_size=4",
                "task.num_generations=2",
                "task.max_completion_length=16",
            ],
            "4 completions of <= 16 tokens (2 prompts x 2), scored by the reward model",
        ),
        (
            "rlhf (grpo)",
            [
                "task=rlhf",
                "task.algorithm=grpo",
                f"data={inputs['preference']}",
                f"model.path={base / 'model'}",
                f"task.reward_model={root / 'reward' / 'model'}",
                "trainer.micro_batch_size=4",
                "task.num_generations=2",
                "task.max_completion_length=16",
            ],
            "as rloo",
        ),
    ]
    results = []
    for name, args, batch in runs:
        out = root / name.replace(" (", "_").rstrip(")")  # pretrain, sft, reward, dpo, rlhf_rloo, rlhf_grpo
        began = time.perf_counter()
        summary = train(*args, *common, f"output.dir={out}")
        wall = time.perf_counter() - began
        if name == "pretrain":
            step_s = statistics.median(m["step_s"] for m in metrics(out))
            train_s = step_s * steps
        else:
            train_s = summary["train_runtime_s"]
            step_s = train_s / steps
        results.append(
            {
                "task": name,
                "batch": batch,
                "steps": steps,
                "steps_per_s": round(1 / step_s, 2),
                "train_seconds": round(train_s, 2),
                "setup_seconds": round(wall - train_s, 2),
            }
        )
        print(f"{name}: {1 / step_s:.2f} steps/s, set-up {wall - train_s:.1f} s", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps per task run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the CPU is shared)")
    parser.add_argument("--loader-steps", type=int, default=60, help="training steps per loader variant and model")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="train_bench_") as tmp:
        root = Path(tmp)
        docs = documents(root / "documents", SHARED)
        tokenizer = train_tokenizer(root / "tokenizer", docs)
        from transformers import AutoTokenizer

        pad_id = AutoTokenizer.from_pretrained(tokenizer).pad_token_id
        inputs = {
            "tokens": tokens_dataset(root / "tokens", tokenizer, docs, seq_len=128, shard_mb=0.5),
            "chat": chat_dataset(root / "chat", SHARED),
            "preference": preference_dataset(root / "preference", SHARED),
        }
        overhead = loader_overhead(inputs["tokens"], pad_id, micro_batch=8, steps=args.loader_steps)
        for model in overhead["models"]:
            print(
                f"loader overhead, {model['model']}: {model['overhead_percent_measured']}% measured, "
                f"{model['overhead_percent_loader_time']}% from the loader's own time "
                f"({model['median_step_ms_mmap_loader']} vs {model['median_step_ms_in_memory']} ms/step)",
                flush=True,
            )
        speeds = task_speed(inputs, root / "speed", args.steps)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "torch_threads": args.threads,
        },
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "loader_overhead": overhead,
        "task_speed": speeds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
