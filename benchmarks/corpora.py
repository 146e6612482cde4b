"""The real documents the quality benchmarks run on, from ../shared/data, by kind.

- `web`: c4_sample, dolma_test_data (its two JSON-lines files), dclm_quality_labels;
- `wiki`: wikipedia_sample (30 long articles);
- `qa`: every post of the Stack Exchange beer and Cardano dumps (title and body, the HTML as
  Thresher's converter renders it: Markdown with code blocks);
- `paper`: the unarXive sample's full texts (paragraphs) and the HoTT book's LaTeX sources;
- `code`: the Python files of code_near_duplicates (requests at four tags, pip's and setuptools'
  vendored libraries).

`web` and `wiki` are what the throughput benchmark first ran on; the others are long, line-heavy
and code-like documents, the ones where Gopher's repetition statistics cost the most.
"""

from __future__ import annotations

import gzip
import json
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" if (REPO.parent / "shared" / "data").is_dir() else Path("/work/shared/data")
WEB_FILES = {
    "c4_sample": ["c4_sample/c4_demo.jsonl.gz"],
    "dolma_test_data": ["dolma_test_data/cc_en_head-0091.jsonl.gz", "dolma_test_data/provided_documents_000.json.gz"],
    "dclm_quality_labels": ["dclm_quality_labels/majority_data.jsonl.gz"],
}
KINDS = ("web", "wiki", "qa", "paper", "code")


def web() -> Iterator[dict]:
    for source, files in WEB_FILES.items():
        for name in files:
            with gzip.open(DATA / name, "rt", encoding="utf-8") as handle:
                for position, line in enumerate(handle):
                    yield {"id": f"{name}:{position}", "source": source, "text": json.loads(line)["text"]}


def wiki() -> Iterator[dict]:
    name = "wikipedia_sample/wiki_demo.txt.gz"
    with gzip.open(DATA / name, "rt", encoding="utf-8") as handle:
        for position, line in enumerate(handle):
            if line.strip():
                yield {"id": f"{name}:{position}", "source": "wikipedia_sample", "text": line.rstrip("\n")}


def qa() -> Iterator[dict]:
    from defusedxml.ElementTree import iterparse

    sys.path.insert(0, str(REPO))
    from curate.converters.html import html_to_text

    for site in ("stackexchange_beer", "stackexchange_cardano"):
        name = f"{site}/Posts.xml.gz"
        with gzip.open(DATA / name) as handle:
            for _, element in iterparse(handle):
                if element.tag == "row" and (element.get("Body") or "").strip():
                    title = element.get("Title")
                    body = html_to_text(element.get("Body"))
                    text = f"{title}\n\n{body}" if title else body
                    yield {"id": f"{name}:{element.get('Id')}", "source": site, "text": text}
                element.clear()


def members(archive: Path, suffix: str) -> Iterator[tuple[str, str]]:
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(suffix):
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file
                yield member.name, handle.read().decode("utf-8", errors="replace")


def paper() -> Iterator[dict]:
    archive = DATA / "unarxive_sample/unarXive_data_sample.tar.gz"
    for _, content in members(archive, ".jsonl"):
        for line in content.splitlines():
            record = json.loads(line)
            text = "\n\n".join(p["text"] for p in record["body_text"])
            yield {"id": f"unarxive:{record['paper_id']}", "source": "unarxive_sample", "text": text}
    for name, content in members(DATA / "hott_book_latex/hott_book_tex.tar.gz", ".tex"):
        yield {"id": f"hott:{name}", "source": "hott_book_latex", "text": content}


def code() -> Iterator[dict]:
    for archive in sorted((DATA / "code_near_duplicates").glob("*.tar.gz")):
        for name, content in members(archive, ".py"):
            if content.strip():
                yield {"id": f"{archive.name}:{name}", "source": "code_near_duplicates", "text": content}


def documents(kinds: tuple[str, ...] = KINDS) -> list[dict]:
    """Every document of the given kinds, each with its `kind`, in a fixed order."""
    readers = {"web": web, "wiki": wiki, "qa": qa, "paper": paper, "code": code}
    return [{**doc, "kind": kind} for kind in kinds for doc in readers[kind]()]
