"""Near-duplicate detection benchmark: Thresher's minhash_dedup vs datatrove's 4-stage MinHash.

    python benchmarks/dedup_bench.py [--workers 2] [--quick]

1. Corpus (built once under benchmarks/work/, deterministic): real documents from ../shared/data
   (web text, Wikipedia, Q&A, instructions, papers, LaTeX, dialogues) and two copies of the Python
   standard library source (this interpreter's and Debian's /usr/lib/python3.11: natural near-
   duplicates between versions), plus injected near-duplicates: copies of sampled documents with
   word edits (substitute / delete / insert) at known rates, 0.5% to 12%.
2. Ground truth: exact Jaccard similarity of word 5-gram sets (text NFKC-normalised, lowercased,
   Unicode punctuation and symbols replaced by spaces, split on whitespace; a document of 1-4
   words is one shingle), for *every* pair with J >= 0.8, found exactly with prefix filtering
   (Chaudhuri et al. 2006; Bayardo et al. 2007: two sets with J >= t share a token among the
   |x| - ceil(t|x|) + 1 rarest of each), each candidate verified exactly. Shingles are compared by
   their xxh3-64 hash (collision odds ~1e-12 on this corpus). Clusters = connected components.
3. Systems, same corpus, same number of workers, one after the other in this one invocation:
   Thresher `pipeline=near_dedup ~stages.exact_dedup` (MinHash only) and the full `near_dedup`
   recipe; datatrove MinhashDedupSignature / Buckets / Cluster / Filter with its defaults
   (5-grams, 14 bands x 8 rows, 64-bit hashes) on LocalPipelineExecutor, reading the same jsonl
   files and writing jsonl (uncompressed).
4. Metrics: documents per second, input MB per second, CPU seconds (user + system of the whole
   process tree: less sensitive than wall time to other work on a shared machine), peak RSS (sum over the process tree,
   sampled every 50 ms), and precision / recall / F1 of "this document has a near-duplicate"
   (it is in a cluster of size >= 2) against the ground truth; pair-level scores too (pairs of
   documents put in one cluster). Results: benchmarks/results/dedup.json.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import threading
import time
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import xxhash

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work" / "dedup"
RESULTS = HERE / "results" / "dedup.json"
SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
CORPUS_VERSION = "3"
FILES = 16
THRESHOLD = 0.8
NGRAM = 5
EDIT_RATES = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12)
INJECT_FRACTION = 0.07
TASK_MB = 8  # Thresher tasks of ~8 MB: ~10 tasks for 2 workers (datatrove: one task per file, 16)


# --------------------------------------------------------------------------------------------
# Corpus


def gz_lines(path: Path):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        yield from handle


def json_records(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    return data


TAG = re.compile(r"<[^>]+>")


def real_documents() -> list[tuple[str, str]]:
    """(source, text) of real documents, in a fixed order."""
    docs: list[tuple[str, str]] = []
    add = lambda source, text: docs.append((source, text)) if text and text.strip() else None  # noqa: E731
    for line in gz_lines(SHARED / "c4_sample/c4_demo.jsonl.gz"):
        add("c4", json.loads(line)["text"])
    for line in gz_lines(SHARED / "dclm_quality_labels/majority_data.jsonl.gz"):
        add("dclm", json.loads(line)["text"])
    for line in gz_lines(SHARED / "wikipedia_sample/wiki_demo.txt.gz"):
        add("wikipedia", line.strip())
    for name, path in (
        ("lima", "lima/lima.json.gz"),
        ("alpaca", "alpaca_en_demo/alpaca_en_demo.json.gz"),
        ("gsm8k", "alpacadatacleaned_extensions/gsm_8k_train.json.gz"),
        ("toolformer", "alpacadatacleaned_extensions/toolformer-dedupe-only-dataset.json.gz"),
    ):
        for record in json_records(SHARED / path):
            add(name, "\n\n".join(str(record.get(k) or "") for k in ("instruction", "input", "output")).strip())
    for site in ("stackexchange_beer", "stackexchange_cardano"):
        for line in gz_lines(SHARED / site / "Posts.xml.gz"):
            match = re.search(r' Body="([^"]*)"', line)
            if match:
                add(site, TAG.sub(" ", html.unescape(html.unescape(match.group(1)))))
    for line in gz_lines(SHARED / "hh_rlhf/harmless-base_test.jsonl.gz"):
        add("hh_rlhf", json.loads(line)["chosen"])
    for path in sorted((SHARED / "self_instruct").glob("*predictions.jsonl.gz")):
        for line in gz_lines(path):
            record = json.loads(line)
            add(
                "self_instruct",
                f"{record.get('prompt', '')} {record.get('completion') or record.get('response') or ''}",
            )
    for line in gz_lines(SHARED / "arxiv_metadata/arxiv-metadata-oai-snapshot.json.gz"):
        record = json.loads(line)
        add("arxiv", f"{record['title']}\n\n{record['abstract']}")
    with tarfile.open(SHARED / "unarxive_sample/unarXive_data_sample.tar.gz") as archive:
        for member in archive.getmembers():
            if member.name.endswith(".jsonl"):
                for line in archive.extractfile(member):
                    record = json.loads(line)
                    add("unarxive", "\n\n".join(p["text"] for p in record.get("body_text", [])))
    with tarfile.open(SHARED / "hott_book_latex/hott_book_tex.tar.gz") as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile():
                add("hott_tex", archive.extractfile(member).read().decode("utf-8", "replace"))
    for path in sorted((SHARED / "t0_templated_prompts").glob("*.tar.gz")):
        with tarfile.open(path) as archive:
            for member in sorted(archive.getmembers(), key=lambda m: m.name):
                if member.isfile() and member.name.endswith(".jsonl"):
                    for index, line in enumerate(archive.extractfile(member)):
                        if index % 4 == 0:  # a quarter of each template's rows
                            record = json.loads(line)
                            add("t0", record["prompt"] + record["completion"])
    article: list[str] = []
    for line in gz_lines(SHARED / "wikitext2/valid.txt.gz"):
        if re.match(r"^ = [^=].* = $", line) and article:
            add("wikitext", "".join(article))
            article = []
        article.append(line)
    add("wikitext", "".join(article))
    with zipfile.ZipFile(SHARED / "nltk_corpora/webtext.zip") as archive:
        for name in sorted(archive.namelist()):
            if name.endswith(".txt"):
                lines = archive.read(name).decode("utf-8", "replace").splitlines()
                for start in range(0, len(lines), 40):
                    add("webtext", "\n".join(lines[start : start + 40]))
    speeches = "".join(gz_lines(SHARED / "tinyshakespeare/input.txt.gz")).split("\n\n")
    for start in range(0, len(speeches), 25):
        add("shakespeare", "\n\n".join(speeches[start : start + 25]))
    for source, root in (("stdlib", Path(os.__file__).parent), ("stdlib_debian", Path("/usr/lib/python3.11"))):
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*.py") if not {"site-packages", "dist-packages"} & set(p.parts)):
                add(source, path.read_text(encoding="utf-8", errors="replace"))
    return docs


SPLIT = re.compile(r"(\s+)")


def edit(text: str, rate: float, vocabulary: list[str], rng: random.Random) -> str:
    """Substitute, delete or insert words at `rate` per word, keeping the whitespace layout."""
    parts = SPLIT.split(text)
    out = []
    for index, part in enumerate(parts):
        if index % 2 == 1 or not part or rng.random() >= rate:
            out.append(part)
            continue
        operation = rng.randrange(3)
        if operation == 0:
            out.append(rng.choice(vocabulary))
        elif operation == 1:
            out.append("")
        else:
            out.append(part + " " + rng.choice(vocabulary))
    return "".join(out)


def build_corpus(work: Path, quick: bool) -> Path:
    folder = work / "corpus"
    marker = folder / "VERSION"
    if marker.is_file() and marker.read_text() == CORPUS_VERSION + ("q" if quick else ""):
        return folder
    rng = random.Random(1234)
    docs = real_documents()
    if quick:
        docs = docs[::10]
    vocabulary = sorted({w for _, text in docs[:2000] for w in text.split() if w.isalpha() and len(w) < 12})
    rows = [
        {"id": f"{source}-{index:06d}", "text": text, "source": source, "origin": None, "edit_rate": None}
        for index, (source, text) in enumerate(docs)
    ]
    injected = []
    for row in rows:
        if len(row["text"].split()) >= 20 and rng.random() < INJECT_FRACTION:
            copies = rng.choices((1, 2, 3), weights=(7, 2, 1))[0]
            for copy in range(copies):
                rate = rng.choice(EDIT_RATES)
                injected.append(
                    {
                        "id": f"{row['id']}~{copy}",
                        "text": edit(row["text"], rate, vocabulary, rng),
                        "source": row["source"] + "+near",
                        "origin": row["id"],
                        "edit_rate": rate,
                    }
                )
    rows += injected
    rng.shuffle(rows)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jsonl"):
        old.unlink()
    per_file = -(-len(rows) // FILES)
    for index in range(FILES):
        with open(folder / f"part-{index:02d}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows[index * per_file : (index + 1) * per_file]:
                handle.write(json.dumps({"id": row["id"], "text": row["text"]}, ensure_ascii=False) + "\n")
    meta = {r["id"]: [r["source"], r["origin"], r["edit_rate"]] for r in rows}
    (work / "corpus_meta.json").write_text(json.dumps(meta))
    marker.write_text(CORPUS_VERSION + ("q" if quick else ""))
    (work / "ground_truth.json").unlink(missing_ok=True)
    return folder


def corpus_rows(folder: Path):
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                yield path.name, json.loads(line)


# --------------------------------------------------------------------------------------------
# Ground truth: exact Jaccard of word 5-grams, all pairs >= threshold (prefix filtering)

_PUNCT = None


def words(text: str) -> list[str]:
    global _PUNCT
    if _PUNCT is None:
        _PUNCT = {cp: " " for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] in "PS"}
    return unicodedata.normalize("NFKC", text).lower().translate(_PUNCT).split()


def shingle_set(text: str) -> np.ndarray:
    tokens = words(text)
    if not tokens:
        return np.zeros(0, np.uint64)
    grams = [tokens] if len(tokens) < NGRAM else [tokens[i : i + NGRAM] for i in range(len(tokens) - NGRAM + 1)]
    return np.unique(
        np.fromiter((xxhash.xxh3_64_intdigest(" ".join(g).encode()) for g in grams), np.uint64, len(grams))
    )


def ground_truth(work: Path, folder: Path) -> dict:
    cache = work / "ground_truth.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    started = time.time()
    ids, sets = [], []
    for _, row in corpus_rows(folder):
        ids.append(row["id"])
        sets.append(shingle_set(row["text"]))
    sizes = np.array([len(s) for s in sets])
    everything = np.concatenate(sets)
    tokens, counts = np.unique(everything, return_counts=True)
    rank_order = np.lexsort((tokens, counts))  # rarest first, ties by value
    rank = np.empty(len(tokens), np.int64)
    rank[rank_order] = np.arange(len(tokens))
    ranked = [np.sort(rank[np.searchsorted(tokens, s)]) for s in sets]
    postings: dict[int, list[int]] = {}
    for doc, tokens_of in enumerate(ranked):
        n = len(tokens_of)
        if n == 0:
            continue
        prefix = n - (4 * n + 4) // 5 + 1 if THRESHOLD == 0.8 else n - int(np.ceil(THRESHOLD * n)) + 1
        for token in tokens_of[:prefix].tolist():
            postings.setdefault(token, []).append(doc)
    candidates = set()
    for docs in postings.values():
        if len(docs) > 1:
            for a, b in itertools.combinations(docs, 2):
                small, large = sorted((sizes[a], sizes[b]))
                if small >= THRESHOLD * large:
                    candidates.add((a, b))
    edges = []
    for a, b in sorted(candidates):
        common = len(np.intersect1d(sets[a], sets[b], assume_unique=True))
        if common / (sizes[a] + sizes[b] - common) >= THRESHOLD:
            edges.append((a, b))
    parent = list(range(len(ids)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    labels = {}
    for doc in {d for edge in edges for d in edge}:
        labels[ids[doc]] = ids[find(doc)]
    truth = {
        "clusters": labels,
        "pairs_checked": len(candidates),
        "similar_pairs": len(edges),
        "documents": len(ids),
        "seconds": round(time.time() - started, 1),
    }
    cache.write_text(json.dumps(truth))
    return truth


# --------------------------------------------------------------------------------------------
# Running the systems


def anonymous_rss(pid: int) -> int:
    """A process's anonymous resident memory (RSS without memory-mapped files), from /proc."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Monitor:
    """Samples a process and its children every 50 ms: peak RSS of the whole tree, of the root
    process (Thresher's driver, which runs resolve) and of the largest child, and the largest
    anonymous RSS of any one process (RSS also counts pages of memory-mapped files, which are
    page cache the kernel can drop); CPU seconds (user + system) summed over every process seen
    (a process's last 50 ms may be missed)."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.total = self.root = self.child = self.anon = self.child_anon = 0
        self.cpu: dict[int, float] = {}
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        while self.running:
            try:
                children = self.process.children(recursive=True)
            except psutil.Error:
                children = []
            sizes = []
            for proc in [self.process] + children:
                try:
                    with proc.oneshot():
                        rss, times = proc.memory_info().rss, proc.cpu_times()
                except psutil.Error:
                    continue
                self.cpu[proc.pid] = times.user + times.system
                sizes.append(rss)
                anon = anonymous_rss(proc.pid)
                self.anon = max(self.anon, anon)
                if proc.pid == self.process.pid:
                    self.root = max(self.root, rss)
                else:
                    self.child = max(self.child, rss)
                    self.child_anon = max(self.child_anon, anon)
            self.total = max(self.total, sum(sizes))
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.thread.join()


def timed(command: list[str], log: Path, repo: Path = REPO) -> dict:
    """Run `command` from `repo` (a checkout: what `curate` imports); its time, CPU and peak memory."""
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    started = time.time()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)
        monitor = Monitor(process.pid)
        code = process.wait()
        monitor.stop()
    seconds = time.time() - started
    if code != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed (exit {code}); see {log}")
    mb = lambda n: round(n / 2**20, 1)  # noqa: E731
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(sum(monitor.cpu.values()), 2),
        "peak_rss_mb": mb(monitor.total),
        "peak_rss_main_process_mb": mb(monitor.root),
        "peak_rss_largest_child_mb": mb(monitor.child),
        "peak_anonymous_rss_one_process_mb": mb(monitor.anon),
        "peak_anonymous_rss_largest_child_mb": mb(monitor.child_anon),
    }


def run_thresher(folder: Path, out: Path, workers: int, overrides: list[str]) -> dict:
    command = [
        sys.executable,
        "-m",
        "curate.cli",
        "curate",
        "pipeline=near_dedup",
        f"input.paths=[{folder}]",
        f"output.dir={out}",
        f"executor.workers={workers}",
        "executor.progress=false",
        "output.overwrite=true",
        "output.report=false",
        f"executor.task_mb={TASK_MB}",
        *overrides,
    ]
    result = timed(command, out.with_suffix(".log"))
    manifest = json.loads((out / "manifest.json").read_text())
    labels: dict[str, str] = {}
    exact_of: dict[str, str] = {}
    near_of: dict[str, str] = {}

    def read(paths):
        for path in paths:
            with pa.memory_map(str(out / path)) as source:
                yield pa.ipc.open_stream(source).read_all()

    for table in itertools.chain(
        read(s["path"] for s in manifest["shards"]), read(s["path"] for s in manifest["rejects"])
    ):
        names = table.column_names
        ids = table.column("id").to_pylist()
        if "exact_cluster" in names:
            for doc, cluster in zip(ids, table.column("exact_cluster").to_pylist()):
                if cluster is not None:
                    exact_of[doc] = cluster
        if "dup_cluster" in names:
            for doc, cluster in zip(ids, table.column("dup_cluster").to_pylist()):
                if cluster is not None:
                    near_of[doc] = cluster
    for doc in set(exact_of) | set(near_of):
        representative = exact_of.get(doc, doc)
        labels[doc] = near_of.get(representative, representative)
    stage = {s["name"]: s for s in manifest["stages"]}
    result["removed"] = manifest["dropped"]
    result["details"] = {
        k: v for k, v in stage.get("minhash_dedup", {}).get("details", {}).items() if k not in ("documents_by_source",)
    }
    result["passes"] = manifest["timings"]["passes"]
    return result, labels


DATATROVE_SCRIPT = r"""
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                             MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
import datatrove.utils.hashes.xxhash as dt_xxhash
import xxhash

