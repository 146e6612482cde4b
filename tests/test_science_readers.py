"""FASTA, GenBank, SwissProt and SMILES readers on the real shared files; bad records quarantined."""

from __future__ import annotations

import gzip
import json
import tarfile

import pytest

from curate.errors import ConfigError
from curate.markup import smiles
from tests.conftest import curate, read_dataset

PASS_THROUGH = ("pipeline=clean", "~stages.normalize", "~stages.length_filter")


def rows_by_format(out) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for row in read_dataset(out).to_pylist():
        meta = json.loads(row["meta"]) if row["meta"] else {}
        found.setdefault(meta.get("format", "other"), []).append({**row, "meta": meta})
    return found


def quarantined(out) -> list[dict]:
    table = read_dataset(out, "quarantine")
    return table.to_pylist() if table is not None else []


def test_fasta_real_files(shared_data, tmp_path):
    manifest = curate([shared_data / "proteins_esm", shared_data / "proteins_mmseqs2"], tmp_path / "out", *PASS_THROUGH)
    rows = rows_by_format(tmp_path / "out")["fasta"]
    assert len(rows) == 5397 + 500 and manifest.quarantined == 0
    esm = rows[0]
    assert esm["id"] == "0|beta-lactamase_P20P|1.581033423" and esm["text"].startswith(
        "MSIQHFRVALIPFFAAFCLPVFAHPETLVKVKDAEDQL"
    )
    assert esm["meta"]["alphabet"] == "protein" and esm["meta"]["record_type"] == "sequence"
    uniprot = rows[5397]
    assert uniprot["id"] == "tr|A7TBS3|A7TBS3_NEMVE"
    assert uniprot["meta"]["organism"] == "Nematostella vectensis" and uniprot["meta"]["gene"] == "v1g153959"
    assert uniprot["meta"]["description"].startswith("Predicted protein (Fragment)")


def test_biopython_archive_genbank_and_fasta_with_bad_records_quarantined(shared_data, tmp_path):
    out = tmp_path / "out"
    manifest = curate(shared_data / "biopython_seqfiles", out, *PASS_THROUGH)
    found = rows_by_format(out)
    genbank, fasta = found["genbank"], found["fasta"]
    assert {r["meta"]["alphabet"] for r in genbank} == {"dna", "protein"}
    cor6 = [r for r in genbank if r["id"] == "X55053.1"]
    assert cor6 and cor6[0]["meta"]["organism"] == "Arabidopsis thaliana" and set(cor6[0]["text"]) <= set("ACGT")
    protein = [r for r in genbank if r["id"] == "NP_001832.1"]
    assert (
        protein
        and protein[0]["meta"]["alphabet"] == "protein"
        and protein[0]["text"].startswith(
            "MEECWVTEIANGSKDGLDSNPMKDYMILSGPQKTAVAVLCTLLGLLSALENVAVLYLILSSHQLRRKPSYLFIGSLAGADFLASVVFACSFVNFHVFHGVDSKAVFLLKIGSVTMTFTASVGSLLLTAIDRYLCLRYPPSYKALLTRGRALVTLGIMWVLSALVSYLPLMGWTCCPRPCSELFPLIPNDYLLSWLLFIAFLFSGIIYTYGHVLWKAHQHVASLSGHQDRQVPGMARMRLDVRLAKTLGLVLAVLLICWFPVLALMAHSLATTLSDQVKKAFAFCSMLCLINSMVNPVIYALRSGEIRSSAHHCLAHWKKCVRGLGSEAKEEAPRSSVTETEADGKITPWPDSMDLESSHVRGRDGQ"[
                :30
            ]
        )
    )
    assert any(r["meta"]["alphabet"] == "dna" for r in fasta) and any(r["meta"]["alphabet"] == "protein" for r in fasta)
    bad = {(q["file"].split("/")[-1], q["position"]): q for q in quarantined(out)}
    assert "malformed genbank record" in bad[("no_origin_no_end.gb", 1)]["error"]
    assert "no sequence" in bad[("DS830848.gb", 1)]["error"]  # a CONTIG record without ORIGIN
    assert "before the first '>' header" in bad[("aster_pearson.pro", 1)]["error"]
    assert bad[("no_origin_no_end.gb", 1)]["raw"].startswith(b"LOCUS")
    # the file with a bad header line still gives its record
    assert any(r["id"] == "gi|3298468|dbj|BAA31520.1|" and "aster_pearson.pro" in str(r) for r in fasta) or any(
        r["meta"].get("description") == "SAMIPF" for r in fasta
    )
    assert manifest.rows_in == manifest.rows + manifest.quarantined


