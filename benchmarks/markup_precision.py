"""Precision and recall of science_markup's free-text detectors, and reference parsing rates,
on the real shared files.

    python benchmarks/markup_precision.py

Negatives (real text holding no SMILES or biological sequence): unarXive paragraphs and formula
LaTeX, the HoTT book's LaTeX, arXiv abstracts, C4 and Wikipedia samples, Python standard library
source. Every detection there is a false positive. Positives: every real SMILES of the shared
SMILES files, every protein of the FASTA files and the DNA of the GenBank records, each put into
a sentence ("The compound X was synthesised."), where a detection of exactly X is a true positive.
Writes benchmarks/results/markup.json.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sysconfig
import tarfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")


def negatives() -> dict[str, list[str]]:
    corpora: dict[str, list[str]] = {
        "unarxive": [],
        "hott_latex": [],
        "arxiv_abstracts": [],
        "c4": [],
        "wikipedia": [],
        "python_stdlib": [],
    }
    with tarfile.open(SHARED / "unarxive_sample" / "unarXive_data_sample.tar.gz") as archive:
        for line in archive.extractfile("unarXive_data_sample/arXiv_src_2212_086.jsonl"):
            paper = json.loads(line)
            corpora["unarxive"] += [p["text"] for p in paper["body_text"]]
            corpora["unarxive"] += [str(r.get("latex", "")) for r in paper["ref_entries"].values()]
    with tarfile.open(SHARED / "hott_book_latex" / "hott_book_tex.tar.gz") as archive:
        corpora["hott_latex"] = [
            archive.extractfile(m).read().decode() for m in archive.getmembers() if m.name.endswith(".tex")
        ]
    with gzip.open(SHARED / "arxiv_metadata" / "arxiv-metadata-oai-snapshot.json.gz", "rt") as handle:
        corpora["arxiv_abstracts"] = [json.loads(line)["abstract"] for line in handle]
    with gzip.open(SHARED / "c4_sample" / "c4_demo.jsonl.gz", "rt") as handle:
        corpora["c4"] = [json.loads(line)["text"] for line in handle]
    with gzip.open(SHARED / "wikipedia_sample" / "wiki_demo.txt.gz", "rt") as handle:
        corpora["wikipedia"] = handle.read().splitlines()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    corpora["python_stdlib"] = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(stdlib.glob("*.py"))]
    return corpora


def positives() -> dict[str, list[str]]:
    molecules: list[str] = []
    with gzip.open(SHARED / "smiles_rdkit" / "znp.50k.smi.gz", "rt") as handle:
        molecules += [line.split()[0] for line in handle]
    with gzip.open(SHARED / "smiles_rdkit" / "compounds.txt.gz", "rt") as handle:
        molecules += [row["CANONICAL_SMILES"] for row in csv.DictReader(handle, delimiter="\t")]
    for name in ("regression", "classification", "spectra"):
        with gzip.open(SHARED / "smiles_chemprop" / f"{name}.csv.gz", "rt") as handle:
            molecules += [row["smiles"] for row in csv.DictReader(handle)]
    proteins: list[str] = []
    for name in ("proteins_mmseqs2/QUERY.fasta.gz", "proteins_esm/P62593.fasta.gz"):
        with gzip.open(SHARED / name, "rt") as handle:
            proteins += [line.strip() for line in handle if not line.startswith(">")]
    import warnings

    from Bio import BiopythonParserWarning, SeqIO

    warnings.simplefilter("ignore", BiopythonParserWarning)

    dna: list[str] = []
    with tarfile.open(SHARED / "biopython_seqfiles" / "genbank_swissprot_fasta.tar.gz") as archive:
        for member in archive.getmembers():
            if member.name.endswith((".gb", ".gbk")):
                try:
                    for record in SeqIO.parse(io.StringIO(archive.extractfile(member).read().decode()), "genbank"):
                        if record.annotations.get("molecule_type", "").upper().endswith("DNA"):
                            dna.append(str(record.seq)[:2000])
                except Exception:  # the archive holds deliberately broken records
                    continue
    return {"smiles": molecules, "protein": proteins, "dna": [d for d in dna if d]}


def main() -> None:
    from curate.markup.citations import parse_bibtex, parse_reference
    from curate.markup.detect import detect

    started, load = time.time(), [round(x, 2) for x in os.getloadavg()]
    result: dict = {
        "benchmark": "markup_precision",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": load,
        "negatives": {},
        "positives": {},
    }
    false_positives = Counter()
    for name, texts in negatives().items():
        counts, changed = Counter(), []
        for text in texts:
            if detect(text, ["smiles", "sequences"], {}, counts) != text:
                changed.append(text[:200])
        false_positives.update(counts)
        result["negatives"][name] = {
            "documents": len(texts),
            "mb": round(sum(len(t.encode()) for t in texts) / 1e6, 2),
            "false_positives": dict(counts),
            "examples": changed[:3],
        }
    templates = {
        "smiles": ("The compound {} was synthesised (yield 80%).", "SMILES]{}[END_", "smiles"),
        "protein": ("The sequence is {}\n", "[START_AMINO]{}[END_AMINO]", "sequences"),
        "dna": ("Primer: {}.", "[START_DNA]{}[END_DNA]", "sequences"),
    }
    for name, items in positives().items():
        sentence, expected, detector = templates[name]
        found = wrong = 0
        for item in items:
            counts = Counter()
            text = detect(sentence.format(item), [detector], {}, counts)
            if expected.format(item) in text:
                found += 1
            elif counts:
                wrong += 1  # something detected, but not exactly the item
        span = "smiles_spans" if name == "smiles" else "amino_spans" if name == "protein" else "dna_spans"
        fp = false_positives.get(span, 0)  # detections of this kind in the negative corpora
        result["positives"][name] = {
            "items": len(items),
            "detected_exactly": found,
            "detected_wrongly": wrong,
            "false_positives_in_negatives": fp,
            "recall": round(found / max(1, len(items)), 4),
            "precision": round(found / max(1, found + wrong + fp), 4),
        }
    with tarfile.open(SHARED / "unarxive_sample" / "unarXive_data_sample.tar.gz") as archive:
        entries = [
            entry["bib_entry_raw"]
            for line in archive.extractfile("unarXive_data_sample/arXiv_src_2212_086.jsonl")
            for entry in json.loads(line)["bib_entries"].values()
        ]
    with tarfile.open(SHARED / "hott_book_latex" / "hott_book_tex.tar.gz") as archive:
        bib = archive.extractfile("hott_book/references.bib").read().decode()
        tex = "".join(archive.extractfile(m).read().decode() for m in archive.getmembers() if m.name.endswith(".tex"))
    cites = Counter()
    detect(tex, ["citations"], parse_bibtex(bib), cites)
    parsed = sum(parse_reference(e) is not None for e in entries)
    result["references"] = {
        "unarxive_bib_entries": len(entries),
        "parsed_title_and_author": parsed,
        "parse_rate": round(parsed / len(entries), 4),
        "hott_bibtex_entries": bib.count("\n@"),
        "hott_entries_with_title_and_author": len(parse_bibtex(bib)),
        "hott_cite_keys_resolved": cites["citations"],
        "hott_cite_keys_unresolved": cites["citations_unresolved"],
    }
    result["seconds"] = round(time.time() - started, 1)
    out = REPO / "benchmarks" / "results" / "markup.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
