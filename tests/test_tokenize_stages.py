"""The train_tokenizer and tokenize recipes end to end: real engine, real SentencePiece."""

from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from curate.errors import ConfigError
from curate.manifest import Manifest
from curate.tokenization import Tokenizer
from tests.conftest import curate, read_dataset, thresher, write_jsonl

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def write_parts(folder: Path, rows: list[dict], parts: int) -> Path:
    """Rows spread over `parts` files, so the run has several tasks."""
    for part in range(parts):
        write_jsonl(folder / f"part-{part}.jsonl", rows[part::parts])
    return folder


def documents(count: int, start: int = 0) -> list[dict]:
    files = sorted(glob.glob(str(STDLIB / "*.py")))[start : start + count]
    rows = [{"id": Path(f).name, "text": Path(f).read_text(encoding="utf-8")} for f in files]
    rows += [
        {
            "id": f"sci-{i}",
            "text": f"Molecule {i}: [START_SMILES]CC(=O)OC1=CC=CC=C1C(=O)O[END_SMILES] and "
            f"[START_AMINO]MKTAYIAKQRQISFVKSHFSRQ[END_AMINO] ({i * 37} mg).",
        }
        for i in range(20)
    ]
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    data = write_jsonl(root / "docs.jsonl", documents(40))
    out = root / "run"
    curate(
        data,
        out,
        "pipeline=train_tokenizer",
        "stages.train_tokenizer.sample_rate=1.0",
        "stages.train_tokenizer.vocab_size=800",
    )
    return out


