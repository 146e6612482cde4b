"""The science/code tokenizer: trained here (small vocabulary) on real code and science text."""

from __future__ import annotations

import glob
import gzip
import json
import sysconfig
import tarfile
from pathlib import Path

import pytest

from curate.errors import ConfigError
from curate.tokenization import Tokenizer, TokenizerSpec, load_spec, write_tokenizer
from curate.tokenization.markers import GALACTICA_TOKENS, SPAN_ALPHABETS
from curate.tokenization.spec import CHAT_TOKENS, CONTROL_TOKENS
from curate.tokenization.train import MODEL_FILE, training_sentences
from tests.conftest import REPO, SHARED_DATA

STDLIB = Path(sysconfig.get_paths()["stdlib"])
VOCAB = 2000


def stdlib_code(start: int, count: int) -> list[str]:
    files = sorted(p for p in glob.glob(str(STDLIB / "*.py")))[start : start + count]
    return [Path(p).read_text(encoding="utf-8") for p in files]


def unarxive_paragraphs(limit: int) -> list[str]:
    with tarfile.open(SHARED_DATA / "unarxive_sample" / "unarXive_data_sample.tar.gz") as archive:
        member = archive.extractfile("unarXive_data_sample/arXiv_src_2212_086.jsonl")
        paragraphs = []
        for line in member:
            paper = json.loads(line)
            paragraphs += [p["text"] for p in paper["body_text"]]
            if len(paragraphs) >= limit:
                return paragraphs[:limit]
    return paragraphs


def fasta_sequences(name: str, limit: int) -> list[str]:
    with gzip.open(SHARED_DATA / name, "rt") as handle:
        return [line.strip() for line in handle if not line.startswith(">")][:limit]


def smiles_strings(limit: int) -> list[str]:
    with gzip.open(SHARED_DATA / "smiles_rdkit" / "znp.50k.smi.gz", "rt") as handle:
        return [line.split()[0] for _, line in zip(range(limit), handle)]


def marked_up(proteins: list[str], molecules: list[str]) -> list[str]:
    """Science documents in Galactica's markup, built from real sequences and molecules."""
    return [
        f"The structure of [START_AMINO]{p}[END_AMINO] binds [START_SMILES]{m}[END_SMILES] "
        f"as reported in [START_REF] Attention Is All You Need, Vaswani[END_REF].\n<work>\n"
        f"2 + 3 = 5\n</work>\n[START_DNA]ACGTTGCAnnRY[END_DNA] [START_I_SMILES]C[C@H](N)C(=O)O[END_I_SMILES]"
        for p, m in zip(proteins, molecules)
    ]


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[str]]:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    proteins = fasta_sequences("proteins_mmseqs2/QUERY.fasta.gz", 400)
    molecules = smiles_strings(400)
    return {
        "train": stdlib_code(0, 60) + unarxive_paragraphs(1500) + marked_up(proteins[:200], molecules[:200]),
        "code": stdlib_code(200, 40)
        + [(REPO / "Makefile").read_text()]
        + [
            (STDLIB / "lib2to3/tests/data/crlf.py").read_text(encoding="utf-8", errors="strict")
            if (STDLIB / "lib2to3/tests/data/crlf.py").is_file()
            else "a = 1\r\nb = 2\r\n"
        ],
        "science": unarxive_paragraphs(2000)[1500:] + marked_up(proteins[200:], molecules[200:]),
        "proteins": proteins[200:],
        "molecules": molecules[200:],
    }


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, corpus) -> Path:
    spec = TokenizerSpec(name="test", vocab_size=VOCAB, extra_tokens=["<filename>"])
    folder = tmp_path_factory.mktemp("tok") / "tokenizer"
    write_tokenizer(spec, training_sentences(corpus["train"], spec), folder)
    return folder


@pytest.fixture(scope="module")
def tok(tokenizer_dir) -> Tokenizer:
    return Tokenizer.load(tokenizer_dir)


