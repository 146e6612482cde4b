"""Throughput of the heuristic quality filters: Thresher's `web_heuristics` recipe vs datatrove.

Both systems run Gopher repetition -> Gopher quality -> C4 -> FineWeb at the published default
thresholds on the same corpus, with 2 worker processes, in one invocation (other work shares the
CPU: the load average is recorded before and after each run). Each system is a subprocess whose
process tree is sampled for resident memory; CPU seconds come from the children's rusage.

Two corpora (JSON lines, under benchmarks/work/, not committed), built from the real documents of
../shared/data (benchmarks/corpora.py), each document copied until the corpus has its size with
its lines shuffled (seeded), so the copies differ:
- `web` (50 MB): web pages (c4_sample, dolma_test_data, dclm_quality_labels) and Wikipedia;
- `mixed` (71 MB): the same plus Stack Exchange Q&A, paper full texts (unarXive, LaTeX) and
  Python source: long, line-heavy and code-like documents.

    python benchmarks/quality_bench.py [--corpus web mixed] [--files 8] [--out benchmarks/results/quality_bench.json]

Needs datatrove and spacy (pip install -e .[bench]).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpora  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "quality"
CORPORA = {"web": (("web", "wiki"), 50.0), "mixed": (corpora.KINDS, 71.0)}  # kinds of documents, MB

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


def build_corpus(name: str, files: int) -> tuple[Path, int, int, dict]:
    """Write corpus `name` (once; reused if it exists): copies of the real documents of its kinds
    with their lines shuffled, spread over `files` JSON-lines files."""
    kinds, target_mb = CORPORA[name]
    folder = WORK / f"corpus-{name}-{int(target_mb)}mb-{files}"
    marker = folder.with_suffix(".json")  # beside the corpus, so no reader takes it for data
    if marker.is_file():
        info = json.loads(marker.read_text())
        return folder, info["documents"], info["bytes"], info["kinds"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    docs = corpora.documents(kinds)
    rng = random.Random(0)
    handles = [open(folder / f"part-{i:02d}.jsonl", "w", encoding="utf-8") for i in range(files)]
    written = documents = 0
    copy = 0
    per_kind: dict[str, dict[str, int]] = {}
    while written < target_mb * 1e6:
        for index, doc in enumerate(docs):
            if written >= target_mb * 1e6:
                break
            lines = doc["text"].split("\n")
            if copy:
                rng.shuffle(lines)
            line = json.dumps({"id": f"{copy}-{index}", "text": "\n".join(lines)}) + "\n"
            handles[documents % files].write(line)
            written += len(line.encode())
            documents += 1
            kind = per_kind.setdefault(doc["kind"], {"documents": 0, "bytes": 0})
            kind["documents"] += 1
            kind["bytes"] += len(line.encode())
        copy += 1
    for handle in handles:
        handle.close()
    marker.write_text(json.dumps({"documents": documents, "bytes": written, "kinds": per_kind}))
    return folder, documents, written, per_kind


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def monitored(command: list[str], env: dict | None = None) -> dict:
    """Run `command`; return wall seconds, CPU seconds (user + system of the process and every
    descendant it waited for: rusage) and the peak RSS of its process tree (sampled every 0.1 s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(max(used, sum(cpu.values())), 2),
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


def compare(name: str, files: int) -> dict:
    """Both systems on corpus `name`, one after the other."""
    corpus, documents, size, kinds = build_corpus(name, files)
    print(f"corpus {name}: {documents} documents, {size / 1e6:.1f} MB in {files} files ({corpus})")
    results: dict = {"corpus": {"documents": documents, "mb": round(size / 1e6, 1), "files": files, "kinds": kinds}}
    results["runs"] = {}
    for system, run in (
        ("thresher", lambda: run_thresher(corpus, files, size)),
        ("datatrove", lambda: run_datatrove(corpus, files)),
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
        results["runs"][system] = result
        print(
            f"{system:10s} {result['seconds']:8.1f} s  {result['docs_per_second']:8.1f} docs/s  "
            f"{result['mb_per_second']:6.3f} MB/s  cpu {result['cpu_seconds']:.0f} s  "
            f"peak RSS {result['peak_rss_mb']:.0f} MB  kept {result['kept']}  "
            f"load {result['load_before']} -> {result['load_after']}"
        )
    ours, theirs = results["runs"]["thresher"], results["runs"]["datatrove"]
    results["speedup_wall"] = round(theirs["seconds"] / ours["seconds"], 2)
    results["speedup_cpu"] = round(theirs["cpu_seconds"] / ours["cpu_seconds"], 2)
    print(f"{name}: speed-up {results['speedup_wall']}x wall, {results['speedup_cpu']}x CPU time")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "quality_bench.json"))
    args = parser.parse_args()
    results = {
        "workers": 2,
        "cpus": os.cpu_count(),
        "corpora": {name: compare(name, args.files) for name in args.corpus},
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