@pytest.fixture
def swissprot_files(shared_data, tmp_path):
    folder = tmp_path / "sprot"
    folder.mkdir()
    with tarfile.open(shared_data / "biopython_seqfiles" / "genbank_swissprot_fasta.tar.gz") as archive:
        for name in ("P0A186", "P60904", "Q13454", "sp012", "multi_ex"):
            member = f"Tests/SwissProt/{name}" + ("" if name.startswith("sp") else ".txt")
            (folder / f"{name}.dat").write_bytes(archive.extractfile(member).read())
    return folder


def test_swissprot_records_and_a_corrupt_one(swissprot_files, tmp_path):
    text = (swissprot_files / "P60904.dat").read_text()
    head, _, _ = text.partition("\nSQ   ")
    (swissprot_files / "broken.dat").write_text(head.replace("\nID   ", "\nID   broken") + "\n//\n" + text)
    out = tmp_path / "out"
    manifest = curate(swissprot_files, out, *PASS_THROUGH)
    rows = rows_by_format(out)["swissprot"]
    records = sum(p.read_text().count("\n//") for p in swissprot_files.glob("*.dat"))
    assert len(rows) + manifest.quarantined == records
    by_id = {r["id"]: r for r in rows}
    assert by_id["P0A186"]["meta"]["alphabet"] == "protein" and "Pseudomonas" in by_id["P0A186"]["meta"]["organism"]
    assert by_id["P60904"]["meta"]["keywords"] and by_id["P60904"]["meta"]["function"]
    bad = quarantined(out)
    assert len(bad) == 1 and bad[0]["file"].endswith("broken.dat") and bad[0]["position"] == 1
    assert sum(1 for r in rows if r["id"] == "P60904") == 2  # the record after the broken one is read


def test_smiles_files_real(shared_data, tmp_path):
    out = tmp_path / "smi"
    curate(shared_data / "smiles_rdkit" / "znp.50k.smi.gz", out, *PASS_THROUGH)
    rows = read_dataset(out).to_pylist()
    assert len(rows) == 50_000
    first = json.loads(rows[0]["meta"])
    assert rows[0]["text"].startswith("CC(=O)OC(C)(C)CCC1OC(C)(C)OC1") and first["name"] == "ZINC70701530"
    tables = tmp_path / "tables"
    manifest = curate(
        [
            shared_data / "smiles_chemprop",
            shared_data / "smiles_rdkit" / "100kPCS_validate.csv.gz",
            shared_data / "smiles_rdkit" / "compounds.txt.gz",
        ],
        tables,
        *PASS_THROUGH,
        "input.format=smiles",
    )
    assert manifest.rows == 500 + 500 + 100 + 200 + 99_991 + 4_340 and manifest.quarantined == 0
    rows = read_dataset(tables).to_pylist()
    chembl = [r for r in rows if r["source"] == "compounds"][0]
    meta = json.loads(chembl["meta"])
    assert meta["CHEMBLID"] == "CHEMBL893" and meta["isomeric"] is True and "[C@H]" in chembl["text"]
    reaction = [r for r in rows if ">>" in r["text"]]
    assert len(reaction) == 100


def test_bad_smiles_rows_are_quarantined(shared_data, tmp_path):
    with gzip.open(shared_data / "smiles_chemprop" / "regression.csv.gz", "rt") as handle:
        lines = handle.read().splitlines()
    bad_rows = ["C1CC(,1.0", "CC(C)(C,2.0", "hello world,3.0", "C)C,4.0", ",5.0", "[Xx]CC,6.0"]
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(lines[:11] + bad_rows + lines[11:21]) + "\n")
    out = tmp_path / "out"
    manifest = curate(path, out, *PASS_THROUGH, "input.format=smiles")
    assert manifest.rows == 20 and manifest.quarantined == len(bad_rows)
    errors = {q["position"]: q for q in quarantined(out)}
    assert sorted(errors) == list(range(12, 18))
    assert all(q["field"] == "smiles" for q in errors.values())
    assert "unbalanced branch" in errors[12]["error"] and "unknown element" in errors[17]["error"]


