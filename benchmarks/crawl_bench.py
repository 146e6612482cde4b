"""Common Crawl ingestion: extraction quality, and Thresher's `fineweb` recipe against datatrove's
WarcReader + Trafilatura + the same filters, on real WARC files, 2 workers, in one invocation.

1. Extraction quality on ../shared/data/article_extraction (91 real pages with a hand-made
   ground truth): the Article Extraction Benchmark's metric (word 4-shingles, precision and recall
   averaged over pages, F1 from the averages), for each backend of Thresher's `extract` stage and
   for the same library called directly with the same options; pages per second on one core.
2. Throughput and agreement: the WARC files of ../shared/data (commoncrawl_whirlwind,
   dolma_test_data) plus a larger crawl written here with warcio's writer (Common Crawl's layout:
   request, response and metadata records, one gzip member each, redirects and images among them)
   from real HTML: the article-extraction pages, the pages of the shared WARC files, and the Q&A
   pages of two Stack Exchange sites (each question with its answers, the posts' real HTML bodies,
   in a page template), and the mdBook pages of the Rust documentation a rustup toolchain installs
   (where the machine has one: this project's machines do). Both systems run URL filter (datatrove's lists: UT1 domains and URLs, its
   word lists) -> extraction -> Gopher repetition -> Gopher quality -> C4 (FineWeb's options) ->
   FineWeb -> PII, 2 workers, one task per file. Language ID is left out of the comparison
   (datatrove's model is downloaded from the Hub at run time; this machine is offline) and so is
   MinHash (datatrove runs it as four separate jobs; benchmarks/dedup_bench.py compares it);
   Thresher's whole `fineweb` recipe, with both, runs as a fourth row. Reported: documents/s
   (HTML pages with status 200), MB/s of WARC files, CPU seconds, peak RSS of the process tree,
   and the agreement of the kept documents (by WARC record id, and their texts).

    python benchmarks/crawl_bench.py [--out benchmarks/results/crawl_bench.json]

Needs datatrove's extras for WARC and URL filtering: pip install -e .[bench]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import re
import shutil
import statistics
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

from quality_bench import load, monitored

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "crawl"
DATA = REPO.parent / "shared" / "data" if (REPO.parent / "shared" / "data").is_dir() else Path("/work/shared/data")
SHARED_WARCS = [
    DATA / "commoncrawl_whirlwind" / "whirlwind.warc.gz",
    DATA / "dolma_test_data" / "sample-0000.warc.gz",
    DATA / "dolma_test_data" / "sample-0001.warc.gz",
]
FILES = 8

DATATROVE_SCRIPT = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
    GopherRepetitionFilter, URLFilter)
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.writers import JsonlWriter

corpus, out, logs, tasks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
LocalPipelineExecutor(
    pipeline=[
        WarcReader(corpus, glob_pattern="*.warc.gz"),
        URLFilter(),
        Trafilatura(favour_precision=True),
        GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(), PIIFormatter(),
        JsonlWriter(out, compression=None),
    ],
    tasks=tasks, workers=2, logging_dir=logs,
).run()
"""


# --- the extraction metric (the Article Extraction Benchmark's, as its README describes it) -----


def shingles(text: str, n: int = 4) -> Counter:
    words = re.findall(r"\w+", text or "")
    return Counter(tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1)) if words[i : i + n])


def page_scores(truth: str, predicted: str) -> tuple[float | None, float | None]:
    """(precision, recall) of one page over word 4-shingle multisets; None where undefined."""
    expected, found = shingles(truth), shingles(predicted)
    overlap = sum((expected & found).values())
    extra, missed = sum((found - expected).values()), sum((expected - found).values())
    if extra == missed == 0:
        return 1.0, 1.0
    precision = overlap / (overlap + extra) if overlap + extra else None
    recall = overlap / (overlap + missed) if overlap + missed else None
    return precision, recall


