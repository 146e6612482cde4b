"""Scientific formats: FASTA, GenBank, SwissProt and SMILES tables.

Each yields records whose `text` is the sequence or the SMILES string, with `record_type`
('sequence' or 'molecule') and the record's annotations as other fields (they land in `meta`),
so `science_markup` can render them into Galactica-style documents. A bad record (unparsable,
no sequence, characters outside the alphabet, malformed SMILES) is a `Problem` with its position:
the file goes on. GenBank and SwissProt are parsed by Biopython, one record at a time.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from curate.markup import sequences, smiles
from curate.readers.items import Item, Problem, decode_utf8, raw_lines

if TYPE_CHECKING:
    from Bio.SeqRecord import SeqRecord

# Sequence type implied by a file extension (NCBI's .fna/.ffn/.faa, Biopython's .nu/.pro).
EXTENSION_HINTS = {".fna": "dna", ".ffn": "dna", ".nu": "dna", ".faa": "protein", ".pro": "protein"}


def lines(stream: io.BufferedIOBase, label: str) -> Iterator[tuple[int, str] | Problem]:
    """(line number, text) of each line; a line that is not UTF-8 is a Problem."""
    for entry in raw_lines(stream, label):
        if isinstance(entry, Problem):
            yield entry
            return
        number, raw = entry
        try:
            yield number, decode_utf8(raw)
        except ValueError as error:
            yield Problem(number, label, str(error), raw)


def extension_hint(label: str) -> str | None:
    name = label.lower()
    for suffix in (".gz", ".zst"):
        name = name.removesuffix(suffix)
    return next((kind for ext, kind in EXTENSION_HINTS.items() if name.endswith(ext)), None)


def sequence_record(
    position: int,
    label: str,
    seq_id: str | None,
    description: str,
    sequence: str,
    hint: str | None,
    source_format: str,
    raw: bytes,
    **annotations,
) -> Item | Problem:
    if not sequence:
        return Problem(position, label, "record has no sequence", raw, "sequence")
    kind = sequences.classify(sequence, hint)
    if kind is None:
        where = sequences.first_foreign(sequence, hint or "protein")
        char = f" {where[1]!r} at residue {where[0] + 1}" if where else ""
        return Problem(
            position, label, f"sequence has a character outside the DNA/RNA/protein alphabets{char}", raw, "sequence"
        )
    if kind == "protein":
        sequence = sequence.upper()
    record = {
        "id": seq_id,
        "text": sequence,
        "record_type": "sequence",
        "alphabet": kind,
        "description": description,
        "format": source_format,
    }
    record.update({k: v for k, v in annotations.items() if v})
    return Item(position, record, label, raw)


def uniprot_fields(description: str) -> dict[str, str]:
    """Organism and gene from a UniProt FASTA header ('... OS=Homo sapiens OX=9606 GN=CD6 PE=4')."""
    fields = {}
    for key, name in (("OS", "organism"), ("GN", "gene")):
        marker = f" {key}="
        if marker in description:
            rest = description.split(marker, 1)[1]
            cut = min(
                (rest.find(f" {k}=") for k in ("OS", "OX", "GN", "PE", "SV", "Split") if f" {k}=" in rest),
                default=len(rest),
            )
            fields[name] = rest[:cut].strip()
    return fields


def fasta(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """FASTA (and Pearson's ';' comments): one record per '>' header; position = header line."""
    hint = extension_hint(label)
    header: str | None = None
    start = 0
    chunks: list[str] = []
    raw: list[str] = []
    broken: Problem | None = None

    def emit():
        if broken is not None:  # a line of the record was unreadable: the whole record is bad
            return broken
        seq_id, _, description = header.partition(" ")
        text = "".join(chunks)
        data = ("\n".join(raw)).encode()
        if not seq_id:
            return Problem(start, label, "header has no identifier", data, "id")
        return sequence_record(
            start, label, seq_id, description.strip(), text, hint, "fasta", data, **uniprot_fields(description)
        )

    for entry in lines(stream, label):
        if isinstance(entry, Problem):
            if header is None:
                yield entry
            else:
                broken = broken or entry
            continue
        number, line = entry
        line = line.rstrip("\r\n")
        if line.startswith(">"):
            if header is not None:
                yield emit()
            header, start, chunks, raw, broken = line[1:].strip(), number, [], [line], None
        elif line.startswith(";") or not line.strip():
            continue
        elif header is None:
            yield Problem(number, label, "sequence data before the first '>' header", line.encode())
        else:
            chunks.append("".join(line.split()))
            raw.append(line)
    if header is not None:
        yield emit()


def flat_records(stream: io.BufferedIOBase, label: str) -> Iterator[tuple[int, str] | Problem]:
    """(first line, text) of each record of a '//'-terminated flat file (GenBank, SwissProt)."""
    start = 0
    block: list[str] = []
    broken: Problem | None = None
    for entry in lines(stream, label):
        if isinstance(entry, Problem):  # the record holding an unreadable line is bad as a whole
            broken = broken or entry
            continue
        number, line = entry
        if broken is not None:
            if line.rstrip() == "//":
                yield broken
                broken, block = None, []
            continue
        if not block:
            if not line.strip():
                continue
            start = number
        block.append(line)
        if line.rstrip() == "//":
            yield start, "".join(block)
            block = []
    if broken is not None:
        yield broken
    elif block and "".join(block).strip():
        yield start, "".join(block)  # no closing '//': Biopython decides whether it is complete


def biopython_records(
    stream: io.BufferedIOBase, label: str, biopython_format: str
) -> Iterator[tuple[int, SeqRecord, bytes] | Problem]:
    from Bio import BiopythonParserWarning, SeqIO

    for entry in flat_records(stream, label):
        if isinstance(entry, Problem):
            yield entry
            continue
        start, text = entry
        raw = text.encode()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BiopythonParserWarning)
                record = SeqIO.read(io.StringIO(text), biopython_format)
        except Exception as error:  # Biopython raises ValueError and friends for malformed records
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            yield Problem(start, label, f"malformed {biopython_format} record: {message}", raw)
            continue
        yield start, record, raw


