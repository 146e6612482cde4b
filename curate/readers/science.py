"""Scientific formats: FASTA, FASTQ, GenBank, EMBL, SwissProt and SMILES tables.

Each yields records whose `text` is the sequence or the SMILES string, with `record_type`
('sequence' or 'molecule') and the record's annotations as other fields (they land in `meta`),
so `science_markup` can render them into Galactica-style documents. A bad record (unparsable,
no sequence, characters outside the alphabet, malformed SMILES) is a `Problem` with its position:
the file goes on. GenBank, EMBL, SwissProt and FASTQ records are parsed by Biopython, one record
at a time.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    stream: io.BufferedIOBase,
    label: str,
    biopython_format: str,
    split: Callable[[io.BufferedIOBase, str], Iterator[tuple[int, str] | Problem]] | None = None,
) -> Iterator[tuple[int, SeqRecord, bytes] | Problem]:
    """Each record's (first line, Biopython's parse, raw bytes), the records cut by `split`
    ('//'-terminated flat files by default); a record Biopython refuses is a Problem."""
    from Bio import BiopythonParserWarning, SeqIO

    for entry in (split or flat_records)(stream, label):
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
    yield from annotated_records(stream, label, "genbank")


def embl(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """EMBL flat files (ENA): one record per ID ... //, parsed by Biopython; as GenBank records."""
    yield from annotated_records(stream, label, "embl")


def annotated_records(stream: io.BufferedIOBase, label: str, biopython_format: str) -> Iterator[Item | Problem]:
    """GenBank or EMBL records: the sequence, with organism, keywords and CDS products."""
    for entry in biopython_records(stream, label, biopython_format):
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
            biopython_format,
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


def fastq(stream: io.BufferedIOBase, label: str, **_) -> Iterator[Item | Problem]:
    """FASTQ reads: '@' header, sequence lines, '+' line, quality lines (as long as the sequence),
    each record checked by Biopython (Sanger / Illumina 1.8+ qualities, PHRED+33). A record is a
    read with `quality` (the quality string) and `mean_quality` (mean PHRED score); a record that
    is cut, has no '+' line, or a quality of another length or out of range is a Problem at its
    header line, and reading goes on at the next '@' header."""
    for entry in biopython_records(stream, label, "fastq", split=fastq_records):
        if isinstance(entry, Problem):
            yield entry
            continue
        start, record, raw = entry
        quality = record.letter_annotations["phred_quality"]
        yield sequence_record(
            start,
            label,
            record.id,
            record.description.partition(" ")[2],
            str(record.seq),
            "dna",
            "fastq",
            raw,
            quality="".join(chr(q + 33) for q in quality),
            mean_quality=round(sum(quality) / len(quality), 2) if quality else None,
        )


def fastq_records(stream: io.BufferedIOBase, label: str) -> Iterator[tuple[int, str] | Problem]:
    """(header line, text) of each FASTQ record: the quality part ends when it is as long as the
    sequence, so a quality line starting with '@' is not taken for a header."""
    block: list[str] = []
    start = sequence = quality = 0
    part = "none"  # none | sequence | quality
    for entry in lines(stream, label):
        if isinstance(entry, Problem):
            yield entry
            if block:
                yield Problem(start, label, "record with an unreadable line", "".join(block).encode())
            block, part = [], "none"
            continue
        number, line = entry
        stripped = line.strip()
        if part == "none" or (part == "sequence" and stripped.startswith("@")):
            if part == "sequence":  # a header before the '+' line: the record before has none
                yield Problem(start, label, "record has no '+' line", "".join(block).encode(), "quality")
            if not stripped:
                continue
            if not stripped.startswith("@"):
                yield Problem(number, label, "line outside a record (a record starts with '@')", line.encode())
                continue
            block, start, sequence, quality, part = [line], number, 0, 0, "sequence"
        elif part == "sequence":
            block.append(line)
            if stripped.startswith("+"):
                part = "quality"
            else:
                sequence += len(stripped)
        else:
            block.append(line)
            quality += len(stripped)
        if part == "quality" and quality >= sequence:
            yield start, "".join(block) if block[-1].endswith("\n") else "".join(block) + "\n"
            block, part = [], "none"
    if block:
        yield Problem(start, label, "record cut short (end of file)", "".join(block).encode(), "quality")


SMILES_HEADERS = ("smiles", "canonical_smiles", "isomeric_smiles", "smiles_string")
DELIMITERS = {"tab": "\t", "comma": ",", "whitespace": " "}  # input.table.delimiter's names


@dataclass(frozen=True)
class TableLayout:
    """How a SMILES table is laid out (`input.table`); None: found from the file.

    Columns are named by a header name or a 0-based index. Without a SMILES column given, it is
    the one whose header is named like `smiles`, else the first whose first value is a
    well-formed SMILES. Without a header, the value column is the first other one holding a
    non-integer number (a QED score, a solubility) and the name column the first other one left
    (an identifier, integers included). A first row is a header when it names the
    SMILES column (by `smiles` or like 'smiles'), or when `header` is true.
    """

    smiles: str | None = None
    name: str | None = None
    value: str | None = None
    header: bool | None = None
    comment: str = "#"  # lines starting with it are skipped ("": none)
    delimiter: str | None = None  # tab, comma, whitespace or one character; None: from the first data line


@dataclass
class TableColumns:
    """A file's layout as read from its first data line: delimiter, header names, column indices."""

    delimiter: str
    names: list[str] | None
    smiles: int | None
    name: int | None
    value: int | None
    problem: str | None = None  # why the SMILES column cannot be found (every row is then quarantined)


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_measure(text: str) -> bool:
    """A number that is not an integer ('0.44', '-1e-3'): a measured value, where an integer is
    more likely an identifier (a PubChem CID)."""
    return is_number(text) and not text.lstrip("+-").isdigit()