def test_fasta_bad_utf8_and_foreign_characters(tmp_path):
    path = tmp_path / "seqs.fasta"
    path.write_bytes(
        b">ok1 first\nACGTACGTAC\nGTACGT\n>bad1\nACGT\xff\xfeACGT\n>bad2 letters\nMKV!!QRT\n>ok2\nMKVLAAGIVALLLAAGC\n>empty\n"
    )
    out = tmp_path / "out"
    manifest = curate(path, out, *PASS_THROUGH, "input.max_quarantine_frac=1")
    rows = read_dataset(out).to_pylist()
    assert [r["id"] for r in rows] == ["ok1", "ok2"]  # bad1 has an undecodable line: quarantined whole
    assert rows[0]["text"] == "ACGTACGTACGTACGT" and json.loads(rows[0]["meta"])["alphabet"] == "dna"
    errors = [(q["position"], q["error"]) for q in quarantined(out)]
    assert errors[0][0] == 5 and "invalid UTF-8" in errors[0][1]
    assert errors[1][0] == 6 and "'!' at residue 4" in errors[1][1]
    assert errors[2][0] == 10 and "no sequence" in errors[2][1]
    assert manifest.rows_in == manifest.rows + manifest.quarantined


def test_smiles_syntax_check():
    for good in ("CCO", "c1ccccc1", "C[C@@H](O)C(=O)[O-].[Na+]", "F/C=C/F", "[13CH4]", "C%10CC%10", "CC>>C=C"):
        assert smiles.check(good) is None, good
    for bad in ("C1CC", "C(C", "C)", "(C)", "C==", "[Xx]", "CC>", "the", "=C"):
        assert smiles.check(bad) is not None, bad
    assert smiles.is_isomeric("F/C=C/F") and smiles.is_isomeric("[13CH4]") and not smiles.is_isomeric("CCO")


def real_smiles(shared_data, n: int) -> list[str]:
    """The first `n` SMILES of RDKit's ZINC natural products (real molecules)."""
    with gzip.open(shared_data / "smiles_rdkit" / "znp.50k.smi.gz", "rt") as handle:
        return [handle.readline().split()[0] for _ in range(n)]


def test_rdkit_qed_and_rtecs_layouts_read_without_quarantine(shared_data, tmp_path):
    """RDKit's `Chem/test_data/QED/NCI_5000_qed.csv` (a '#' comment line, then 'SMILES,QED' rows, no
    header) and `Code/GraphMol/Wrap/test_data/rtecs_smiles.5000.txt` ('CAS-number SMILES' lines):
    neither file is in the shared data, so both are built here with exactly those layouts from real
    SMILES. Both read with no option but input.format=smiles, the columns found from the content."""
    molecules = real_smiles(shared_data, 40)
    qed = tmp_path / "NCI_5000_qed.csv"
    qed.write_text(
        "# Test data for QED descriptor\n" + "".join(f"{s},{0.1 + i / 97:.17g}\n" for i, s in enumerate(molecules))
    )
    rtecs = tmp_path / "rtecs_smiles.5000.txt"
    rtecs.write_text("".join(f"{100 + i}-{i % 90:02d}-{i % 9} {s}\n" for i, s in enumerate(molecules)))
    for path in (qed, rtecs):
        out = tmp_path / path.stem
        manifest = curate(path, out, *PASS_THROUGH, "input.format=smiles")
        assert manifest.quarantined == 0 and manifest.rows == len(molecules), path.name
        rows = read_dataset(out).to_pylist()
        assert [r["text"] for r in rows] == molecules
    meta = json.loads(read_dataset(tmp_path / "NCI_5000_qed").to_pylist()[2]["meta"])
    assert meta["value"] == pytest.approx(0.1 + 2 / 97) and "name" not in meta
    meta = json.loads(read_dataset(tmp_path / "rtecs_smiles.5000").to_pylist()[2]["meta"])
    assert meta["name"] == "102-02-2" and "value" not in meta


def test_smiles_columns_by_name_or_index_header_and_comments(shared_data, tmp_path):
    molecules = real_smiles(shared_data, 6)
    table = tmp_path / "assay.tsv"
    table.write_text(
        "% exported 2024-01-01\n"
        + "compound\tmolecule\tactivity\tnotes\n"
        + "".join(f"cpd-{i}\t{s}\t{i * 1.5}\tok\n" for i, s in enumerate(molecules))
    )
    common = (*PASS_THROUGH, "input.format=smiles", "input.table.comment=%")
    by_name = curate(
        table,
        tmp_path / "by_name",
        *common,
        "input.table.smiles_column=molecule",
        "input.table.name_column=compound",
        "input.table.value_column=activity",
    )
    assert by_name.quarantined == 0 and by_name.rows == 6
    rows = read_dataset(tmp_path / "by_name").to_pylist()
    meta = json.loads(rows[1]["meta"])
    assert rows[1]["text"] == molecules[1] and meta["name"] == "cpd-1" and meta["value"] == 1.5
    assert meta["notes"] == "ok" and "compound" not in meta  # the header names the other columns
    by_index = curate(table, tmp_path / "by_index", *common, "input.table.smiles_column=1", "input.table.header=true")
    assert by_index.quarantined == 0 and [r["text"] for r in read_dataset(tmp_path / "by_index").to_pylist()] == (
        molecules
    )
    wrong = curate(
        table,
        tmp_path / "wrong",
        *common,
        "input.table.smiles_column=structure",
        "input.max_quarantine_frac=1",
    )
    assert wrong.rows == 0 and wrong.quarantined == 7  # the first row is data when nothing names it a header
    error = quarantined(tmp_path / "wrong")[0]["error"]
    assert error == "input.table.smiles_column: no column named 'structure' (the file has no header row naming it)"
    with pytest.raises(ConfigError, match="input.table.delimiter: 'ab' is not tab, comma, whitespace"):
        curate(table, tmp_path / "x", *common, "input.table.delimiter=ab")


