"""Ray executor overhead against the local executor on this machine, same recipe, same corpus.

    python benchmarks/ray_bench.py [--mb 60] [--workers 2]

Builds a corpus of real web documents (the shared C4 sample and Wikipedia articles, each
document copied with a numbered suffix so that no two are identical) of about --mb MB as
jsonl.gz files, runs the `clean` recipe with executor=local and executor=ray, checks the
outputs are identical, and writes benchmarks/results/ray.json. The per-core throughput also
feeds the multi-node plan in docs/scaling.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
from pathlib import Path

from measure import WORK, curate_command, machine, measure, save

SHARED = (
    Path("/work/shared/data")
    if Path("/work/shared/data").is_dir()
    else Path(__file__).resolve().parents[2] / "shared" / "data"
)


def build_corpus(folder: Path, megabytes: float, files: int = 24) -> tuple[int, int]:
    docs = [json.loads(line)["text"] for line in gzip.open(SHARED / "c4_sample" / "c4_demo.jsonl.gz", "rt")]
    docs += [line.strip() for line in gzip.open(SHARED / "wikipedia_sample" / "wiki_demo.txt.gz", "rt") if line.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    target, written, count = megabytes * 1e6, 0, 0
    handles = [gzip.open(folder / f"part-{i:03d}.jsonl.gz", "wt") for i in range(files)]
    while written < target:
        text = f"{docs[count % len(docs)]}\n\n(copy {count})"
        handles[count % files].write(json.dumps({"text": text}) + "\n")
        written += len(text.encode())
        count += 1
    for handle in handles:
        handle.close()
    return count, written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    corpus = WORK / "ray" / "corpus"
    shutil.rmtree(WORK / "ray", ignore_errors=True)
    docs, size = build_corpus(corpus, args.mb)
    results = {"corpus": {"documents": docs, "text_mb": round(size / 1e6, 1)}, "machine": machine(), "runs": {}}
    digests = {}
    for executor in ("local", "ray"):
        out = WORK / "ray" / executor
        run = measure(
            curate_command(
                "pipeline=clean",
                f"input.paths=[{corpus}]",
                f"output.dir={out}",
                f"executor={executor}",
                f"executor.workers={args.workers}",
                "executor.task_mb=8",
            )
        )
        manifest = json.loads((out / "manifest.json").read_text())
        digests[executor] = [s["sha256"] for s in manifest["shards"]]
        run.pop("output_tail")
        run.update(
            docs_per_s=round(docs / run["seconds"], 1),
            mb_per_s=round(size / 1e6 / run["seconds"], 2),
            engine_seconds=manifest["timings"]["seconds"],
            tasks=manifest["tasks"],
        )
        results["runs"][executor] = run
    results["identical_output"] = digests["local"] == digests["ray"]
    local, ray = results["runs"]["local"], results["runs"]["ray"]
    results["ray_overhead"] = {
        "wall": round(ray["seconds"] / local["seconds"] - 1, 3),
        "engine": round(ray["engine_seconds"] / local["engine_seconds"] - 1, 3),
    }
    results["local_mb_per_s_per_worker"] = round(local["mb_per_s"] / args.workers, 2)
    print(json.dumps(results, indent=2))
    save("ray", results)


if __name__ == "__main__":
    main()