def f1_of(truths: list[str], predictions: list[str]) -> dict:
    scores = [page_scores(t, p) for t, p in zip(truths, predictions)]
    precision = statistics.mean(p for p, _ in scores if p is not None)
    recall = statistics.mean(r for _, r in scores if r is not None)
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4),
    }


def extraction_quality() -> dict:
    """F1 of Thresher's extract stage and of the library called directly, per backend."""
    import pyarrow as pa
    from trafilatura.meta import reset_caches

    from curate.stages.extract import Extract

    truth = json.loads((DATA / "article_extraction" / "ground-truth.json").read_text())
    keys = sorted(truth)
    pages = [
        gzip.decompress((DATA / "article_extraction" / "html" / f"{k}.html.gz").read_bytes()).decode() for k in keys
    ]
    truths = [truth[k].get("articleBody") or "" for k in keys]
    batch = pa.RecordBatch.from_pydict({"id": keys, "text": pages})
    results = {}
    for backend in ("trafilatura", "resiliparse"):
        stage = Extract(backend=backend)
        stage.setup()
        try:
            stage.start_task(0)
            started = time.process_time()
            result = stage.process(batch)
            cpu = time.process_time() - started
        finally:
            stage.teardown()
        texts = dict(zip(result.kept.column("id").to_pylist(), result.kept.column("text").to_pylist()))
        reset_caches()
        extract = stage.extractor()
        direct = [extract(page) or "" for page in pages]
        ours = f1_of(truths, [texts.get(k, "") for k in keys])
        theirs = f1_of(truths, direct)
        results[backend] = {
            "thresher": ours,
            "library": theirs,
            "f1_difference": round(abs(ours["f1"] - theirs["f1"]), 4),
            "pages_per_cpu_second": round(len(pages) / cpu, 1),
        }
        print(
            f"extraction {backend:12s} F1 {ours['f1']:.4f} (P {ours['precision']:.3f} R {ours['recall']:.3f}); "
            f"library directly {theirs['f1']:.4f}; {results[backend]['pages_per_cpu_second']} pages per CPU second"
        )
    return results


# --- the corpus --------------------------------------------------------------------------------


def shared_pages() -> list[tuple[str, bytes]]:
    """(url, HTML) of the HTML responses of the shared WARC files, read by Thresher's reader."""
    from curate.readers.formats import FORMATS
    from curate.readers.items import Item

    pages = []
    for path in SHARED_WARCS:
        with open(path, "rb") as handle:
            for item in FORMATS["warc"](io.BufferedReader(handle), path.name):
                if isinstance(item, Item):
                    pages.append((item.record["url"], item.record["text"].encode("utf-8")))
    return pages


def article_pages() -> list[tuple[str, bytes]]:
    truth = json.loads((DATA / "article_extraction" / "ground-truth.json").read_text())
    return [
        (truth[key]["url"], gzip.decompress((DATA / "article_extraction" / "html" / f"{key}.html.gz").read_bytes()))
        for key in sorted(truth)
    ]