def genbank_records(shared_data, names: tuple[str, ...]):
    """Biopython's parse of real GenBank test files (nucleotide records)."""
    from io import StringIO

    from Bio import SeqIO

    records = []
    with tarfile.open(shared_data / "biopython_seqfiles" / "genbank_swissprot_fasta.tar.gz") as archive:
        for name in names:
            text = archive.extractfile(f"Tests/GenBank/{name}").read().decode()
            records += list(SeqIO.parse(StringIO(text), "genbank"))
    return records


def test_embl_records_through_biopython(shared_data, tmp_path):
    """Real GenBank records written as EMBL by Biopython, read back as the GenBank reader reads them."""
    from Bio import SeqIO

    records = genbank_records(shared_data, ("cor6_6.gb", "arab1.gb"))
    for record in records:
        record.annotations.setdefault("molecule_type", "DNA")
    path = tmp_path / "cor6.embl"
    SeqIO.write(records, path, "embl")
    path.write_text(path.read_text() + "ID   broken; SV 1; linear; DNA; STD; PLN; 5 BP.\nSQ   nonsense\n//\n")
    out = tmp_path / "out"
    manifest = curate(path, out, *PASS_THROUGH, "input.max_quarantine_frac=1")
    rows = rows_by_format(out)["embl"]
    assert [r["text"] for r in rows] == [str(r.seq) for r in records] and manifest.quarantined == 1
    assert rows[0]["meta"]["organism"] == records[0].annotations["organism"]
    assert rows[0]["meta"]["alphabet"] == "dna" and rows[0]["id"] == records[0].id
    (bad,) = quarantined(out)
    assert bad["error"] == "record has no sequence" and bad["raw"].startswith(b"ID   broken")


def test_fastq_reads_and_broken_records(shared_data, tmp_path):
    """Reads written by Biopython (real sequences, qualities made up), then broken ones: a quality
    line starting with '@', a record without its '+' line, a short quality, a cut last record."""
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    sequence = str(genbank_records(shared_data, ("cor6_6.gb",))[0].seq)
    reads = []
    for i in range(5):
        read = SeqRecord(Seq(sequence[i * 40 : i * 40 + 36]), id=f"read{i}", description=f"read{i} lane=1")
        read.letter_annotations["phred_quality"] = [31 + (i + j) % 9 for j in range(36)]
        reads.append(read)
    path = tmp_path / "reads.fastq"
    SeqIO.write(reads, path, "fastq")
    at_quality = "@" * 4 + "I" * 4  # PHRED 31 and 40: a quality line may start with '@'
    path.write_text(
        path.read_text()
        + f"@read5\nACGTACGT\n+\n{at_quality}\n"
        + "@no_plus\nACGTACGT\n@read6\nACGT\n+\nIIII\n"
        + "@long\nACGT\n+\nIIIIII\n@read7\nGGCC\n+read7\nIIII\n"
        + "@cut\nACGT\n+\nI"
    )
    out = tmp_path / "out"
    manifest = curate(path, out, *PASS_THROUGH, "input.max_quarantine_frac=1")
    rows = rows_by_format(out)["fastq"]
    assert [r["id"] for r in rows] == ["read0", "read1", "read2", "read3", "read4", "read5", "read6", "read7"]
    assert rows[0]["text"] == sequence[:36] and rows[0]["meta"]["description"] == "lane=1"
    assert rows[5]["meta"]["quality"] == at_quality and rows[5]["meta"]["mean_quality"] == 35.5
    bad = {q["position"]: q["error"] for q in quarantined(out)}
    first = 6 * 4 + 1  # the header line of the first broken record
    assert bad == {
        first: "record has no '+' line",
        first + 6: "malformed fastq record: Lengths of sequence and quality values differs for long (4 and 6).",
        first + 14: "record cut short (end of file)",
    }
    assert manifest.quarantined == 3 and manifest.rows == 8


