"""Scale benchmark: `near_dedup` from 1 M to 16 M documents with 2 workers, and the 71 MB corpus.

    python benchmarks/scale_bench.py --sizes 1000000,4000000,16000000   # the scaling series
    python benchmarks/scale_bench.py --reference                        # the 71 MB corpus rows
    python benchmarks/scale_bench.py --plot                             # docs/img/scaling.png

1. Corpora (built under benchmarks/work/scale/, zstd-compressed JSON lines, deterministic):
   documents assembled from real sentences (the distinct sentences of 5 to 60 words of the real
   documents `dedup_bench.py` reads from ../shared/data: web text, Wikipedia, Q&A, instructions,
   papers, dialogues), 4 to 8 per document, chosen by a hash of the document's number; plus planted
   near-duplicates: 10% of the documents are copies of a random earlier-numbered document with
   word edits (substitute / delete / insert) at 0, 0.5, 1 or 2% of words, spread over all files.
2. Truth: the planted pairs whose exact word 5-gram Jaccard (dedup_bench's definition) is >= 0.8,
   joined into clusters. Assembled documents share a sentence now and then, never most of them.
3. Each size runs `thresher curate pipeline=near_dedup` with 2 workers and
   `executor.partitions` = one per 250k documents (so a partition holds the same number of
   documents at every size). Measured with psutil every 50 ms: wall time, CPU time, peak RSS
   of the driver (the main process) and of the largest worker, each also without memory-mapped
   file pages (anonymous RSS); precision / recall / F1 of "this document has a near-duplicate".
   The run's own `--plan` estimate is recorded beside the measurements. The output folder is
   deleted after scoring (disk), the corpus kept unless --clean.
4. `--reference`: on dedup_bench.py's 71 MB corpus, the MinHash stage alone, one after the other
   in this invocation: Thresher as of this checkout, Thresher as of `--baseline-ref` (a git
   worktree of that commit, default the branch point: the speed before partitioned resolve),
   datatrove's 4-stage MinHash, and Thresher with `signatures=rensa`; plus signatures alone on
   the same documents (Thresher's numpy affine32 vs rensa's RMinHash), and the documents whose
   keep/drop decision differs between the two signature backends.
Results: benchmarks/results/scale.json (load averages recorded: the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import dedup_bench  # noqa: E402  (this folder's benchmark: real documents, edits, truth, datatrove)
from dedup_bench import edit, shingle_set, timed  # noqa: E402

from curate.dedup.text import mix64  # noqa: E402

WORK = HERE / "work" / "scale"
RESULTS = HERE / "results" / "scale.json"
PLOT = REPO / "docs" / "img" / "scaling.png"
CORPUS_VERSION = "2"
FILE_DOCS = 100_000
COPY_SHARE = 0.10
EDIT_RATES = (0.0, 0.005, 0.01, 0.02)
PARTITION_DOCS = 250_000
THRESHOLD = 0.8
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
BASELINE_REF = "979d249"  # the branch point: driver-side resolve


# --------------------------------------------------------------------------------------------
# Corpus


def sentence_pool(work: Path) -> list[str]:
    cache = work / "sentences.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    found: set[str] = set()
    for source, text in dedup_bench.real_documents():
        if source.startswith("stdlib"):
            continue  # code: few sentences
        for sentence in SENTENCE.split(text):
            sentence = " ".join(sentence.split())
            if 5 <= len(sentence.split()) <= 60:
                found.add(sentence)
    pool = sorted(found)
    work.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(pool))
    return pool


def hashed(numbers: np.ndarray, salt: int) -> np.ndarray:
    return mix64(numbers.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt))


def base_texts(numbers: np.ndarray, pool: list[str]) -> list[str]:
    """The assembled document of each number: 4 to 8 sentences chosen by hashes of the number."""
    counts = 4 + (hashed(numbers, 1) % np.uint64(5)).astype(np.int64)
    picks = [(hashed(numbers, 100 + k) % np.uint64(len(pool))).astype(np.int64) for k in range(8)]
    return [" ".join(pool[picks[k][i]] for k in range(counts[i])) for i in range(len(numbers))]


def build_corpus(size: int, pool: list[str]) -> Path:
    """`size` documents: base documents d<n> and planted copies c<n> of d<origin>."""
    import orjson
    import zstandard

    folder = WORK / f"corpus-{size}"
    marker = folder / "VERSION"
    if marker.is_file() and marker.read_text() == CORPUS_VERSION:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    vocabulary = sorted({w for s in pool[:20000] for w in s.split() if w.isalpha() and len(w) < 12})
    copies = int(size * COPY_SHARE)
    base = size - copies
    truth_origin, truth_copy, truth_rate, truth_similar = [], [], [], []
    files = math.ceil(size / FILE_DOCS)
    for index in range(files):
        # base documents of this file, then the copies whose turn is in this file (spread evenly)
        numbers = np.arange(index * base // files, (index + 1) * base // files)
        copy_numbers = np.arange(index * copies // files, (index + 1) * copies // files)
        rows = [{"id": f"d{n}", "text": t} for n, t in zip(numbers.tolist(), base_texts(numbers, pool))]
        origins = (hashed(copy_numbers, 7) % np.uint64(max(1, (index + 1) * base // files))).astype(np.int64)
        origin_texts = base_texts(origins, pool)
        rates = [EDIT_RATES[int(h % np.uint64(len(EDIT_RATES)))] for h in hashed(copy_numbers, 9)]
        for n, origin, text, rate in zip(copy_numbers.tolist(), origins.tolist(), origin_texts, rates):
            copy = edit(text, rate, vocabulary, random.Random(n)) if rate else text
            rows.append({"id": f"c{n}", "text": copy})
            a, b = shingle_set(text), shingle_set(copy)
            common = len(np.intersect1d(a, b, assume_unique=True))
            truth_origin.append(origin)
            truth_copy.append(n)
            truth_rate.append(rate)
            truth_similar.append(common / max(1, len(a) + len(b) - common) >= THRESHOLD)
        order = np.argsort(hashed(np.arange(len(rows)) + index * 10_000_000, 3), kind="stable")
        payload = b"".join(orjson.dumps(rows[i]) + b"\n" for i in order.tolist())
        (folder / f"part-{index:05d}.jsonl.zst").write_bytes(zstandard.ZstdCompressor(level=3).compress(payload))
    truth = pa.table(
        {"origin": truth_origin, "copy": truth_copy, "rate": truth_rate, "similar": truth_similar},
        schema=pa.schema(
            [("origin", pa.int64()), ("copy", pa.int64()), ("rate", pa.float64()), ("similar", pa.bool_())]
        ),
    )
    with pa.OSFile(str(truth_path(size)), "wb") as sink, pa.ipc.new_stream(sink, truth.schema) as writer:
        writer.write_table(truth)
    marker.write_text(CORPUS_VERSION)
    return folder


def truth_path(size: int) -> Path:
    return WORK / f"truth-{size}.arrow"  # beside the corpus: not an input


def truth_documents(size: int) -> set[str]:
    """Documents with a near-duplicate in the truth: both ends of every similar planted pair."""
    with pa.memory_map(str(truth_path(size))) as source:
        truth = pa.ipc.open_stream(source).read_all()
    similar = truth.filter(truth.column("similar"))
    return {f"d{n}" for n in similar.column("origin").to_pylist()} | {
        f"c{n}" for n in similar.column("copy").to_pylist()
    }


# --------------------------------------------------------------------------------------------
# Running and scoring


def run_curate(command: list[str], log: Path, repo: Path = REPO) -> dict:
    """dedup_bench's measurement, named as this benchmark reports it: the driver is the main
    process, a worker the largest child."""
    found = timed(command, log, repo)
    return {
        "seconds": found["seconds"],
        "cpu_seconds": found["cpu_seconds"],
        "driver_peak_rss_mb": found["peak_rss_main_process_mb"],
        "worker_peak_rss_mb": found["peak_rss_largest_child_mb"],
        "peak_anonymous_rss_one_process_mb": found["peak_anonymous_rss_one_process_mb"],
        "worker_peak_anonymous_rss_mb": found["peak_anonymous_rss_largest_child_mb"],
        "tree_peak_rss_mb": found["peak_rss_mb"],
    }


def curate_command(corpus: Path, out: Path, workers: int, overrides: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "curate.cli",
        "curate",
        "pipeline=near_dedup",
        f"input.paths=[{corpus}]",
        f"output.dir={out}",
        f"executor.workers={workers}",
        "executor.progress=false",
        "output.overwrite=true",
        "output.report=false",
        *overrides,
    ]


def predicted_documents(out: Path) -> set[str]:
    """Documents the run put in a duplicate cluster (exact or near), from shards and rejects."""
    manifest = json.loads((out / "manifest.json").read_text())
    in_cluster: set[str] = set()
    for entry in manifest["shards"] + manifest["rejects"]:
        with pa.memory_map(str(out / entry["path"])) as source:
            table = pa.ipc.open_stream(source).read_all()
        for column in ("exact_cluster", "dup_cluster"):
            if column in table.column_names:
                member = pc.is_valid(table.column(column))
                in_cluster.update(table.column("id").filter(member).to_pylist())
        del table
    return in_cluster


def f1(predicted: set[str], truth: set[str]) -> dict:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "predicted": len(predicted),
        "actual": len(truth),
    }


def plan_estimate(corpus: Path, out: Path, workers: int, overrides: list[str]) -> list[str]:
    command = curate_command(corpus, out, workers, overrides) + ["plan=true"]
    result = subprocess.run(
        command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()


def scale_row(
    size: int, workers: int, pool: list[str], keep: bool, partition_docs: int, extra: tuple[str, ...] = ()
) -> dict:
    corpus = build_corpus(size, pool)
    out = WORK / f"out-{size}"
    partitions = max(1, math.ceil(size / partition_docs))
    overrides = [f"executor.partitions={partitions}", *extra]
    estimate = plan_estimate(corpus, out, workers, overrides)
    load_before = os.getloadavg()
    result = run_curate(curate_command(corpus, out, workers, overrides), WORK / f"out-{size}.log")
    result["load_before"] = [round(x, 2) for x in load_before]
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    manifest = json.loads((out / "manifest.json").read_text())
    result.update(
        documents=manifest["rows_in"],
        partitions=partitions,
        corpus_mb=round(sum(p.stat().st_size for p in corpus.glob("*.zst")) / 2**20, 1),
        microseconds_per_document=round(1e6 * result["seconds"] / manifest["rows_in"], 2),
        removed=manifest["dropped"],
        estimate=estimate,
        scores=f1(predicted_documents(out), truth_documents(size)),
    )
    details = {s["name"]: s.get("details", {}) for s in manifest["stages"]}
    result["minhash"] = {
        k: details.get("minhash_dedup", {}).get(k)
        for k in ("candidate_pairs", "verified_pairs", "clusters", "duplicates_removed")
    }
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return result


COST_SIZES = (20_000, 200_000, 800_000)


def costs(workers: int) -> dict:
    """Per-document memory costs, as the estimate uses them: near_dedup at three sizes in one
    partition. The baseline is the smallest run's; a worker's growth is its MinHash partition
    (17 shuffled rows a document), the driver's its clusters (the planted 10% copies and their
    origins)."""
    pool = sentence_pool(WORK)
    rows = {size: scale_row(size, workers, pool, False, size) for size in COST_SIZES}
    small, large = rows[COST_SIZES[1]], rows[COST_SIZES[2]]
    documents = large["documents"] - small["documents"]
    members = large["scores"]["predicted"] - small["scores"]["predicted"]
    exact = {size: scale_row(size, workers, pool, False, size, ("~stages.minhash_dedup",)) for size in COST_SIZES[1:]}
    return {
        "runs": {str(size): row for size, row in rows.items()},
        "exact_runs": {str(size): row for size, row in exact.items()},
        "exact_worker_partition_bytes_per_document": round(
            (exact[COST_SIZES[2]]["worker_peak_rss_mb"] - exact[COST_SIZES[1]]["worker_peak_rss_mb"])
            * 2**20
            / documents,
            1,
        ),
        "driver_base_mb": rows[COST_SIZES[0]]["driver_peak_rss_mb"],
        "worker_partition_bytes_per_document": round(
            (large["worker_peak_rss_mb"] - small["worker_peak_rss_mb"]) * 2**20 / documents, 1
        ),
        "driver_bytes_per_cluster_member": round(
            (large["driver_peak_rss_mb"] - small["driver_peak_rss_mb"]) * 2**20 / members, 1
        ),
    }


# --------------------------------------------------------------------------------------------
# The 71 MB corpus: today's speed, datatrove, rensa


def baseline_checkout(ref: str) -> Path:
    folder = WORK / f"baseline-{ref}"
    if not (folder / "curate").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), ref], cwd=REPO, check=True)
    return folder


def signature_speed(folder: Path) -> dict:
    """Signatures alone, of the same documents' shingles: numpy affine32 vs rensa, best of 3."""
    from rensa import RMinHash

    from curate.dedup.minhash import permutations, signatures, sorted_unique
    from curate.stages.dedup import MinHashDedup

    stage = MinHashDedup()
    stage.validate()
    texts = [row["text"] for _, row in dedup_bench.corpus_rows(folder)]
    shingles = stage.shingles(pa.array(texts, pa.string()))
    doc = np.repeat(np.arange(len(texts), dtype=np.uint64), shingles.counts)
    keys = sorted_unique((doc << np.uint64(32)) | (shingles.hashes & np.uint64(0xFFFFFFFF)))
    values = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    counts = np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=len(texts))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    a, b = permutations(128, 1)
    timings: dict[str, list[float]] = {"thresher_numpy": [], "rensa": []}
    for _ in range(3):
        start = time.perf_counter()
        signatures(values, offsets, a, b)
        timings["thresher_numpy"].append(time.perf_counter() - start)
        start = time.perf_counter()
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(
            values.astype(np.uint64), offsets.astype(np.uint64), 128, 1
        )
        np.array(matrix.to_rows(), np.uint32)
        timings["rensa"].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in timings.items()}
    return {
        "documents": len(texts),
        "shingles": int(len(values)),
        "seconds": {name: round(value, 3) for name, value in best.items()},
        "rensa_speedup": round(best["thresher_numpy"] / best["rensa"], 1),
    }