QA_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title} - {site} Stack Exchange</title></head>
<body><header><nav><a href="/">{site}</a> <a href="/questions">Questions</a> <a href="/tags">Tags</a>
<a href="/users">Users</a> <a href="/unanswered">Unanswered</a></nav></header>
<div id="content"><h1 itemprop="name">{title}</h1>
<div class="question"><div class="s-prose">{question}</div><div class="post-taglist">{tags}</div></div>
<h2>{count} Answers</h2>{answers}</div>
<aside><h4>Related</h4><ul>{related}</ul></aside>
<footer>Site design / logo &copy; Stack Exchange Inc; user contributions licensed under CC BY-SA.</footer>
</body></html>"""


def qa_pages() -> list[tuple[str, bytes]]:
    """One page per Stack Exchange question: its title, body and answers (real HTML bodies)."""
    from defusedxml.ElementTree import iterparse

    pages = []
    for site in ("beer", "cardano"):
        questions, answers = {}, {}
        with gzip.open(DATA / f"stackexchange_{site}" / "Posts.xml.gz") as handle:
            for _, element in iterparse(handle):
                if element.tag == "row":
                    post = dict(element.attrib)
                    if post.get("PostTypeId") == "1":
                        questions[post["Id"]] = post
                    elif post.get("PostTypeId") == "2":
                        answers.setdefault(post.get("ParentId"), []).append(post)
                    element.clear()
        titles = [(i, q.get("Title", "")) for i, q in questions.items()]
        for number, (post_id, question) in enumerate(questions.items()):
            replies = answers.get(post_id, [])
            related = "".join(f'<li><a href="/questions/{i}">{t}</a></li>' for i, t in titles[number + 1 : number + 6])
            html = QA_PAGE.format(
                site=site,
                title=question.get("Title", ""),
                question=question.get("Body", ""),
                tags=question.get("Tags", ""),
                count=len(replies),
                answers="".join(
                    f'<div class="answer"><div class="s-prose">{a.get("Body", "")}</div></div>' for a in replies
                ),
                related=related,
            )
            pages.append((f"https://{site}.stackexchange.com/questions/{post_id}", html.encode("utf-8")))
    return pages


# mdBook documentation installed with a Rust toolchain (rustup): real prose pages with large
# navigation sidebars, when the machine has them (this project's machines do).
RUST_BOOKS = (
    "book",
    "rust-by-example",
    "reference",
    "nomicon",
    "cargo",
    "rustc",
    "edition-guide",
    "embedded-book",
    "error_codes",
    "unstable-book",
)


def rust_doc_pages() -> list[tuple[str, bytes]]:
    roots = sorted(Path.home().glob(".rustup/toolchains/stable-*/share/doc/rust/html"))
    if not roots:
        return []
    pages = []
    for book in RUST_BOOKS:
        for path in sorted((roots[0] / book).rglob("*.html")):
            html = path.read_bytes()
            if len(html) > 2048 and b"<main>" in html:  # content pages, not redirects or print-all pages
                pages.append((f"https://doc.rust-lang.org/{path.relative_to(roots[0])}", html))
    return [page for page in pages if not page[0].endswith("/print.html")]


def build_corpus() -> tuple[Path, dict]:
    """The larger crawl (written once, then reused) beside copies of the shared WARC files."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    folder = WORK / "warc"
    marker = WORK / "warc.json"
    if marker.is_file():
        return folder, json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shared = shared_pages()
    rust = rust_doc_pages()
    pages = article_pages() + shared + qa_pages() + rust
    random.Random(0).shuffle(pages)
    handles = [open(folder / f"crawl-{i:02d}.warc.gz", "wb") for i in range(FILES)]
    writers = [WARCWriter(handle, gzip=True) for handle in handles]
    counts = Counter()
    png = bytes(random.Random(1).getrandbits(8) for _ in range(20000))

    def record_id(number: int, kind: int) -> str:
        return f"<urn:uuid:{number:08d}-0000-4000-8000-{kind:012d}>"

    for number, (url, html) in enumerate(pages):
        writer = writers[number % FILES]
        date = f"2024-05-{1 + number % 28:02d}T{number % 24:02d}:00:00Z"
        request = StatusAndHeaders("GET / HTTP/1.1", [("Host", url.split("/")[2])], is_http_request=True)
        writer.write_record(
            writer.create_warc_record(
                url,
                "request",
                http_headers=request,
                warc_headers_dict={"WARC-Record-ID": record_id(number, 1), "WARC-Date": date},
            )
        )
        http = StatusAndHeaders(
            "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Server", "nginx")], protocol="HTTP/1.1"
        )
        writer.write_record(
            writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(html),
                http_headers=http,
                warc_headers_dict={"WARC-Record-ID": record_id(number, 2), "WARC-Date": date},
            )
        )
        counts["html_pages"] += 1
        counts["html_bytes"] += len(html)
        metadata = io.BytesIO(f"fetchTimeMs: {number % 997}\r\n".encode())
        writer.write_record(
            writer.create_warc_record(
                url,
                "metadata",
                payload=metadata,
                warc_content_type="application/warc-fields",
                warc_headers_dict={"WARC-Record-ID": record_id(number, 3), "WARC-Date": date},
            )
        )
        if number % 7 == 0:  # a redirect and an image, as a crawl has them
            moved = StatusAndHeaders(
                "301 Moved Permanently", [("Location", url + "/"), ("Content-Type", "text/html")], protocol="HTTP/1.1"
            )
            writer.write_record(
                writer.create_warc_record(
                    url + "?r=1",
                    "response",
                    payload=io.BytesIO(b"<html><body>Moved</body></html>"),
                    http_headers=moved,
                    warc_headers_dict={"WARC-Record-ID": record_id(number, 4), "WARC-Date": date},
                )
            )
            image = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(
                    url + "/logo.png",
                    "response",
                    payload=io.BytesIO(b"\x89PNG\r\n\x1a\n" + png),
                    http_headers=image,
                    warc_headers_dict={"WARC-Record-ID": record_id(number, 5), "WARC-Date": date},
                )
            )
            counts["other_responses"] += 2
    for handle in handles:
        handle.close()
    for path in SHARED_WARCS:
        shutil.copy(path, folder / f"shared-{path.name}")
    info = {
        "files": sorted(p.name for p in folder.iterdir()),
        "html_pages": counts["html_pages"] + len(shared),
        "html_mb": round((counts["html_bytes"] + sum(len(html) for _, html in shared)) / 1e6, 1),
        "warc_mb": round(sum(p.stat().st_size for p in folder.iterdir()) / 1e6, 1),
        "other_responses": counts["other_responses"],
        "built_from": [
            "article_extraction",
            "commoncrawl_whirlwind",
            "dolma_test_data",
            "stackexchange_beer",
            "stackexchange_cardano",
            f"Rust documentation, mdBook pages: {len(rust)}",
        ],
    }
    marker.write_text(json.dumps(info, indent=1))
    return folder, info


