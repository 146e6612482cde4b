"""science_markup and code_markup on the real shared files: templates, citations, detection precision."""

from __future__ import annotations

import gzip
import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from curate.markup.citations import parse_bibtex, parse_reference
from curate.markup.detect import detect
from tests.conftest import curate, read_dataset, write_jsonl

MARKUP_ONLY = ("pipeline=science", "~stages.tokenize_pack")


def texts(out: Path) -> list[str]:
    return read_dataset(out).column("text").to_pylist()


def test_sequences_rendered_with_char_spans(shared_data, tmp_path):
    manifest = curate(shared_data / "proteins_mmseqs2", tmp_path / "out", *MARKUP_ONLY)
    docs = texts(tmp_path / "out")
    assert len(docs) == 500
    first = docs[0]
    assert first.startswith("# Protein: Predicted protein (Fragment) OS=Nematostella vectensis")
    assert "Organism: Nematostella vectensis" in first
    assert "[START_AMINO]VCIHTENQNQVSFYPFVLHEISVLIELTLGHLRYRLTDVPPQPNSQPDSATNYVWML[END_AMINO]" in first
    assert manifest.stages[0].stats["amino_spans"] == 500


def test_molecules_rendered_isomeric_or_not(shared_data, tmp_path):
    curate(shared_data / "smiles_rdkit" / "compounds.txt.gz", tmp_path / "out", *MARKUP_ONLY, "input.format=smiles")
    docs = texts(tmp_path / "out")
    assert docs[0].startswith(
        "[START_I_SMILES]Cc1onc(c1C(=O)N[C@H]2[C@H]3SC(C)(C)[C@@H](N3C2=O)C(=O)O)c4c(Cl)cccc4Cl[END_I_SMILES]\n"
    )
    assert "CHEMBLID: CHEMBL893" in docs[0] and "SYNONYMS: R-13423 | BRL-1702" in docs[0]
    plain = [d for d in docs if d.startswith("[START_SMILES]")]
    assert plain and all("@" not in d.split("[END_SMILES]")[0] for d in plain)


def test_unarxive_papers_with_citations_and_formulas(shared_data, tmp_path):
    manifest = curate(shared_data / "unarxive_sample", tmp_path / "out", *MARKUP_ONLY, "input.text_field=abstract.text")
    docs = texts(tmp_path / "out")
    assert len(docs) == 49 and manifest.quarantined == 0
    paper = docs[0]
    assert paper.startswith("# Zeros of a growing number of derivatives of random polynomials with independent roots")
    assert "## Abstract" in paper and "## 1 Introduction" in paper
    assert "{{cite:" not in paper and "{{formula:" not in paper
    assert "$X_1,X_2,\\ldots$" in "".join(docs)
    counts = manifest.stages[0].stats
    assert counts["papers"] == 49 and counts["citations"] > 500 and counts["formulas"] > 15_000
    refs = [
        d
        for d in docs
        if "[START_REF] On the dynamics of the roots of polynomials under differentiation, Alazard[END_REF]" in d
    ]
    assert refs


def test_arxiv_metadata_rendered(shared_data, tmp_path):
    curate(shared_data / "arxiv_metadata", tmp_path / "out", *MARKUP_ONLY, "input.text_field=abstract")
    doc = texts(tmp_path / "out")[0]
    assert doc.startswith("# Calculation of prompt diphoton production cross sections at Tevatron and LHC energies\n")
    assert "Authors: C. Bal\\'azs, E. L. Berger, P. M. Nadolsky, C.-P. Yuan" in doc and "## Abstract" in doc


@pytest.fixture
def hott(shared_data, tmp_path) -> Path:
    folder = tmp_path / "hott"
    with tarfile.open(shared_data / "hott_book_latex" / "hott_book_tex.tar.gz") as archive:
        for member in archive.getmembers():
            if member.isfile():
                (folder / Path(member.name).name).parent.mkdir(parents=True, exist_ok=True)
                (folder / Path(member.name).name).write_bytes(archive.extractfile(member).read())
    return folder


def test_latex_citations_resolved_from_bibliography(hott, tmp_path):
    out = tmp_path / "out"
    manifest = curate(
        [str(hott / "*.tex")], out, *MARKUP_ONLY, f"stages.science_markup.bibliography=[{hott / 'references.bib'}]"
    )
    docs = "".join(texts(out))
    counts = manifest.stages[0].stats
    assert counts["citations"] >= 150 and counts["citations_unresolved"] <= 20
    assert "[START_REF] The Dedekind reals in abstract Stone duality, Bauer[END_REF]" in docs
    assert "\\cite{BauerTaylor09}" not in docs