def test_zip_archives_are_read_by_member_format_and_skipped_members_listed(shared_data, tmp_path):
    """NLTK's webtext.zip as distributed (its README has no extension), and a zip of mixed members:
    every member read by its own format, those not read listed in inputs.arrow, the summary and
    `thresher inspect`; a zip bomb, an encrypted member and a corrupt archive are bad input."""
    import gzip as gz
    import zipfile

    from conftest import thresher

    from curate.manifest import Manifest

    out = tmp_path / "webtext"
    manifest = curate(
        shared_data / "nltk_corpora" / "webtext.zip",
        out,
        *PASS_THROUGH,
        "input.text_unit=line",
        "input.max_quarantine_frac=1",
    )
    assert manifest.rows > 25_000 and manifest.quarantined == 37  # lines in Latin-1, not UTF-8
    assert {q["error"].rsplit(" ", 1)[0] for q in quarantined(out)} == {"invalid UTF-8 at byte"}
    skipped = [(f.path, f.skipped) for f in Manifest.read(out).input_files(out) if f.skipped]
    assert skipped == [(f"{shared_data}/nltk_corpora/webtext.zip/webtext/README", "unknown format")]
    assert manifest.inputs.skipped == 1 and manifest.inputs.files == 1

    mixed = tmp_path / "mixed.zip"
    with zipfile.ZipFile(mixed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("docs/a.jsonl", '{"text": "first document"}\n{"text": "second document"}\n')
        archive.writestr("docs/b.jsonl.gz", gz.compress(b'{"text": "third document"}\n'))
        archive.writestr("seqs/x.fasta", ">s1 one\nACGTACGT\n")
        archive.writestr("notes.docx", b"PK not read")
        archive.writestr("inner.tar.gz", b"an archive inside the archive")
        archive.writestr(".hidden.jsonl", '{"text": "hidden files are not input"}\n')
        archive.writestr("bomb.jsonl", b"\n" * (5 << 20))  # 5 MB of newlines: ~1000x
    result = thresher(
        "curate",
        f"input.paths=[{mixed}]",
        f"output.dir={tmp_path / 'mixed'}",
        *PASS_THROUGH,
        "input.max_quarantine_frac=1",
    )
    manifest = Manifest.read(tmp_path / "mixed")
    texts = sorted(read_dataset(tmp_path / "mixed").column("text").to_pylist())
    assert texts == ["ACGTACGT", "first document", "second document", "third document"]
    listed = {
        f.path.rsplit("mixed.zip/", 1)[1]: f.skipped for f in manifest.input_files(tmp_path / "mixed") if f.skipped
    }
    assert listed == {"notes.docx": "unknown format", "inner.tar.gz": "archive inside an archive (not read)"}
    assert manifest.inputs.skipped == 2
    (bomb,) = quarantined(tmp_path / "mixed")
    assert bomb["file"].endswith("mixed.zip/bomb.jsonl") and "a decompression bomb?" in bomb["error"]
    assert "skipped 2 input file(s): unknown format 1 · archive inside an archive (not read) 1" in result.stderr
    inspected = thresher("inspect", str(tmp_path / "mixed")).stdout
    assert "skipped 2 input file(s)" in inspected and "mixed.zip/notes.docx (unknown format)" in inspected

    (tmp_path / "broken.zip").write_bytes(mixed.read_bytes()[:200])
    manifest = curate(tmp_path / "broken.zip", tmp_path / "broken", *PASS_THROUGH, "input.max_quarantine_frac=1")
    (bad,) = quarantined(tmp_path / "broken")
    assert manifest.rows == 0 and bad["error"].startswith("not a readable zip archive")


def test_members_skipped_in_a_tar_archive_are_listed(shared_data, tmp_path):
    from curate.manifest import Manifest

    out = tmp_path / "out"
    curate(shared_data / "biopython_seqfiles", out, *PASS_THROUGH, "input.max_quarantine_frac=1")
    manifest = Manifest.read(out)
    skipped = [f for f in manifest.input_files(out) if f.skipped]
    assert manifest.inputs.skipped == len(skipped) > 10
    assert all(".tar.gz/Tests/" in f.path and f.skipped == "unknown format" for f in skipped)
    assert any(f.path.endswith(".m10") for f in skipped)  # FASTA alignments (m10): no reader