def decisions(out: Path) -> dict[str, bool]:
    """Each document's fate: dropped as a near-duplicate or not."""
    manifest = json.loads((out / "manifest.json").read_text())
    fate: dict[str, bool] = {}
    for key in ("shards", "rejects"):
        for entry in manifest[key]:
            with pa.memory_map(str(out / entry["path"])) as source:
                table = pa.ipc.open_stream(source).read_all()
            fate.update(dict.fromkeys(table.column("id").to_pylist(), key == "rejects"))
    return fate


def reference(workers: int, baseline_ref: str, skip_datatrove: bool) -> dict:
    work = dedup_bench.WORK / "full"
    work.mkdir(parents=True, exist_ok=True)
    folder = dedup_bench.build_corpus(work, False)
    truth = dedup_bench.ground_truth(work, folder)
    documents = sum(1 for _ in dedup_bench.corpus_rows(folder))
    only = ["~stages.exact_dedup", f"executor.task_mb={dedup_bench.TASK_MB}"]
    rows: dict[str, dict] = {}
    load_before = os.getloadavg()

    def thresher(name: str, repo: Path, overrides: list[str]) -> None:
        out = WORK / f"reference-{name}"
        command = curate_command(folder, out, workers, only + overrides)
        rows[name] = run_curate(command, WORK / f"reference-{name}.log", repo)
        rows[name]["docs_per_second"] = round(documents / rows[name]["seconds"], 1)
        _, labels = labels_of(out)
        rows[name].update(dedup_bench.scores(labels, truth["clusters"])["documents"])
        print(f"{name:>24}: {rows[name]['seconds']:7.2f} s  {rows[name]['docs_per_second']:8.1f} docs/s", flush=True)

    thresher("thresher", REPO, [])
    thresher("thresher_baseline", baseline_checkout(baseline_ref), [])
    thresher("thresher_rensa", REPO, ["stages.minhash_dedup.signatures=rensa"])
    if not skip_datatrove:
        result, labels = dedup_bench.run_datatrove(folder, WORK / "reference-datatrove", workers)
        result["docs_per_second"] = round(documents / result["seconds"], 1)
        result.update(dedup_bench.scores(labels, truth["clusters"])["documents"])
        rows["datatrove"] = result
        print(f"{'datatrove':>24}: {result['seconds']:7.2f} s", flush=True)
    default, fast = decisions(WORK / "reference-thresher"), decisions(WORK / "reference-thresher_rensa")
    differ = sorted(doc for doc in default if default[doc] != fast.get(doc))
    found = {
        "corpus": {"documents": documents, "folder": str(folder.relative_to(REPO))},
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "systems": rows,
        "signatures_alone": signature_speed(folder),
        "rensa_decisions_differ": {"documents": len(differ), "examples": differ[:10]},
        "baseline_ref": baseline_ref,
        "speed_vs_baseline": round(rows["thresher_baseline"]["seconds"] / rows["thresher"]["seconds"], 3),
    }
    if "datatrove" in rows:
        found["speedup_vs_datatrove"] = round(rows["datatrove"]["seconds"] / rows["thresher"]["seconds"], 2)
        found["rensa_speedup_vs_datatrove"] = round(rows["datatrove"]["seconds"] / rows["thresher_rensa"]["seconds"], 2)
    for name in rows:
        if name != "datatrove":
            shutil.rmtree(WORK / f"reference-{name}", ignore_errors=True)
    return found


