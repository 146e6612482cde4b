"""Templates: structured records -> Galactica-style documents.

Each template takes a row's `text` and its `meta` (the record's other fields, as the readers
and the documents mapper leave them) and returns the document text, counting what it did.
Which template fits a row is told by `detect_template`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from curate.markup import smiles as smiles_syntax
from curate.markup.citations import cite, parse_reference
from curate.tokenization.markers import AMINO, DNA, I_SMILES, SMILES

UNARXIVE_MARKER = re.compile(r"\{\{(cite|formula|figure|table):([^}]+)\}\}")


def detect_template(meta: dict[str, Any]) -> str | None:
    """The template for a record: by the readers' `record_type`, or by the fields of known schemas."""
    record_type = meta.get("record_type")
    if record_type in ("sequence", "molecule"):
        return record_type
    if "body_text" in meta and "bib_entries" in meta:
        return "unarxive"
    if "authors_parsed" in meta or ("categories" in meta and "title" in meta and "authors" in meta):
        return "arxiv"
    return None


def wrap_sequence(sequence: str, alphabet: str) -> str:
    start, end = AMINO if alphabet == "protein" else DNA
    return f"{start}{sequence}{end}"


def wrap_smiles(value: str) -> str:
    start, end = I_SMILES if smiles_syntax.is_isomeric(value) else SMILES
    return f"{start}{value}{end}"


def field_lines(pairs: list[tuple[str, Any]]) -> list[str]:
    lines = []
    for name, value in pairs:
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value if v)
        if value not in (None, ""):
            lines.append(f"{name}: {value}")
    return lines


def render_sequence(text: str, meta: dict[str, Any], counts: Counter) -> str:
    """A protein or nucleotide record: its annotations, then the wrapped sequence."""
    alphabet = meta.get("alphabet", "protein")
    kind = {"protein": "Protein", "dna": "DNA", "rna": "RNA"}.get(alphabet, "Sequence")
    title = meta.get("description") or meta.get("id") or ""
    lines = [f"# {kind}: {title}".rstrip(": ")] if title else [f"# {kind}"]
    lines += field_lines(
        [
            ("Organism", meta.get("organism")),
            ("Gene", meta.get("gene")),
            ("Function", meta.get("function")),
            ("Keywords", meta.get("keywords")),
            ("Products", meta.get("products")),
        ]
    )
    counts["amino_spans" if alphabet == "protein" else "dna_spans"] += 1
    return "\n".join(lines) + f"\n\n{wrap_sequence(text, alphabet)}\n"


def render_molecule(text: str, meta: dict[str, Any], counts: Counter) -> str:
    """A molecule (SMILES table row): the wrapped SMILES, then the row's named properties."""
    counts["smiles_spans"] += 1
    skip = {"record_type", "isomeric", "format", "fields"}
    properties = [(k, v) for k, v in meta.items() if k not in skip and not isinstance(v, (dict, list))]
    lines = [wrap_smiles(text)] + field_lines(properties)
    return "\n".join(lines) + "\n"


def authors_text(meta: dict[str, Any]) -> str:
    return " ".join(str(meta.get("authors", "")).split())


def render_arxiv(text: str, meta: dict[str, Any], counts: Counter) -> str:
    """arXiv metadata (Kaggle snapshot schema): title, authors, categories, abstract (`text`)."""
    counts["papers"] += 1
    title = " ".join(str(meta.get("title", "")).split())
    lines = [f"# {title}", ""] if title else []
    lines += field_lines([("Authors", authors_text(meta)), ("Categories", meta.get("categories"))])
    return "\n".join(lines) + f"\n\n## Abstract\n\n{' '.join(text.split())}\n"


def render_unarxive(text: str, meta: dict[str, Any], counts: Counter, unparsed_refs: str = "raw") -> str:
    """An unarXive paper: title, abstract, sections; `{{cite:..}}` -> [START_REF] title, author[END_REF],
    `{{formula:..}}` -> $latex$, figures -> [IMAGE] with their caption, tables -> their caption."""
    counts["papers"] += 1
    metadata = meta.get("metadata") or {}
    bib = meta.get("bib_entries") or {}
    refs = meta.get("ref_entries") or {}

    def replace(match: re.Match) -> str:
        kind, key = match.group(1), match.group(2)
        if kind == "cite":
            raw = (bib.get(key) or {}).get("bib_entry_raw") or ""
            parsed = parse_reference(raw) if raw else None
            if parsed:
                counts["citations"] += 1
                return cite(*parsed)
            counts["citations_unparsed"] += 1
            return f"[START_REF] {' '.join(raw.split())[:300]}[END_REF]" if raw and unparsed_refs == "raw" else ""
        entry = refs.get(key) or {}
        if kind == "formula":
            counts["formulas"] += 1
            latex = " ".join(str(entry.get("latex", "")).split())
            return f"${latex}$" if latex else ""
        caption = str(entry.get("caption", ""))
        caption = "" if caption == "NO_CAPTION" else " ".join(caption.split())
        if kind == "figure":
            counts["figures"] += 1
            return f"\n[IMAGE]\n{caption}\n" if caption else "\n[IMAGE]\n"
        return f"\n{caption}\n" if caption else ""

    title = " ".join(str(metadata.get("title", "")).split())
    parts = [f"# {title}"] if title else []
    if text.strip():
        parts.append("## Abstract\n\n" + " ".join(text.split()))
    section = None
    for paragraph in meta.get("body_text") or []:
        name = paragraph.get("section")
        if name and name != section:
            number = paragraph.get("sec_number")
            parts.append(f"## {number + ' ' if number else ''}{name}")
            section = name
        body = UNARXIVE_MARKER.sub(replace, paragraph.get("text", ""))
        parts.append(re.sub(r"[ \t]+\n", "\n", body).strip())
    return "\n\n".join(p for p in parts if p) + "\n"


# Each renders (text, meta, counts); unarxive also takes `unparsed_refs`.
TEMPLATES: dict[str, Callable[..., str]] = {
    "sequence": render_sequence,
    "molecule": render_molecule,
    "arxiv": render_arxiv,
    "unarxive": render_unarxive,
}