@pytest.fixture(scope="module")
def hf(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


EDGE_CASES = [
    "def f(x):\n\tif x:\n\t\treturn x  \n\n\n",  # tabs, trailing spaces, blank lines
    "line one\r\nline two\r\n\r\n",  # CRLF
    "    indented    with   runs     of spaces        \n",
    "unicode: 日本語のテキスト, emoji 😀🚀, math ∀x∈ℝ, accents éàü, RTL עברית\n",
    "  leading spaces and a trailing tab\t",
    "",
    " ",
    "\x00control\x07chars\x1b[0m",
]


def test_round_trip_on_real_code_and_science(tok, corpus):
    texts = corpus["code"] + corpus["science"] + EDGE_CASES
    assert any("\t" in t for t in texts) and any("\r\n" in t for t in texts)
    for text in texts:
        assert tok.decode(tok.encode(text)) == text


def test_every_special_token_is_one_id(tok, hf):
    tokens = GALACTICA_TOKENS + CHAT_TOKENS + tuple(CONTROL_TOKENS.values()) + ("<filename>",)
    ids = set()
    for token in tokens:
        encoded = tok.encode(f"x {token} y")
        assert tok.processor.id_to_piece(encoded[2]) == token, token
        assert len(tok.encode(token)) == 1, token
        assert hf(token, add_special_tokens=False)["input_ids"] == tok.encode(token)
        ids.add(tok.encode(token)[0])
    assert len(ids) == len(tokens)
    assert tok.eos_id == 2 and tok.processor.id_to_piece(tok.eos_id) == "</s>"


def test_digits_are_split(tok):
    ids = tok.encode("In 2022, 12345 samples and 3.14159 of 1000000")
    pieces = [tok.processor.id_to_piece(i) for i in ids]
    for piece in pieces:
        assert not (any(c.isdigit() for c in piece) and len(piece) > 1), piece
    sp = tok.processor
    multi_digit = [
        sp.id_to_piece(i)
        for i in range(sp.get_piece_size())
        if not sp.is_byte(i) and any(c.isdigit() for c in sp.id_to_piece(i)) and len(sp.id_to_piece(i)) > 1
    ]
    assert multi_digit == []


def test_one_token_per_character_in_spans(tok, corpus):
    for (start, end), alphabet in SPAN_ALPHABETS.items():
        source = {"[START_AMINO]": corpus["proteins"], "[START_DNA]": ["ACGTTGCATGCANNNacgtRYKM-" * 20]}.get(
            start, corpus["molecules"] + ["C[C@@H](O)C(=O)[O-].[Na+]", "CC(=O)O>>CC(=O)[O-]"]
        )
        for content in source:
            assert set(content) <= set(alphabet), content
            ids = tok.encode(f"see {start}{content}{end} here")
            pieces = [tok.processor.id_to_piece(i) for i in ids]
            inner = pieces[pieces.index(start) + 1 : pieces.index(end)]
            assert inner == list(content)


def test_span_with_foreign_characters_is_plain_text(tok):
    # A space cannot be in a DNA span: the text is not a span and is tokenized as usual.
    ids = tok.encode("[START_DNA]ACGT ACGT[END_DNA]")
    assert tok.decode(ids) == "[START_DNA]ACGT ACGT[END_DNA]"
    assert tok.processor.id_to_piece(ids[0]) == "[START_DNA]"


def test_hugging_face_export_gives_identical_ids(tok, hf, corpus):
    texts = (
        corpus["code"]
        + corpus["science"]
        + EDGE_CASES
        + [
            "</s>literal control<|user|>tokens<s>",
            "<0x0A>",
            "[START_DNA][END_DNA]",
            "[END_SMILES]CC[START_SMILES]",
            "[START_SMILES]CC[START_SMILES]C1=CC=CC=C1[END_SMILES]",
        ]
    )
    for text in texts:
        ids = tok.encode(text)
        assert hf(text, add_special_tokens=False)["input_ids"] == ids, text[:80]
        if "<0x0A>" not in text:  # a byte piece's literal name maps to the byte (see docs)
            assert hf.decode(ids) == text


def test_hugging_face_folder_loads_with_autotokenizer_and_chat_template(hf, tok):
    assert hf.eos_token == "</s>" and hf.eos_token_id == tok.eos_id and hf.pad_token_id == tok.pad_id
    assert len(hf) == tok.vocab_size
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "5"},
    ]
    out = hf.apply_chat_template(messages, return_assistant_tokens_mask=True, return_dict=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    learnt = [i for i, m in zip(ids, mask) if m]
    assert hf.decode(learnt) == "5</s>"
    assert ids.count(tok.pad_id) == 0
    prompt = hf.apply_chat_template(messages[:2], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|assistant|>\n")


def test_training_is_deterministic(tmp_path, corpus):
    spec = TokenizerSpec(name="det", vocab_size=600)
    texts = corpus["train"][:400]
    first = write_tokenizer(spec, training_sentences(texts, spec), tmp_path / "a")
    second = write_tokenizer(spec, training_sentences(texts, spec), tmp_path / "b")
    assert first["fingerprint"] == second["fingerprint"]
    for name in ("sentencepiece.model", "tokenizer.json", "thresher_tokenizer.json", "spec.yaml"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_changed_model_is_refused(tmp_path, tokenizer_dir):
    import shutil

    copy = tmp_path / "tok"
    shutil.copytree(tokenizer_dir, copy)
    data = bytearray((copy / MODEL_FILE).read_bytes())
    data[-1] ^= 1
    (copy / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="fingerprint"):
        Tokenizer.load(copy)


def test_spec_files_and_errors(tmp_path):
    spec = load_spec("thresher")
    assert spec.vocab_size == 50_000 and "<filename>" in spec.extra_tokens
    assert load_spec("thresher", vocab_size=1234).vocab_size == 1234
    with pytest.raises(ConfigError, match="not found"):
        load_spec("no_such_spec")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vocab_sise: 100\n")
    with pytest.raises(ConfigError, match="unknown option 'vocab_sise'"):
        load_spec(str(bad))


def test_too_small_sample_is_a_clear_error(tmp_path):
    spec = TokenizerSpec(name="tiny", vocab_size=5000)
    with pytest.raises(ConfigError, match="too small for vocab_size=5000"):
        write_tokenizer(spec, training_sentences(["just a few words"] * 3, spec), tmp_path / "t")
    assert not (tmp_path / "t").exists()