def test_detection_has_no_false_positives_on_real_science_text(shared_data, hott):
    negatives = []
    with tarfile.open(shared_data / "unarxive_sample" / "unarXive_data_sample.tar.gz") as archive:
        for line in archive.extractfile("unarXive_data_sample/arXiv_src_2212_086.jsonl"):
            paper = json.loads(line)
            negatives += [p["text"] for p in paper["body_text"]]
            negatives += [str(r.get("latex", "")) for r in paper["ref_entries"].values()]
    negatives += [p.read_text() for p in hott.glob("*.tex")]
    with gzip.open(shared_data / "arxiv_metadata" / "arxiv-metadata-oai-snapshot.json.gz", "rt") as handle:
        negatives += [json.loads(line)["abstract"] for line in handle]
    counts = Counter()
    for text in negatives:
        assert detect(text, ["smiles", "sequences"], {}, counts) == text
    assert not counts and len(negatives) > 20_000


def test_detection_finds_real_molecules_and_sequences(shared_data):
    with gzip.open(shared_data / "smiles_rdkit" / "znp.50k.smi.gz", "rt") as handle:
        molecules = [line.split()[0] for _, line in zip(range(2000), handle)]
    with gzip.open(shared_data / "proteins_mmseqs2" / "QUERY.fasta.gz", "rt") as handle:
        proteins = [line.strip() for line in handle if not line.startswith(">")]
    found = 0
    for smiles in molecules:
        text = f"The compound {smiles} was synthesised (yield 80%)."
        result = detect(text, ["smiles"], {}, Counter())
        if f"SMILES]{smiles}[END_" in result:
            found += 1
        else:
            assert result == text
    assert found / len(molecules) > 0.9
    hits = sum(
        f"[START_AMINO]{p}[END_AMINO]" in detect(f"Sequence: {p}\n", ["sequences"], {}, Counter()) for p in proteins
    )
    assert hits / len(proteins) > 0.95
    dna = "ATGGCGTACGTTAGCCGATAGCTAGGCTAACG"
    assert detect(f"primer {dna}.", ["sequences"], {}, Counter()) == f"primer [START_DNA]{dna}[END_DNA]."


def test_detection_per_source_and_existing_markup_untouched(tmp_path):
    smiles = "CC(=O)Oc1ccccc1C(=O)O"
    rows = [
        {"id": "a", "text": f"aspirin is {smiles} here"},
        {"id": "b", "text": f"aspirin is {smiles} here"},
        {"id": "c", "text": f"kept [START_SMILES]{smiles}[END_SMILES] as is"},
    ]
    write_jsonl(tmp_path / "chem" / "a.jsonl", rows[:1] + rows[2:])
    write_jsonl(tmp_path / "other" / "b.jsonl", rows[1:2])
    out = tmp_path / "out"
    manifest = curate(
        [tmp_path / "chem", tmp_path / "other"],
        out,
        *MARKUP_ONLY,
        "stages.science_markup.detect=[smiles]",
        "stages.science_markup.detect_sources=[chem]",
    )
    docs = dict(zip(read_dataset(out).column("id").to_pylist(), texts(out)))
    assert docs["a"] == f"aspirin is [START_SMILES]{smiles}[END_SMILES] here"
    assert docs["b"] == rows[1]["text"]
    assert docs["c"] == rows[2]["text"]
    assert manifest.stages[0].stats["smiles_spans"] == 1


def test_unknown_detector_is_a_config_error(tmp_path):
    from curate.errors import ConfigError

    write_jsonl(tmp_path / "a.jsonl", [{"text": "x"}])
    with pytest.raises(ConfigError, match="unknown detector 'smile'"):
        curate(tmp_path / "a.jsonl", tmp_path / "out", *MARKUP_ONLY, "stages.science_markup.detect=[smile]")


def test_reference_parsing_and_bibtex():
    assert parse_reference(
        "T. Alazard, O. Lazar, and Q. H. Nguyen. On the dynamics of the roots of polynomials "
        "under differentiation. Journal de Mathématiques, 162:1–22, 2022."
    ) == ("On the dynamics of the roots of polynomials under differentiation", "Alazard")
    assert parse_reference(
        "N. Platt, L. Sirovich, and N. Fitzmaurice, “An investigation of chaotic Kolmogorov flows,” "
        "Physics of Fluids 3, 681–696 (1991)."
    ) == ("An investigation of chaotic Kolmogorov flows", "Platt")
    assert parse_reference("J. P. Perdew, K. Burke, and M. Ernzerhof, Phys. Rev. Lett. 77, 3865 (1996).") is None
    assert parse_reference("Sykes J., Brooker G., 1970, Annals of Physics, 56, 1") is None
    entries = parse_bibtex(
        '@article{k1, author = {van der Berg, Jan and Doe, A.}, title = "{Deep} {L}earning for '
        'Cats", year = 2020}\n@book{k2, editor={Zed Z.}, title={A Book on {\\"U}ber Things}}'
    )
    assert entries == {"k1": ("Deep Learning for Cats", "Berg"), "k2": ("A Book on Uber Things", "Zed")}


def test_code_markup_keeps_whitespace(tmp_path):
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    code = "def f():\n\treturn 1  \r\n"
    (source / "pkg" / "m.py").write_text(code)
    out = tmp_path / "out"
    curate(source, out, "pipeline=code_pretrain", "~stages.tokenize_pack")
    assert texts(out) == [f"<filename>pkg/m.py\n{code}"]