def column_index(spec: str, names: list[str] | None) -> int | str:
    """The index a column option names (a 0-based index, or a header name), or why it names none."""
    if spec.isdigit():
        return int(spec)
    lowered = [n.strip().lower() for n in names or []]
    if spec.strip().lower() in lowered:
        return lowered.index(spec.strip().lower())
    if names is None:
        return f"no column named '{spec}' (the file has no header row naming it)"
    return f"no column named '{spec}' (columns: {', '.join(names)})"


def table_columns(text: str, layout: TableLayout) -> tuple[TableColumns, bool]:
    """The layout of a table from its first data line, and whether that line is a header."""
    delimiter = DELIMITERS.get(layout.delimiter or "", layout.delimiter or "")
    delimiter = delimiter or ("\t" if "\t" in text else "," if "," in text else " ")
    fields = [f.strip() for f in split_row(text, delimiter)]
    lowered = [f.lower() for f in fields]
    wanted = layout.smiles.strip().lower() if layout.smiles and not layout.smiles.isdigit() else None
    named = [i for i, n in enumerate(lowered) if n == wanted or (wanted is None and n in SMILES_HEADERS)]
    named = named or [i for i, n in enumerate(lowered) if wanted is None and "smiles" in n]
    header = layout.header if layout.header is not None else bool(named)
    names = fields if header else None
    chosen: dict[str, int | None] = {"smiles": None, "name": None, "value": None}
    problem = None
    for key in chosen:
        spec = getattr(layout, key)
        if spec is None:
            continue
        found = column_index(str(spec), names)
        if isinstance(found, str):
            problem = problem or f"input.table.{key}_column: {found}"
        else:
            chosen[key] = found
    if layout.smiles is None:
        if header:
            chosen["smiles"] = named[0] if named else None
            problem = None if named else f"no column named like 'smiles' (columns: {', '.join(fields)})"
        else:  # the first column holding a well-formed SMILES (not a number: '1' is a ring bond)
            chosen["smiles"] = next(
                (i for i, f in enumerate(fields) if f and not is_number(f) and smiles.check(f) is None), 0
            )
    if not header and chosen["smiles"] is not None:
        others = [i for i in range(len(fields)) if i != chosen["smiles"]]
        if layout.value is None:
            chosen["value"] = next((i for i in others if is_measure(fields[i])), None)
        if layout.name is None:
            chosen["name"] = next((i for i in others if fields[i] and i != chosen["value"]), None)
    columns = TableColumns(delimiter, names, chosen["smiles"], chosen["name"], chosen["value"], problem)
    return columns, header


def smiles_table(
    stream: io.BufferedIOBase, label: str, table: TableLayout | None = None, **_
) -> Iterator[Item | Problem]:
    """SMILES files: '.smi' lines ('SMILES name', or 'id SMILES'), or CSV/TSV tables with a SMILES
    column (`input.format=smiles`), laid out as `table` says or as found (see `TableLayout`).

    Comment lines and blank lines are skipped. With a header, the other columns become fields by
    their names; without one, the name and value columns become `name` and `value` (a number when
    it reads as one) and any others `fields`. A row without a well-formed SMILES is a Problem.
    """
    layout = table or TableLayout()
    columns: TableColumns | None = None
    for entry in lines(stream, label):
        if isinstance(entry, Problem):
            yield entry
            continue
        number, line = entry
        text = line.rstrip("\r\n")
        if not text.strip() or (layout.comment and text.lstrip().startswith(layout.comment)):
            continue
        if columns is None:
            columns, header = table_columns(text, layout)
            if header:
                continue
        if columns.problem or columns.smiles is None:
            yield Problem(number, label, columns.problem or "no SMILES column", line.encode(), "smiles")
            continue
        fields = split_row(text, columns.delimiter)
        if columns.smiles >= len(fields) or not fields[columns.smiles].strip():
            yield Problem(number, label, "row has no SMILES", line.encode(), "smiles")
            continue
        value = fields[columns.smiles].strip()
        reason = smiles.check(value)
        if reason:
            yield Problem(number, label, f"malformed SMILES ({reason}): '{value[:80]}'", line.encode(), "smiles")
            continue
        yield Item(number, table_record(value, fields, columns), label, line.encode())


def table_record(value: str, fields: list[str], columns: TableColumns) -> dict[str, Any]:
    """A molecule's record: its SMILES, and the row's other columns by name (or name/value/fields)."""
    record: dict[str, Any] = {
        "text": value,
        "record_type": "molecule",
        "isomeric": smiles.is_isomeric(value),
        "format": "smiles",
    }
    used = {columns.smiles}
    for key, index in (("name", columns.name), ("value", columns.value)):
        if index is not None and index < len(fields) and fields[index].strip():
            cell = fields[index].strip()
            record[key] = float(cell) if key == "value" and is_number(cell) else cell
            used.add(index)
    if columns.names is not None:
        record.update(
            {name: field for i, (name, field) in enumerate(zip(columns.names, fields)) if i not in used and field != ""}
        )
    else:
        rest = [f.strip() for i, f in enumerate(fields) if i not in used]
        if rest:
            record["fields"] = rest
    return record


def split_row(text: str, delimiter: str) -> list[str]:
    if delimiter == " ":
        return text.split()
    return next(csv.reader([text], delimiter=delimiter))