# datatrove 0.10.1 passes str to xxhash, which xxhash >= 4 refuses; hash the UTF-8 bytes, as
# xxhash < 4 did for str (the same values datatrove was designed with).
dt_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)
dt_xxhash.xxhash32 = lambda data: xxhash.xxh32_intdigest(data.encode() if isinstance(data, str) else data)

def main():
    corpus, work, workers, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    config = MinhashConfig()
    reader = lambda: JsonlReader(corpus, glob_pattern="*.jsonl", compression=None)
    common = dict(workers=workers, skip_completed=False)
    LocalPipelineExecutor([reader(), MinhashDedupSignature(f"{work}/signatures", config=config)],
                          tasks=files, logging_dir=f"{work}/logs/1", **common).run()
    LocalPipelineExecutor([MinhashDedupBuckets(f"{work}/signatures", f"{work}/buckets", config=config)],
                          tasks=config.num_buckets, logging_dir=f"{work}/logs/2", **common).run()
    LocalPipelineExecutor([MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=config, save_cluster_id=True)],
                          tasks=1, logging_dir=f"{work}/logs/3", **common).run()
    LocalPipelineExecutor([reader(), MinhashDedupFilter(f"{work}/remove",
                                                        exclusion_writer=JsonlWriter(f"{work}/removed", compression=None)),
                           JsonlWriter(f"{work}/output", compression=None)],
                          tasks=files, logging_dir=f"{work}/logs/4", **common).run()