def sequence_text(record) -> str | None:
    from Bio.Seq import UndefinedSequenceError

    try:
        return str(record.seq)
    except UndefinedSequenceError:
        return None


def genbank(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """GenBank / GenPept flat files: one record per LOCUS ... //, parsed by Biopython."""
    for entry in biopython_records(stream, label, "genbank"):
        if isinstance(entry, Problem):
            yield entry
            continue
        start, record, raw = entry
        annotations: dict[str, Any] = record.annotations  # Biopython types values str | int; keywords are lists
        molecule = str(annotations.get("molecule_type", "")).lower()
        hint = "protein" if molecule == "protein" else "rna" if "rna" in molecule else "dna" if molecule else None
        products = sorted({q for f in record.features if f.type == "CDS" for q in f.qualifiers.get("product", [])})
        yield sequence_record(
            start,
            label,
            record.id,
            record.description,
            sequence_text(record) or "",
            hint,
            "genbank",
            raw,
            organism=annotations.get("organism"),
            keywords=[k for k in annotations.get("keywords", []) if k],
            products=products[:50],
        )


def swissprot(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """UniProt/SwissProt flat files (ID ... //), parsed by Biopython; protein sequences."""
    for entry in biopython_records(stream, label, "swiss"):
        if isinstance(entry, Problem):
            yield entry
            continue
        start, record, raw = entry
        annotations: dict[str, Any] = record.annotations  # Biopython types values str | int; keywords are lists
        comments = annotations.get("comment", "")
        function = (
            next((c.split(":", 1)[1].strip() for c in comments.split("\n") if c.startswith("FUNCTION:")), None)
            if isinstance(comments, str)
            else None
        )
        yield sequence_record(
            start,
            label,
            record.id,
            record.description,
            sequence_text(record) or "",
            "protein",
            "swissprot",
            raw,
            organism=annotations.get("organism"),
            keywords=annotations.get("keywords", []),
            gene=annotations.get("gene_name"),
            function=function,
        )


SMILES_HEADERS = ("smiles", "canonical_smiles", "isomeric_smiles", "smiles_string")


def smiles_table(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """SMILES files: '.smi' lines ('SMILES name'), or CSV/TSV tables with a SMILES column.

    The delimiter is a tab or comma if the first line has one, else whitespace. A first line
    with a column named like 'smiles' is the header and names the SMILES column (other columns
    become fields); without one, the first column is SMILES and the second, if any, its name.
    """
    delimiter, header, column = None, None, 0
    for entry in lines(stream, label):
        if isinstance(entry, Problem):
            yield entry
            continue
        number, line = entry
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        if delimiter is None:
            delimiter = "\t" if "\t" in text else "," if "," in text else " "
            names = split_row(text, delimiter)
            lowered = [n.strip().lower() for n in names]
            found = [i for i, n in enumerate(lowered) if n in SMILES_HEADERS] or [
                i for i, n in enumerate(lowered) if "smiles" in n
            ]
            if found:
                header, column = [n.strip() for n in names], found[0]
                continue
        fields = split_row(text, delimiter)
        if column >= len(fields) or not fields[column].strip():
            yield Problem(number, label, "row has no SMILES", line.encode(), "smiles")
            continue
        value = fields[column].strip()
        reason = smiles.check(value)
        if reason:
            yield Problem(number, label, f"malformed SMILES ({reason}): {value[:80]}", line.encode(), "smiles")
            continue
        record = {"text": value, "record_type": "molecule", "isomeric": smiles.is_isomeric(value), "format": "smiles"}
        if header:
            record.update(
                {name: field for i, (name, field) in enumerate(zip(header, fields)) if i != column and field != ""}
            )
        elif len(fields) > 1:
            record["name"] = fields[1].strip()
            if len(fields) > 2:
                record["fields"] = [f.strip() for f in fields[2:]]
        yield Item(number, record, label, line.encode())


def split_row(text: str, delimiter: str) -> list[str]:
    if delimiter == " ":
        return text.split()
    return next(csv.reader([text], delimiter=delimiter))
