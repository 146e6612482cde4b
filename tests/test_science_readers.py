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
