"""Proxy-model benchmark: how many training tokens per second each candidate proxy gets on this
machine, to choose the proxy size and token budget of the ablations (docs/benchmarks/data_effect.md).

    python benchmarks/proxy_bench.py [--steps 8] [--threads 1]

For each candidate Llama shape (the `tiny` model config and wider / deeper ones), at the
ablations' vocabulary (4,096) and row length (256), micro-batch 16: the median seconds of a
training step (forward, backward, AdamW) and of a held-out forward pass, as training and eval
tokens per second on one thread. Steps of the candidates alternate round by round, so load from
other users of the machine hits them alike. The budget of an experiment then follows:
arms x seeds x budget / (tokens/s x cores) must fit the 45 minutes with curation and evaluation.

Writes benchmarks/results/proxy.json with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from train_bench import make_model  # noqa: E402  (the benchmarks share their model builder)

CANDIDATES = {  # name: (hidden, layers, heads, kv heads); `tiny` is conf/model/tiny.yaml
    "tiny (64 x 2)": (64, 2, 4, 2),
    "128 x 4": (128, 4, 4, 2),
    "192 x 4": (192, 4, 6, 2),
    "256 x 4": (256, 4, 8, 4),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8, help="timed rounds per candidate")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = [round(x, 2) for x in os.getloadavg()]
    batch = torch.randint(0, args.vocab, (args.batch, args.seq_len))
    setups = {}
    for name, shape in CANDIDATES.items():
        hidden, layers, heads, kv_heads = shape
        model = make_model(hidden, layers, args.vocab, args.seq_len, heads, kv_heads)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for _ in range(2):  # warm-up
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        setups[name] = (model, optimizer, {"train": [], "eval": []})
    for _ in range(args.steps):  # round-robin over the candidates
        for model, optimizer, times in setups.values():
            began = time.perf_counter()
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times["train"].append(time.perf_counter() - began)
            began = time.perf_counter()
            with torch.no_grad():
                model(input_ids=batch)
            times["eval"].append(time.perf_counter() - began)
    tokens = args.batch * args.seq_len
    results = {}
    for name, (model, _, times) in setups.items():
        params = sum(p.numel() for p in model.parameters())
        embedding = model.get_input_embeddings().weight.numel()
        train_s, eval_s = statistics.median(times["train"]), statistics.median(times["eval"])
        results[name] = {
            "parameters": params,
            "non_embedding_parameters": params - embedding,
            "train_step_s": round(train_s, 4),
            "train_tokens_per_s": round(tokens / train_s),
            "eval_tokens_per_s": round(tokens / eval_s),
        }
        print(
            f"{name:14s} {params:>10,} params  train {tokens / train_s:>8,.0f} tok/s  eval {tokens / eval_s:>8,.0f} tok/s"
        )
    record = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "threads": args.threads,
        "vocab": args.vocab,
        "seq_len": args.seq_len,
        "micro_batch": args.batch,
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "results": results,
    }
    out = REPO / "benchmarks" / "results" / "proxy.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"load average {load_before} -> {record['load_average']['after']}; wrote {out}")


if __name__ == "__main__":
    main()