def url_lists() -> dict[str, Path]:
    """datatrove's URL-filter lists as files Thresher's url_filter reads (the same lists for both)."""
    from datatrove.utils._import_utils import ASSETS_PATH

    folder = WORK / "url_lists"
    if not (folder / "domains").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(Path(ASSETS_PATH) / "url_filterblacklistsv0_3_0.tar.gz") as archive:
            archive.extractall(folder, filter="data")
    assets = Path(ASSETS_PATH)
    return {
        "blocked_domains_files": folder / "domains",
        "blocked_urls_files": folder / "urls",
        "banned_words_files": assets / "banned_words.txt",
        "soft_banned_words_files": assets / "soft_banned_words.txt",
        "banned_subwords_files": assets / "banned_subwords.txt",
    }


# --- the runs ----------------------------------------------------------------------------------


def run_thresher(name: str, corpus: Path, *overrides: str) -> dict:
    out = WORK / f"{name}-out"
    shutil.rmtree(out, ignore_errors=True)
    lists = [f"stages.url_filter.{option}=[{path}]" for option, path in url_lists().items()]
    command = [
        sys.executable,
        "-m",
        "curate.cli",
        "curate",
        "pipeline=fineweb",
        f"input.paths=[{corpus}]",
        f"output.dir={out}",
        "executor.workers=2",
        "executor.task_mb=1",  # one file per task, as datatrove's tasks
        "executor.progress=false",
        *lists,
        *overrides,
    ]
    result = monitored(command, env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    manifest = json.loads((out / "manifest.json").read_text())
    result["kept"] = manifest["rows"]
    result["stages"] = {
        s["name"]: {"in": s["in"], "out": s["out"], "seconds": s["seconds"]} for s in manifest["stages"]
    }
    result["quarantined"] = manifest["quarantined"]
    result["documents"] = kept_documents_thresher(out)
    return result


def kept_documents_thresher(out: Path) -> dict[str, str]:
    from curate.arrow_io import read_table

    documents = {}
    for shard in sorted((out / "data").glob("*.arrow")):
        table = read_table(shard)
        documents.update(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))
    return documents


