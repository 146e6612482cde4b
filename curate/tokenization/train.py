"""Training a SentencePiece BPE model from a spec and writing the tokenizer folder.

The folder (what `Tokenizer.load` and `AutoTokenizer.from_pretrained` read):
    sentencepiece.model      the trained SentencePiece model (its ids are the tokenizer's ids)
    spec.yaml                the resolved spec it was trained from
    thresher_tokenizer.json  fingerprint, special-token ids, pre-tokenization rule, training sample
    tokenizer.json, tokenizer_config.json, chat_template.jinja   the Hugging Face export
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sentencepiece as spm
import yaml

from curate.errors import ConfigError
from curate.tokenization.markers import SPAN_ALPHABETS, PreTokenizer
from curate.tokenization.spec import CHAT_TOKENS, CONTROL_TOKENS, TokenizerSpec

MODEL_FILE = "sentencepiece.model"
SPEC_FILE = "spec.yaml"
META_FILE = "thresher_tokenizer.json"
# SentencePiece never lets a piece cross this character in training (pretokenization_delimiter);
# it is removed from the sample first. A private-use code point no real text should hold.
DELIMITER = "\ue000"
MAX_SENTENCE_BYTES = 16_384


def pretokenization_rule(spec: TokenizerSpec) -> dict[str, Any]:
    """Everything besides the model that decides ids; part of the fingerprint."""
    return {
        "version": 1,
        "markup_tokens": list(spec.markup_tokens),
        "added_tokens": list(spec.added_tokens),
        "char_level_spans": {f"{s}..{e}": a for (s, e), a in SPAN_ALPHABETS.items()},
        "whole_piece_lookup": True,
    }


def fingerprint(model_bytes: bytes, rule: dict[str, Any]) -> str:
    digest = hashlib.sha256(model_bytes)
    digest.update(json.dumps(rule, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def training_sentences(texts: Iterable[str], spec: TokenizerSpec) -> Iterator[str]:
    """The sample as SentencePiece sentences: atomic pre-tokens fenced off by the delimiter, so no
    piece is learnt across a markup token or inside a character-level span, and documents cut at
    line ends into sentences of at most MAX_SENTENCE_BYTES (newlines kept, so they are learnt)."""
    pretokenize = PreTokenizer(spec.markup_tokens, spec.added_tokens)
    limit = MAX_SENTENCE_BYTES // 4  # characters, at most 4 UTF-8 bytes each
    for text in texts:
        text = text.replace(DELIMITER, "")
        pieces = [DELIMITER + p + DELIMITER if atomic else p for p, atomic in pretokenize(text)]
        sentence: list[str] = []
        size = 0
        for line in "".join(pieces).splitlines(keepends=True):
            while len(line) > limit:  # a giant line (minified code, a genome): hard cuts
                if sentence:
                    yield "".join(sentence)
                    sentence, size = [], 0
                yield line[:limit]
                line = line[limit:]
            if size + len(line) > limit and sentence:
                yield "".join(sentence)
                sentence, size = [], 0
            sentence.append(line)
            size += len(line)
        if sentence:
            yield "".join(sentence)


def train_sentencepiece(spec: TokenizerSpec, sentences: Iterable[str], threads: int = 1) -> bytes:
    """Train the BPE model; return its bytes. Options from STACK.md's exact-round-trip recipe.

    The model is written to memory (`model_writer`), so no file path ends up in it."""
    model = io.BytesIO()
    # Keyword options of SentencePieceTrainer.train (Any: its stubs type the named parameters it also has)
    ids: dict[str, Any] = {f"{role}_id": index for index, role in enumerate(CONTROL_TOKENS)}
    pieces: dict[str, Any] = {f"{role}_piece": token for role, token in CONTROL_TOKENS.items()}
    user_symbols = list(spec.markup_tokens) + (list(CHAT_TOKENS) if spec.chat_template else [])
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type="bpe",
            vocab_size=spec.vocab_size,
            character_coverage=spec.character_coverage,
            byte_fallback=True,
            split_digits=True,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            allow_whitespace_only_pieces=True,
            split_by_unicode_script=True,
            max_sentencepiece_length=spec.max_piece_length,
            max_sentence_length=MAX_SENTENCE_BYTES,
            pretokenization_delimiter=DELIMITER,
            user_defined_symbols=user_symbols,
            required_chars=spec.required_chars,
            num_threads=max(1, threads),
            minloglevel=2,
            **ids,
            **pieces,
        )
    except RuntimeError as error:
        message = str(error).splitlines()[0]
        if "Vocabulary size" in message or "vocab_size" in message:
            raise ConfigError(
                f"tokenizer '{spec.name}': the training sample is too small for vocab_size={spec.vocab_size} "
                f"({message}); sample more text (stages.<name>.sample_rate) or lower the vocabulary size"
            ) from None
        raise
    return model.getvalue()


def write_tokenizer(
    spec: TokenizerSpec, sentences: Iterable[str], out_dir: Path, threads: int = 1, sample: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train and write the complete tokenizer folder atomically (a temporary folder renamed).

    Returns the tokenizer's summary (thresher_tokenizer.json, plus the training time; the folder
    itself holds nothing time-dependent, so the same sample gives byte-identical files)."""
    from curate.tokenization.hf import export_hf

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name ending in .tmp (removed by a rerun if a kill leaves it), created with
    # os.mkdir so the folder gets the user's umask (mkdtemp's is 0700).
    tmp = out_dir.parent / f".{out_dir.name}-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        started = time.perf_counter()
        model_bytes = train_sentencepiece(spec, sentences, threads)
        (tmp / MODEL_FILE).write_bytes(model_bytes)
        rule = pretokenization_rule(spec)
        processor = spm.SentencePieceProcessor(model_proto=model_bytes)
        meta = {
            "name": spec.name,
            "fingerprint": fingerprint(model_bytes, rule),
            "vocab_size": processor.get_piece_size(),
            "special_tokens": {
                role: {"token": token, "id": processor.piece_to_id(token)} for role, token in CONTROL_TOKENS.items()
            },
            "pretokenization": rule,
            "sentencepiece_version": spm.__version__,
            "training_sample": sample or {},
        }
        (tmp / SPEC_FILE).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False, allow_unicode=True))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        export_hf(spec, tmp / MODEL_FILE, tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**meta, "seconds": round(time.perf_counter() - started, 3)}
