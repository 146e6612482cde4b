"""LIMA-style selection on real pools: does the chosen 1,000 beat a random 1,000 and the 1,000
longest responses on quality and redundancy, for each embedder and selection method?

Builds the pools from ../shared/data (Stack Exchange beer + Cardano through `stackexchange_qa`,
alpaca_en_demo through the `alpaca` converter), runs the `sft_lima` recipe once per embedder
(MiniLM in float32 and in the default precision, MiniLM on 128 tokens, model2vec, hashed TF-IDF),
keeping its scanned state and timing the whole run, then resolves the selection with each method
on that state. Writes benchmarks/results/lima_select.json.

    python benchmarks/lima_bench.py [--work benchmarks/work/lima]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hydra import compose, initialize_config_dir  # noqa: E402

from curate.config import register_configs  # noqa: E402
from curate.engine import run  # noqa: E402
from curate.resources import CONF_DIR  # noqa: E402
from curate.stages.base import GlobalContext  # noqa: E402
from curate.stages.lima import LimaSelect  # noqa: E402

DATA = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
QUOTAS = {"*stackexchange*": 750, "*": 250}
# The embedders compared; each runs the whole sft_lima recipe (its scan embeds every row).
EMBEDDERS = {
    "minilm float32 256 tokens": {"embedder": "minilm", "embed_precision": "float32", "embed_max_tokens": 256},
    "minilm 256 tokens": {"embedder": "minilm", "embed_max_tokens": 256},  # the previous default
    "minilm": {"embedder": "minilm"},  # the default: 128 tokens, bfloat16 where the CPU has it natively
    "model2vec": {"embedder": "model2vec"},  # distilled on first use: warmed before the clock starts
    "tfidf": {"embedder": "tfidf"},
}


def curate(paths: list[Path], out: Path, *overrides: str) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="curate",
            overrides=[
                "input.paths=[" + ",".join(f"'{p}'" for p in paths) + "]",
                f"output.dir='{out}'",
                "executor.progress=false",
                "output.overwrite=true",
                *overrides,
            ],
        )
    return run(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(REPO / "benchmarks" / "work" / "lima"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "lima_select.json"))
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    curate(
        [DATA / "stackexchange_*/Posts.xml.gz"],
        work / "se",
        "pipeline=stackexchange_qa",
        "input.records=stackexchange_posts",
        "input.source=stackexchange",
    )
    curate(
        [DATA / "alpaca_en_demo/alpaca_en_demo.json.gz"],
        work / "alpaca",
        "pipeline=clean",
        "~stages.normalize",
        "~stages.length_filter",
        "input.records=alpaca",
    )
    from curate.sft.embed import Model2Vec

    Model2Vec()  # distil (once) outside the timed runs
    load_before = os.getloadavg()
    results = {}
    for label, options in EMBEDDERS.items():
        embedder = options["embedder"]
        out = work / f"lima_{label.replace(' ', '_')}"
        started = time.perf_counter()
        manifest = curate(
            [work / "se", work / "alpaca"],
            out,
            "pipeline=sft_lima",
            "output.keep_work=true",
            *(f"stages.lima_select.{key}={value}" for key, value in options.items()),
        )
        total_seconds = round(time.perf_counter() - started, 2)
        scan_seconds = manifest.timings.passes[0]["seconds"]
        scan_files = sorted((out / "_work" / "stage-lima_select" / "scan").glob("task-*.arrow"))
        for method in ("deita", "clusters", "mmr"):
            stage = LimaSelect(method=method, embedder=embedder, quotas=dict(QUOTAS))
            stage.name = "lima_select"
            folder = work / f"resolve_{label.replace(' ', '_')}_{method}"
            folder.mkdir()
            start = time.perf_counter()
            stage.resolve(GlobalContext(folder, scan_files, 1, 0, folder / "keep"))
            details = stage.stats.details
            sets = details["sets"]
            results[f"{label}/{method}"] = {
                "options": options,
                "pool": details["pool"],
                "selected": details["selected"],
                "run_seconds": total_seconds,
                "scan_seconds": scan_seconds,
                "resolve_seconds": round(time.perf_counter() - start, 2),
                **{
                    name: {
                        "quality_mean": s["quality"]["mean"],
                        "nn_similarity_mean": s["nn_similarity"]["mean"],
                        "share_nn_above_0.9": s["share_nn_above_threshold"],
                        "clusters_covered": s["clusters_covered"],
                        "cluster_entropy": s["cluster_entropy"],
                        "response_chars_p50": s["response_chars"]["p50"],
                        "sources": s["sources"],
                    }
                    for name, s in sets.items()
                },
            }
            r = results[f"{label}/{method}"]
            print(
                f"{label:24s} {method:9s} quality {r['selected']['quality_mean']:.3f} "
                f"(random {r['random']['quality_mean']:.3f}, longest {r['longest']['quality_mean']:.3f})  "
                f"NN sim {r['selected']['nn_similarity_mean']:.3f} (random {r['random']['nn_similarity_mean']:.3f}, "
                f"longest {r['longest']['nn_similarity_mean']:.3f})",
                flush=True,
            )
        print(f"{label}: scan {scan_seconds:.1f} s, run {total_seconds:.1f} s", flush=True)
    report = {
        "benchmark": "sft_lima selection: 1,000 of Stack Exchange (beer + Cardano) + alpaca_en_demo, "
        "quotas 750 Stack Exchange / 250 other",
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