def run_datatrove(corpus: Path) -> dict:
    out, logs = WORK / "datatrove-out", WORK / "datatrove-logs"
    for folder in (out, logs):
        shutil.rmtree(folder, ignore_errors=True)
    tasks = len(list(corpus.glob("*.warc.gz")))
    result = monitored([sys.executable, "-c", DATATROVE_SCRIPT, str(corpus), str(out), str(logs), str(tasks)])
    documents = {}
    for path in sorted(out.rglob("*.jsonl")):
        for line in open(path, encoding="utf-8"):
            record = json.loads(line)
            documents[record["id"]] = record["text"]
    result["kept"] = len(documents)
    result["documents"] = documents
    return result


def agreement(ours: dict[str, str], theirs: dict[str, str]) -> dict:
    both = set(ours) & set(theirs)
    return {
        "kept_by_both": len(both),
        "only_thresher": len(set(ours) - both),
        "only_datatrove": len(set(theirs) - both),
        "jaccard": round(len(both) / len(set(ours) | set(theirs)), 4) if ours or theirs else 1.0,
        "identical_text": round(sum(ours[i] == theirs[i] for i in both) / len(both), 4) if both else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "crawl_bench.json"))
    parser.add_argument("--skip-quality", action="store_true", help="only the throughput runs")
    args = parser.parse_args()
    results: dict = {"cpus": os.cpu_count(), "workers": 2, "date": time.strftime("%Y-%m-%d %H:%M")}
    if not args.skip_quality:
        results["extraction"] = extraction_quality()
    corpus, info = build_corpus()
    results["corpus"] = info
    print(
        f"corpus: {info['html_pages']} HTML pages, {info['html_mb']} MB of HTML, {info['warc_mb']} MB of WARC ({corpus})"
    )
    same_filters = ("~stages.language", "~stages.minhash_dedup")
    runs = {
        "thresher_trafilatura": lambda: run_thresher("thresher-trafilatura", corpus, *same_filters),
        "thresher_resiliparse": lambda: run_thresher(
            "thresher-resiliparse", corpus, *same_filters, "stages.extract.backend=resiliparse"
        ),
        "datatrove": lambda: run_datatrove(corpus),
        "thresher_fineweb_recipe": lambda: run_thresher("thresher-fineweb", corpus),
    }
    documents = {}
    results["runs"] = {}
    for name, run in runs.items():
        load_before = load()
        result = run()
        documents[name] = result.pop("documents")
        result.pop("output_tail")
        result.update(
            load_before=load_before,
            load_after=load(),
            docs_per_second=round(info["html_pages"] / result["seconds"], 1),
            warc_mb_per_second=round(info["warc_mb"] / result["seconds"], 3),
        )
        results["runs"][name] = result
        print(
            f"{name:24s} {result['seconds']:7.1f} s {result['docs_per_second']:7.1f} docs/s "
            f"{result['warc_mb_per_second']:6.3f} MB/s cpu {result['cpu_seconds']:6.1f} s peak {result['peak_rss_mb']:6.0f} MB "
            f"kept {result['kept']:5d} load {load_before} -> {result['load_after']}"
        )
    base = results["runs"]["datatrove"]
    for name in ("thresher_trafilatura", "thresher_resiliparse"):
        run = results["runs"][name]
        run["speedup_wall"] = round(base["seconds"] / run["seconds"], 2)
        run["speedup_cpu"] = round(base["cpu_seconds"] / run["cpu_seconds"], 2)
        run["agreement_with_datatrove"] = agreement(documents[name], documents["datatrove"])
        print(
            f"{name}: {run['speedup_wall']}x datatrove's wall time, {run['speedup_cpu']}x its CPU time; agreement {run['agreement_with_datatrove']}"
        )
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
