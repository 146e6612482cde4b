"""Conservative detection of citations, SMILES and sequences in free text.

Each detector rewrites the spans it is sure of into Galactica's markup and leaves everything
else alone: a false positive puts chemistry tokens into a maths paper, a miss only loses the
markup. Their precision is measured on the real shared files (benchmarks/markup_precision.py).
Text already inside a markup span is never touched.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from curate.markup import smiles as smiles_syntax
from curate.markup.citations import cite
from curate.markup.sequences import classify
from curate.markup.templates import wrap_sequence, wrap_smiles

MARKED = re.compile(r"\[START_(REF|DNA|AMINO|SMILES|I_SMILES)\].*?\[END_\1\]", re.DOTALL)

LATEX_CITE = re.compile(
    r"\\(?:cite|citep|citet|citealp|citealt|parencite|textcite|autocite)\*?"
    r"(?:\[[^\]]*\]){0,2}\{([^}]+)\}"
)
# A SMILES candidate: a whitespace-delimited run of SMILES characters, at least 8 long.
SMILES_CANDIDATE = re.compile(r"(?<![^\s(\"'“])([A-Za-z0-9@+\-\[\]()=#$:/\\.%*]{8,})(?=[\s,;:)\"'”]|\.(?:\s|$)|$)")
SMILES_STRUCTURE = re.compile(r"[=#()\[\]]|[A-Za-z\]][0-9]")
DNA_RUN = re.compile(r"(?<![A-Za-z0-9])([ACGTU]{24,})(?![A-Za-z0-9])")
PROTEIN_RUN = re.compile(r"(?<![A-Za-z0-9])([ACDEFGHIKLMNPQRSTVWY]{30,})(?![A-Za-z0-9])")


def outside_markup(text: str, rewrite: Callable[[str], str]) -> str:
    """Apply `rewrite` to the parts of `text` outside existing markup spans."""
    if "[START_" not in text:
        return rewrite(text)
    parts, position = [], 0
    for match in MARKED.finditer(text):
        parts.append(rewrite(text[position : match.start()]))
        parts.append(match.group())
        position = match.end()
    parts.append(rewrite(text[position:]))
    return "".join(parts)


def latex_citations(text: str, bibliography: dict[str, tuple[str, str]], counts: Counter) -> str:
    """`\\cite{a,b}` -> one [START_REF] title, author[END_REF] per key, when every key is in the bibliography."""

    def replace(match: re.Match) -> str:
        keys = [k.strip() for k in match.group(1).split(",") if k.strip()]
        if keys and all(k in bibliography for k in keys):
            counts["citations"] += len(keys)
            return "".join(cite(*bibliography[k]) for k in keys)
        counts["citations_unresolved"] += len(keys)
        return match.group()

    return LATEX_CITE.sub(replace, text)


def is_smiles_span(candidate: str) -> bool:
    """Well-formed SMILES that looks like a molecule, not a word, a formula or an identifier:
    at least 4 atoms, some structure (bond, branch, ring closure or bracket atom), and no run of
    three or more letters that is not aromatic atoms ('ccc', 'cnc') or an element pair."""
    if smiles_syntax.check(candidate) is not None or not SMILES_STRUCTURE.search(candidate):
        return False
    tokens = smiles_syntax.tokens(candidate) or []
    if smiles_syntax.atom_count(tokens) < 4:
        return False
    letters = re.findall(r"[A-Za-z]{3,}", re.sub(r"\[[^\]]*\]", "", candidate))
    return all(re.fullmatch(r"(?:Cl|Br|[BCNOSPFI]|[cnops])+", run) for run in letters)


def smiles_spans(text: str, counts: Counter) -> str:
    def replace(match: re.Match) -> str:
        candidate = match.group(1)
        if candidate.endswith(".") and smiles_syntax.check(candidate) is not None:
            candidate = candidate[:-1]
        if not is_smiles_span(candidate):
            return match.group()
        counts["smiles_spans"] += 1
        return wrap_smiles(candidate) + match.group(1)[len(candidate) :]

    return SMILES_CANDIDATE.sub(replace, text)


def sequence_spans(text: str, counts: Counter) -> str:
    """Runs of 24+ nucleotides or 30+ amino-acid letters (upper case, at least 8 different
    residues for proteins) become DNA/amino spans."""

    def nucleotides(match: re.Match) -> str:
        run = match.group(1)
        if len(set(run)) < 3:
            return run
        counts["dna_spans"] += 1
        return wrap_sequence(run, classify(run, "dna") or "dna")

    def protein(match: re.Match) -> str:
        run = match.group(1)
        if len(set(run)) < 8 or classify(run) != "protein":
            return run
        counts["amino_spans"] += 1
        return wrap_sequence(run, "protein")

    return PROTEIN_RUN.sub(protein, DNA_RUN.sub(nucleotides, text))


DETECTORS = ("citations", "smiles", "sequences")


def detect(text: str, detectors: list[str], bibliography: dict[str, tuple[str, str]], counts: Counter) -> str:
    """Run the chosen detectors (in a fixed order) outside existing markup."""
    if "citations" in detectors:
        text = latex_citations(text, bibliography, counts)
    if "sequences" in detectors:
        text = outside_markup(text, lambda part: sequence_spans(part, counts))
    if "smiles" in detectors:
        text = outside_markup(text, lambda part: smiles_spans(part, counts))
    return text