def labels_of(out: Path) -> tuple[dict, dict[str, str]]:
    """The final cluster of each document in a cluster, as dedup_bench scores it."""
    labels: dict[str, str] = {}
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["shards"] + manifest["rejects"]:
        with pa.memory_map(str(out / entry["path"])) as source:
            table = pa.ipc.open_stream(source).read_all()
        if "dup_cluster" in table.column_names:
            for doc, cluster in zip(table.column("id").to_pylist(), table.column("dup_cluster").to_pylist()):
                if cluster is not None:
                    labels[doc] = cluster
    return manifest, labels


# --------------------------------------------------------------------------------------------
# Plot


def estimated_mb(row: dict, label: str) -> float:
    """The figure of one line of the run's `--plan` estimate, in MB ("memory per worker: ~615.0 MB")."""
    line = next(line for line in row["estimate"] if line.startswith(label))
    value, unit = re.search(r"~([0-9.]+) (MB|GB)", line).groups()
    return float(value) * (1024 if unit == "GB" else 1)


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(results.get("sizes", {}).values(), key=lambda r: r["documents"])
    if not rows:
        return
    sizes = [r["documents"] / 1e6 for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(sizes, [r["microseconds_per_document"] for r in rows], "o-", color="#1f77b4")
    left.set_xscale("log")
    left.set_xlabel("documents (millions)")
    left.set_ylabel("wall µs per document (2 workers)")
    left.set_ylim(bottom=0)
    left.set_title("time per document")
    processes = (
        ("driver", "driver_peak_rss_mb", "memory on the driver", "o", "#d62728"),
        ("largest worker", "worker_peak_rss_mb", "memory per worker", "s", "#2ca02c"),
    )
    for label, measured, estimate_line, marker, color in processes:
        right.plot(sizes, [r[measured] for r in rows], f"{marker}-", label=label, color=color)
        # The run's own --plan estimate beside the measurement (an upper bound: 50% duplicates assumed).
        estimated = [estimated_mb(r, estimate_line) for r in rows]
        right.plot(sizes, estimated, f"{marker}--", label=f"{label}, estimate", color=color, alpha=0.5)
    right.axhline(1536, color="#d62728", linestyle=":", linewidth=1, label="1.5 GB")
    right.set_xscale("log")
    right.set_xlabel("documents (millions)")
    right.set_ylabel("peak RSS (MB)")
    right.set_ylim(bottom=0)
    right.set_title("peak memory")
    right.legend(loc="upper left", fontsize=8)
    for axis in (left, right):
        axis.set_xticks(sizes, [f"{s:g}" for s in sizes])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)
    print(f"wrote {PLOT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="", help="comma-separated document counts, e.g. 1000000,4000000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partition-docs", type=int, default=PARTITION_DOCS, help="documents per partition")
    parser.add_argument("--costs", action="store_true", help="measure per-document memory costs (one partition)")
    parser.add_argument("--reference", action="store_true", help="the 71 MB corpus rows")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="the commit whose speed is 'today'")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep output folders")
    parser.add_argument("--clean", action="store_true", help="delete the corpora when done")
    parser.add_argument("--plot", action="store_true", help="draw docs/img/scaling.png from the results")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.setdefault("sizes", {})
    results["machine"] = {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "disk_free_gb": round(shutil.disk_usage(REPO).free / 2**30, 1),
    }
    results["workers"] = args.workers
    if args.sizes:
        pool = sentence_pool(WORK)
        results["sentence_pool"] = len(pool)
        for size in (int(s) for s in args.sizes.split(",")):
            row = scale_row(size, args.workers, pool, args.keep, args.partition_docs)
            row["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            results["sizes"][str(size)] = row
            print(
                f"{size:>10,} documents: {row['seconds']:8.1f} s ({row['microseconds_per_document']:.1f} µs/doc), "
                f"driver {row['driver_peak_rss_mb']} MB, worker {row['worker_peak_rss_mb']} MB, "
                f"F1 {row['scores']['f1']} (P {row['scores']['precision']} R {row['scores']['recall']}), "
                f"load {row['load_before'][0]} -> {row['load_after'][0]}",
                flush=True,
            )
            RESULTS.write_text(json.dumps(results, indent=1) + "\n")
            if args.clean:
                shutil.rmtree(WORK / f"corpus-{size}", ignore_errors=True)
                truth_path(size).unlink(missing_ok=True)
    if args.costs:
        results["costs"] = costs(args.workers)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if args.reference:
        results["reference"] = reference(args.workers, args.baseline_ref, args.skip_datatrove)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if args.plot or args.sizes:
        plot(results)


if __name__ == "__main__":
    main()
