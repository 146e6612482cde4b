"""Speed of the self-instruct novelty filter (ROUGE-L ≤ 0.7 against every kept instruction).

Compares, on the same real instructions and the same sequence of candidates (each accepted
candidate joins the pool, as in generation):
- `alpaca`: Stanford Alpaca's approach — rouge-score's `_score_lcs` of the candidate against every
  pre-tokenized pool instruction, in a `multiprocessing.Pool(cpu_count)` opened per candidate;
- `loop`: the same scores in one process (Self-Instruct's commented-out variant);
- `thresher`: `curate.sft.novelty.NoveltyIndex` (overlap prefilter + bit-parallel exact LCS).
The decisions must be identical; the speed-ups are reported. Results go to
benchmarks/results/novelty_bench.json (with the machine's load: the CPU is shared).

    python benchmarks/novelty_bench.py [--pool 10000] [--candidates 200]
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import platform
import random
import re
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rouge_score import rouge_scorer  # noqa: E402

from curate.sft.novelty import NoveltyIndex  # noqa: E402

DATA = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
THRESHOLD = 0.7


def load(path: Path) -> list[dict]:
    raw = gzip.open(path).read()
    return json.loads(raw) if raw.lstrip()[:1] == b"[" else [json.loads(line) for line in raw.splitlines()]


def real_instructions() -> list[str]:
    """Every distinct instruction of the instruction data sets in ../shared/data."""
    texts = []
    for name in (
        "alpacadatacleaned_extensions/gsm_8k_train.json.gz",
        "alpacadatacleaned_extensions/toolformer-dedupe-only-dataset.json.gz",
        "alpaca_en_demo/alpaca_en_demo.json.gz",
        "lima/lima.json.gz",
        "self_instruct/seed_tasks.jsonl.gz",
        "self_instruct/davinci_predictions.jsonl.gz",
    ):
        texts += [r["instruction"] for r in load(DATA / name)]
    seen, unique = set(), []
    for text in texts:
        text = re.sub(r"\s+", " ", text).strip()
        if text and text not in seen:
            seen.add(text)
            unique.append(text)
    return unique


def near_duplicate(text: str, rng: random.Random) -> str:
    """A light edit of a real instruction (a word dropped or swapped), as LLMs produce them."""
    words = text.split()
    if len(words) > 3:
        i = rng.randrange(len(words))
        if rng.random() < 0.5:
            del words[i]
        else:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


def workload(pool_size: int, n_candidates: int, seed: int = 0) -> tuple[list[str], list[str]]:
    texts = real_instructions()
    rng = random.Random(seed)
    rng.shuffle(texts)
    if len(texts) < pool_size + n_candidates:
        raise SystemExit(f"only {len(texts)} distinct instructions available")
    pool = texts[:pool_size]
    fresh = texts[pool_size : pool_size + n_candidates - n_candidates // 4]
    edited = [near_duplicate(rng.choice(pool), rng) for _ in range(n_candidates // 4)]
    candidates = fresh + edited
    rng.shuffle(candidates)
    return pool, candidates


def run_alpaca(pool: list[str], candidates: list[str], persistent: bool = False) -> list[bool]:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    tokens = [scorer._tokenizer.tokenize(t) for t in pool]
    decisions = []
    processes = multiprocessing.cpu_count()
    for text in candidates:
        new = scorer._tokenizer.tokenize(text)
        with multiprocessing.Pool(processes) as workers:
            scores = workers.map(partial(rouge_scorer._score_lcs, new), tokens)
        novel = max(s.fmeasure for s in scores) <= THRESHOLD
        decisions.append(novel)
        if novel:
            tokens.append(new)
    return decisions


def run_loop(pool: list[str], candidates: list[str]) -> list[bool]:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    tokens = [scorer._tokenizer.tokenize(t) for t in pool]
    decisions = []
    for text in candidates:
        new = scorer._tokenizer.tokenize(text)
        novel = max(rouge_scorer._score_lcs(new, other).fmeasure for other in tokens) <= THRESHOLD
        decisions.append(novel)
        if novel:
            tokens.append(new)
    return decisions


def run_thresher(pool: list[str], candidates: list[str]) -> list[bool]:
    index = NoveltyIndex(threshold=THRESHOLD)
    for text in pool:
        index.add(text)
    decisions = []
    for text in candidates:
        novel, _, tokens = index.check(text)
        decisions.append(novel)
        if novel:
            index.add_tokens(tokens)
    return decisions


def timed(function, *args) -> tuple[list[bool], float]:
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=10_000)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--methods", default="alpaca,loop,thresher")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "novelty_bench.json"))
    args = parser.parse_args()
    pool, candidates = workload(args.pool, args.candidates)
    load_before = os.getloadavg()
    results = {}
    for method in args.methods.split(","):
        function = {"alpaca": run_alpaca, "loop": run_loop, "thresher": run_thresher}[method]
        decisions, seconds = timed(function, pool, candidates)
        results[method] = {
            "seconds": round(seconds, 3),
            "ms_per_candidate": round(1000 * seconds / len(candidates), 3),
            "accepted": sum(decisions),
            "decisions": decisions,
        }
        print(
            f"{method:9s} {seconds:9.2f} s  {results[method]['ms_per_candidate']:9.2f} ms/candidate  "
            f"accepted {sum(decisions)}/{len(candidates)}",
            flush=True,
        )
    reference = next(iter(results.values()))["decisions"]
    identical = all(r["decisions"] == reference for r in results.values())
    if "thresher" in results:
        for method, r in results.items():
            if method != "thresher":
                r["speedup_of_thresher"] = round(r["seconds"] / results["thresher"]["seconds"], 1)
    for r in results.values():
        r.pop("decisions")
    report = {
        "benchmark": "self-instruct novelty filter, ROUGE-L F > 0.7 rejects",
        "pool": len(pool),
        "candidates": len(candidates),
        "near_duplicate_candidates": args.candidates // 4,
        "identical_decisions": identical,
        "methods": results,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "methods"}, indent=1))
    if not identical:
        raise SystemExit("decisions differ between methods")


if __name__ == "__main__":
    main()
