"""Throughput of the heuristic quality filters: Thresher's `web_heuristics` recipe vs datatrove.

Both systems run Gopher repetition -> Gopher quality -> C4 -> FineWeb at the published default
thresholds on the same corpus, with 2 worker processes, in one invocation (other work shares the
CPU: the load average is recorded before and after each run). Each system is a subprocess whose
process tree is sampled for resident memory; CPU seconds come from the children's rusage.

The corpus (>= 50 MB of JSON lines, under benchmarks/work/, not committed) is built from the real
web text in ../shared/data: c4_sample, dolma_test_data, dclm_quality_labels and wikipedia_sample,
each document copied many times with its lines shuffled (seeded), so the copies differ.

    python benchmarks/quality_bench.py [--mb 50] [--files 8] [--out benchmarks/results/quality_bench.json]

Needs datatrove and spacy (pip install -e .[bench]).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "quality"
DATA = REPO.parent / "shared" / "data" if (REPO.parent / "shared" / "data").is_dir() else Path("/work/shared/data")
SOURCES = [
    "c4_sample/c4_demo.jsonl.gz",
    "dolma_test_data/cc_en_head-0091.jsonl.gz",
    "dolma_test_data/provided_documents_000.json.gz",
    "dclm_quality_labels/majority_data.jsonl.gz",
]

DATATROVE_SCRIPT = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

corpus, out, logs, tasks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
LocalPipelineExecutor(
    pipeline=[
        JsonlReader(corpus, glob_pattern="*.jsonl", compression=None),
        GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter(),
        JsonlWriter(out, compression=None),
    ],
    tasks=tasks, workers=2, logging_dir=logs,
).run()
"""


def base_documents() -> list[str]:
    texts = []
    for name in SOURCES:
        with gzip.open(DATA / name, "rt", encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle]
    with gzip.open(DATA / "wikipedia_sample/wiki_demo.txt.gz", "rt", encoding="utf-8") as handle:
        texts += [line.rstrip("\n") for line in handle if line.strip()]
    return texts


def build_corpus(target_mb: float, files: int) -> tuple[Path, int, int]:
    """Write the corpus (once; reused if it already has the requested size): copies of the real
    documents with their lines shuffled, spread over `files` JSON-lines files."""
    folder = WORK / f"corpus-{int(target_mb)}mb-{files}"
    marker = folder.with_suffix(".json")  # beside the corpus, so no reader takes it for data
    if marker.is_file():
        info = json.loads(marker.read_text())
        return folder, info["documents"], info["bytes"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    texts = base_documents()
    rng = random.Random(0)
    handles = [open(folder / f"part-{i:02d}.jsonl", "w", encoding="utf-8") for i in range(files)]
    written = documents = 0
    copy = 0
    while written < target_mb * 1e6:
        for index, text in enumerate(texts):
            lines = text.split("\n")
            if copy:
                rng.shuffle(lines)
            line = json.dumps({"id": f"{copy}-{index}", "text": "\n".join(lines)}) + "\n"
            handles[documents % files].write(line)
            written += len(line.encode())
            documents += 1
        copy += 1
    for handle in handles:
        handle.close()
    marker.write_text(json.dumps({"documents": documents, "bytes": written}))
    return folder, documents, written


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def monitored(command: list[str], env: dict | None = None) -> dict:
    """Run `command`; return wall seconds, CPU seconds and the peak RSS of its process tree
    (sampled every 0.1 s: CPU time is summed over every process seen, at its last sample)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    peak = 0
    cpu: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root] + root.children(recursive=True)
                rss = 0
                for proc in tree:
                    try:
                        rss += proc.memory_info().rss
                        times = proc.cpu_times()
                        cpu[proc.pid] = times.user + times.system
                    except psutil.NoSuchProcess:
                        pass
                peak = max(peak, rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{output.decode(errors='replace')[-3000:]}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(sum(cpu.values()), 2),
        "peak_rss_mb": round(peak / 2**20, 1),
        "output_tail": output.decode(errors="replace")[-400:],
    }


def count_jsonl(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*.jsonl") for _ in open(path, encoding="utf-8"))


def run_datatrove(corpus: Path, files: int) -> dict:
    out, logs = WORK / "datatrove-out", WORK / "datatrove-logs"
    for folder in (out, logs):
        shutil.rmtree(folder, ignore_errors=True)
    result = monitored([sys.executable, "-c", DATATROVE_SCRIPT, str(corpus), str(out), str(logs), str(files)])
    result["kept"] = count_jsonl(out)
    return result


def run_thresher(corpus: Path, files: int, total_bytes: int) -> dict:
    out = WORK / "thresher-out"
    shutil.rmtree(out, ignore_errors=True)
    task_mb = total_bytes / files / 2**20 * 1.01  # one file per task, as datatrove's tasks
    command = [
        sys.executable,
        "-m",
        "curate.cli",
        "curate",
        "pipeline=web_heuristics",
        f"input.paths=[{corpus}]",
        f"output.dir={out}",
        "executor.workers=2",
        f"executor.task_mb={task_mb:.2f}",
        "executor.progress=false",
    ]
    result = monitored(command, env={**os.environ, "PYTHONPATH": str(REPO)})
    manifest = json.loads((out / "manifest.json").read_text())
    result["kept"] = manifest["rows"]
    result["stage_seconds"] = {s["name"]: s["seconds"] for s in manifest["stages"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality_bench.json"))
    args = parser.parse_args()
    corpus, documents, size = build_corpus(args.mb, args.files)
    print(f"corpus: {documents} documents, {size / 1e6:.1f} MB in {args.files} files ({corpus})")
    results = {
        "corpus": {
            "documents": documents,
            "mb": round(size / 1e6, 1),
            "files": args.files,
            "built_from": SOURCES + ["wikipedia_sample/wiki_demo.txt.gz"],
        },
        "workers": 2,
        "cpus": os.cpu_count(),
        "runs": {},
    }
    for name, run in (
        ("thresher", lambda: run_thresher(corpus, args.files, size)),
        ("datatrove", lambda: run_datatrove(corpus, args.files)),
    ):
        load_before = load()
        result = run()
        result.update(
            load_before=load_before,
            load_after=load(),
            docs_per_second=round(documents / result["seconds"], 1),
            mb_per_second=round(size / 1e6 / result["seconds"], 3),
            mb_per_cpu_second=round(size / 1e6 / result["cpu_seconds"], 3),
        )
        result.pop("output_tail")
        results["runs"][name] = result
        print(
            f"{name:10s} {result['seconds']:8.1f} s  {result['docs_per_second']:8.1f} docs/s  "
            f"{result['mb_per_second']:6.3f} MB/s  cpu {result['cpu_seconds']:.0f} s  peak RSS {result['peak_rss_mb']:.0f} MB  "
            f"kept {result['kept']}  load {result['load_before']} -> {result['load_after']}"
        )
    ours, theirs = results["runs"]["thresher"], results["runs"]["datatrove"]
    results["speedup_wall"] = round(theirs["seconds"] / ours["seconds"], 2)
    results["speedup_cpu"] = round(theirs["cpu_seconds"] / ours["cpu_seconds"], 2)
    results["date"] = time.strftime("%Y-%m-%d %H:%M")
    print(f"speed-up: {results['speedup_wall']}x wall, {results['speedup_cpu']}x CPU time")
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
