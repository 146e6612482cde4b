"""Biological sequences: telling DNA, RNA and protein apart, and checking their characters."""

from __future__ import annotations

from curate.tokenization.markers import AMINO, DNA, SPAN_ALPHABETS

NUCLEOTIDE_CHARS = frozenset(SPAN_ALPHABETS[DNA])
AMINO_CHARS = frozenset(SPAN_ALPHABETS[AMINO])
# Characters of real nucleotide data: ACGT/U and N; the other IUPAC codes are rare ambiguity marks.
CORE_NUCLEOTIDES = frozenset("ACGTUNacgtun-")


def classify(sequence: str, hint: str | None = None) -> str | None:
    """'dna', 'rna' or 'protein' for a sequence, or None if its characters fit neither.

    `hint` ('dna', 'rna' or 'protein', from the file format or extension) wins when the
    characters allow it. Otherwise a sequence is nucleotides when all its characters are IUPAC
    nucleotide codes and at least 90% are A, C, G, T, U or N (a common rule of thumb),
    else protein if all are amino-acid codes.
    """
    if not sequence:
        return None
    chars = set(sequence)
    nucleotide = chars <= NUCLEOTIDE_CHARS
    protein = set(sequence.upper()) <= AMINO_CHARS
    if hint in ("dna", "rna") and nucleotide:
        return "rna" if "U" in sequence.upper() and "T" not in sequence.upper() else "dna"
    if hint == "protein" and protein:
        return "protein"
    if nucleotide and sum(sequence.count(c) for c in CORE_NUCLEOTIDES) >= 0.9 * len(sequence):
        upper = sequence.upper()
        return "rna" if "U" in upper and "T" not in upper else "dna"
    if protein:
        return "protein"
    return None


def first_foreign(sequence: str, kind: str) -> tuple[int, str] | None:
    """(position, character) of the first character not allowed in a sequence of `kind`."""
    allowed = AMINO_CHARS if kind == "protein" else NUCLEOTIDE_CHARS
    for index, char in enumerate(sequence.upper() if kind == "protein" else sequence):
        if char not in allowed:
            return index, char
    return None