def test_train_tokenizer_recipe_writes_the_tokenizer_folder(trained):
    manifest = Manifest.read(trained)
    folder = trained / "tokenizer"
    for name in (
        "sentencepiece.model",
        "spec.yaml",
        "thresher_tokenizer.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ):
        assert (folder / name).is_file(), name
    stage = manifest.stages[0]
    assert stage.rows_in == 60 and stage.rows_out == 0 and manifest.rows == 0
    # the stage consumes its rows: one pass, no intermediate copy of the corpus
    assert [p["stages"] for p in manifest.timings.passes] == ["scan train_tokenizer"]
    details = stage.details
    assert details["path"] == "tokenizer" and details["vocab_size"] == 800
    assert details["sample"]["documents"] == 60
    assert details["fingerprint"] == Tokenizer.load(folder).fingerprint
    assert not (trained / "stages").exists()


def test_sample_is_deterministic_and_proportional(tmp_path):
    rows = documents(40) + documents(160, start=40)
    data = write_parts(tmp_path / "docs", rows, 4)
    fingerprints, sampled = [], []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        manifest = curate(
            data,
            out,
            "pipeline=train_tokenizer",
            "stages.train_tokenizer.sample_rate=0.5",
            "stages.train_tokenizer.vocab_size=600",
            f"executor.workers={workers}",
            "executor.task_mb=0.1",
        )
        assert manifest.tasks > 1
        details = manifest.stages[0].details
        fingerprints.append(details["fingerprint"])
        sampled.append(details["sample"]["documents"])
    assert fingerprints[0] == fingerprints[1] and sampled[0] == sampled[1]
    assert 0.35 * len(rows) < sampled[0] < 0.65 * len(rows)


def test_sample_cap_keeps_the_smallest_keys(tmp_path):
    data = write_jsonl(tmp_path / "docs.jsonl", documents(60))
    manifest = curate(
        data,
        tmp_path / "out",
        "pipeline=train_tokenizer",
        "stages.train_tokenizer.sample_rate=1.0",
        "stages.train_tokenizer.vocab_size=600",
        "stages.train_tokenizer.max_sample_mb=0.4",
    )
    sample = manifest.stages[0].details["sample"]
    assert 0 < sample["documents"] < 80 and sample["bytes"] <= 0.4 * (1 << 20)


def unpack(table, eos: int, pad: int) -> list[list[int]]:
    """Documents back from packed rows: split the stream at document starts."""
    ids = [row for row in table.column("input_ids").to_pylist()]
    starts = table.column("doc_starts").to_pylist()
    stream = [t for row in ids for t in row]
    boundaries = [r * len(ids[0]) + s for r, row_starts in enumerate(starts) for s in row_starts]
    docs = [stream[a:b] for a, b in zip(boundaries, boundaries[1:] + [len(stream)])]
    return [
        d[: len(d) - next(i for i, t in enumerate(reversed(d)) if t != pad)] if d and d[-1] == pad else d for d in docs
    ]


def test_packing_loses_no_token_and_separates_documents(trained, tmp_path):
    rows = documents(30, start=100)
    data = write_jsonl(tmp_path / "docs.jsonl", rows)
    out = tmp_path / "tokens"
    manifest = curate(
        data,
        out,
        "pipeline=tokenize",
        f"stages.tokenize_pack.tokenizer={trained / 'tokenizer'}",
        "stages.tokenize_pack.seq_len=128",
    )
    assert manifest.kind == "tokens"
    table = read_dataset(out)
    assert set(len(r) for r in table.column("input_ids").to_pylist()) == {128}
    tok = Tokenizer.load(trained / "tokenizer")
    docs = unpack(table, tok.eos_id, tok.pad_id)
    assert len(docs) == len(rows)
    for doc, row in zip(docs, rows):
        assert doc == tok.encode(row["text"]) + [tok.eos_id]  # every document ends in EOS, no token lost
        assert tok.eos_id not in doc[:-1]
    stage = manifest.stages[0]
    counts = stage.stats
    assert counts["documents"] == len(rows) and counts["tokens"] == sum(len(d) for d in docs)
    assert counts["tokens"] + counts["padding_tokens"] == 128 * manifest.rows == 128 * counts["sequences"]
    assert stage.details["tokenizer"]["fingerprint"] == tok.fingerprint
    assert stage.details["tokenizer"]["eos_id"] == tok.eos_id


def test_token_shards_are_identical_with_one_or_two_workers(trained, tmp_path):
    data = write_parts(tmp_path / "docs", documents(60, start=100), 4)
    shas = []
    for workers in (1, 2):
        manifest = curate(
            data,
            tmp_path / f"w{workers}",
            "pipeline=tokenize",
            f"stages.tokenize_pack.tokenizer={trained / 'tokenizer'}",
            "stages.tokenize_pack.seq_len=256",
            f"executor.workers={workers}",
            "executor.task_mb=0.1",
        )
        assert manifest.tasks > 1
        shas.append([s.sha256 for s in manifest.shards])
    assert shas[0] == shas[1]


def test_drop_remainder_counts_dropped_tokens(trained, tmp_path):
    data = write_jsonl(tmp_path / "docs.jsonl", documents(5, start=100))
    manifest = curate(
        data,
        tmp_path / "out",
        "pipeline=tokenize",
        f"stages.tokenize_pack.tokenizer={trained / 'tokenizer'}",
        "stages.tokenize_pack.seq_len=512",
        "stages.tokenize_pack.remainder=drop",
    )
    counts = manifest.stages[0].stats
    assert counts["padding_tokens"] == 0 and 0 < counts["dropped_tokens"] < 512
    assert counts["tokens"] == 512 * manifest.rows + counts["dropped_tokens"]
    table = read_dataset(tmp_path / "out")
    assert np.isin(np.concatenate([np.array(r) for r in table.column("input_ids").to_pylist()]), [3]).sum() == 0


def test_token_datasets_stay_arrow_streams(trained, tmp_path):
    data = write_jsonl(tmp_path / "docs.jsonl", documents(2))
    tokenizer = f"stages.tokenize_pack.tokenizer={trained / 'tokenizer'}"
    with pytest.raises(ConfigError, match="output.format: token datasets are written as Arrow streams"):
        curate(data, tmp_path / "out", "pipeline=tokenize", tokenizer, "output.format=parquet")


def test_tokenize_needs_a_tokenizer_folder(tmp_path):
    data = write_jsonl(tmp_path / "docs.jsonl", documents(2))
    with pytest.raises(ConfigError, match="stages.tokenize_pack.tokenizer: required value is missing"):
        curate(data, tmp_path / "a", "pipeline=tokenize")
    with pytest.raises(ConfigError, match="is not a tokenizer folder"):
        curate(data, tmp_path / "b", "pipeline=tokenize", f"stages.tokenize_pack.tokenizer={tmp_path}")


def test_cli_train_tokenizer_then_autotokenizer(tmp_path):
    data = write_jsonl(tmp_path / "docs.jsonl", documents(30))
    out = tmp_path / "D"
    thresher(
        "curate",
        "pipeline=train_tokenizer",
        f"input.paths=[{data}]",
        f"output.dir={out}",
        "stages.train_tokenizer.sample_rate=1.0",
        "stages.train_tokenizer.vocab_size=700",
    )
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    tok = Tokenizer.load(out / "tokenizer")
    text = "x = [START_SMILES]CCO[END_SMILES]  # 42\n\tpass\n"
    assert hf(text, add_special_tokens=False)["input_ids"] == tok.encode(text)


def test_science_recipe_end_to_end_spans_are_one_token_per_character(trained, shared_data, tmp_path):
    out = tmp_path / "sci"
    manifest = curate(
        shared_data / "proteins_mmseqs2",
        out,
        "pipeline=science",
        f"stages.tokenize_pack.tokenizer={trained / 'tokenizer'}",
        "stages.tokenize_pack.seq_len=512",
    )
    assert manifest.kind == "tokens" and manifest.stages[0].stats["amino_spans"] == 500
    tok = Tokenizer.load(trained / "tokenizer")
    start, end = (tok.processor.piece_to_id(t) for t in ("[START_AMINO]", "[END_AMINO]"))
    stream = [t for row in read_dataset(out).column("input_ids").to_pylist() for t in row]
    spans, inside = 0, None
    for token in stream:
        if token == start:
            inside = []
        elif token == end and inside is not None:
            assert all(len(tok.processor.id_to_piece(t)) == 1 for t in inside)
            spans, inside = spans + 1, None
        elif inside is not None:
            inside.append(token)
    assert spans == 500


def test_tokenizer_folder_cannot_take_an_engine_folder(tmp_path):
    data = write_jsonl(tmp_path / "docs.jsonl", documents(2))
    with pytest.raises(ConfigError, match="cannot keep artifacts in 'data'"):
        curate(data, tmp_path / "out", "pipeline=train_tokenizer", "stages.train_tokenizer.folder=data")