if __name__ == "__main__":  # datatrove's workers re-import this file
    main()
"""


def run_datatrove(folder: Path, out: Path, workers: int) -> dict:
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    script = out / "run_datatrove.py"
    script.write_text(DATATROVE_SCRIPT)
    result = timed(
        [sys.executable, str(script), str(folder), str(out), str(workers), str(FILES)], out.with_suffix(".log")
    )
    # Rank r read file r (one file per task); its .clusters file holds (doc index, cluster id) pairs.
    files = sorted(folder.glob("*.jsonl"))
    labels = {}
    removed = 0
    for rank, path in enumerate(files):
        with open(path, encoding="utf-8") as handle:
            ids = [json.loads(line)["id"] for line in handle]
        clusters = out / "remove" / f"{rank:06d}.clusters"
        if clusters.is_file():
            pairs = np.frombuffer(clusters.read_bytes(), dtype="<u4").reshape(-1, 2)
            for doc, cluster in pairs.tolist():
                labels[ids[doc]] = f"c{cluster}"
        remove = out / "remove" / f"{rank:06d}.remove"
        removed += remove.stat().st_size // 4 if remove.is_file() else 0
    result["removed"] = removed
    return result, labels


# --------------------------------------------------------------------------------------------
# Scores


def scores(predicted: dict[str, str], truth: dict[str, str]) -> dict:
    """Document-level (in a cluster of size >= 2 or not) and pair-level precision / recall / F1."""

    def sized(labels):
        counts: dict[str, int] = {}
        for label in labels.values():
            counts[label] = counts.get(label, 0) + 1
        return {doc for doc, label in labels.items() if counts[label] > 1}, counts

    predicted_docs, predicted_sizes = sized(predicted)
    true_docs, true_sizes = sized(truth)
    tp = len(predicted_docs & true_docs)

    def prf(tp, predicted, actual):
        precision = tp / predicted if predicted else 1.0
        recall = tp / actual if actual else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}

    pairs = lambda sizes: sum(n * (n - 1) // 2 for n in sizes.values())  # noqa: E731
    both: dict[tuple[str, str], int] = {}
    for doc in predicted_docs & true_docs:
        key = (predicted[doc], truth[doc])
        both[key] = both.get(key, 0) + 1
    pair_tp = sum(n * (n - 1) // 2 for n in both.values())
    return {
        "documents": {
            **prf(tp, len(predicted_docs), len(true_docs)),
            "predicted": len(predicted_docs),
            "actual": len(true_docs),
        },
        "pairs": {
            **prf(pair_tp, pairs(predicted_sizes), pairs(true_sizes)),
            "predicted": pairs(predicted_sizes),
            "actual": pairs(true_sizes),
        },
    }


def recall_by_edit_rate(predicted: dict[str, str], truth: dict[str, str], meta: dict) -> dict:
    """Of injected copies that are true near-duplicates of their origin, the share found, per edit rate."""
    found: dict[float, list[int]] = {}
    for doc, (_, origin, rate) in meta.items():
        if origin is None or doc not in truth or truth.get(origin) != truth[doc]:
            continue
        hit = doc in predicted and predicted.get(origin) == predicted[doc]
        found.setdefault(rate, [0, 0])
        found[rate][0] += hit
        found[rate][1] += 1
    return {str(rate): {"found": f, "true_near_duplicates": n} for rate, (f, n) in sorted(found.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a tenth of the corpus (for a smoke run)")
    parser.add_argument("--skip-datatrove", action="store_true")
    args = parser.parse_args()
    work = WORK / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    folder = build_corpus(work, args.quick)
    meta = json.loads((work / "corpus_meta.json").read_text())
    truth = ground_truth(work, folder)
    input_bytes = sum(p.stat().st_size for p in folder.glob("*.jsonl"))
    text_bytes = sum(len(row["text"].encode()) for _, row in corpus_rows(folder))
    documents = len(meta)
    print(
        f"corpus: {documents} documents, {text_bytes / 1e6:.1f} MB of text ({input_bytes / 1e6:.1f} MB jsonl); "
        f"ground truth: {len(truth['clusters'])} documents in clusters, {truth['similar_pairs']} pairs >= {THRESHOLD}"
    )

    def report(name, result, labels):
        result.update(scores(labels, truth["clusters"]))
        result["recall_by_edit_rate"] = recall_by_edit_rate(labels, truth["clusters"], meta)
        result["docs_per_second"] = round(documents / result["seconds"], 1)
        result["mb_per_second"] = round(text_bytes / 1e6 / result["seconds"], 2)
        print(
            f"{name:>22}: {result['seconds']:7.2f} s ({result['cpu_seconds']:7.2f} CPU s)  "
            f"{result['docs_per_second']:8.1f} docs/s  "
            f"{result['mb_per_second']:6.2f} MB/s  peak {result['peak_rss_mb']:7.1f} MB  "
            f"F1 {result['documents']['f1']:.4f} (P {result['documents']['precision']:.4f} "
            f"R {result['documents']['recall']:.4f})  pair F1 {result['pairs']['f1']:.4f}"
        )
        return result

    systems = {}
    load_before = os.getloadavg()
    systems["thresher_minhash"] = report(
        "thresher minhash_dedup",
        *run_thresher(folder, work / "thresher_minhash", args.workers, ["~stages.exact_dedup"]),
    )
    if not args.skip_datatrove:
        systems["datatrove_minhash"] = report(
            "datatrove minhash", *run_datatrove(folder, work / "datatrove", args.workers)
        )
    systems["thresher_near_dedup"] = report(
        "thresher near_dedup", *run_thresher(folder, work / "thresher_near_dedup", args.workers, [])
    )
    # Memory against corpus size: the same recipe on a quarter of the files.
    quarter = work / "corpus_quarter"
    quarter.mkdir(exist_ok=True)
    files = sorted(folder.glob("*.jsonl"))
    for path in files[: FILES // 4]:
        if not (quarter / path.name).exists():
            (quarter / path.name).symlink_to(path)
    quarter_result, _ = run_thresher(quarter, work / "thresher_quarter", args.workers, ["~stages.exact_dedup"])
    quarter_docs = sum(1 for _ in corpus_rows(quarter))
    quarter_mb = sum(len(row["text"].encode()) for _, row in corpus_rows(quarter)) / 1e6
    memory = {
        "quarter": {
            "documents": quarter_docs,
            "text_mb": round(quarter_mb, 2),
            **{
                k: quarter_result[k]
                for k in (
                    "seconds",
                    "peak_rss_mb",
                    "peak_rss_main_process_mb",
                    "peak_rss_largest_child_mb",
                    "peak_anonymous_rss_one_process_mb",
                )
            },
        },
        "full": {
            "documents": documents,
            "text_mb": round(text_bytes / 1e6, 2),
            **{
                k: systems["thresher_minhash"][k]
                for k in (
                    "seconds",
                    "peak_rss_mb",
                    "peak_rss_main_process_mb",
                    "peak_rss_largest_child_mb",
                    "peak_anonymous_rss_one_process_mb",
                )
            },
        },
    }
    print(
        "memory (MB), quarter -> full corpus: "
        + ", ".join(
            f"{key} {memory['quarter'][key]} -> {memory['full'][key]}"
            for key in memory["full"]
            if key.startswith("peak")
        )
    )
    load_after = os.getloadavg()
    results = {
        "benchmark": "near-duplicate detection, word 5-gram Jaccard >= 0.8",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in load_after],
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        },
        "workers": args.workers,
        "corpus": {
            "documents": documents,
            "text_mb": round(text_bytes / 1e6, 2),
            "jsonl_mb": round(input_bytes / 1e6, 2),
            "files": FILES,
            "injected": sum(1 for v in meta.values() if v[1] is not None),
            "edit_rates": list(EDIT_RATES),
            "quick": args.quick,
            "sha256": hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.jsonl")))).hexdigest()[:16],
        },
        "ground_truth": {k: v for k, v in truth.items() if k != "clusters"}
        | {"documents_in_clusters": len(truth["clusters"])},
        "systems": systems,
        "memory_scaling": memory,
    }
    if "datatrove_minhash" in systems:
        results["speedup_vs_datatrove"] = round(
            systems["datatrove_minhash"]["seconds"] / systems["thresher_minhash"]["seconds"], 2
        )
        results["cpu_ratio_vs_datatrove"] = round(
            systems["datatrove_minhash"]["cpu_seconds"] / systems["thresher_minhash"]["cpu_seconds"], 2
        )
        print(
            f"speed-up of thresher minhash_dedup over datatrove: {results['speedup_vs_datatrove']}x wall time, "
            f"{results['cpu_ratio_vs_datatrove']}x CPU time"
        )
    if not args.quick and not args.skip_datatrove:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    else:
        print(json.dumps(results["systems"], indent=1)[:3000])


if __name__ == "__main__":
    main()
