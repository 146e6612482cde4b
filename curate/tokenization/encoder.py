"""The engine's tokenizer: SentencePiece BPE behind the Galactica pre-tokenization.

`Tokenizer.load(folder)` reads a folder written by `write_tokenizer` and checks its fingerprint;
`encode` gives the same ids as the folder's Hugging Face export (`AutoTokenizer`), which tests
check on real code and science text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm
import yaml

from curate import fs
from curate.errors import ConfigError
from curate.tokenization.markers import PreTokenizer
from curate.tokenization.spec import TokenizerSpec
from curate.tokenization.train import META_FILE, MODEL_FILE, SPEC_FILE, fingerprint, pretokenization_rule


@dataclass
class Tokenizer:
    """A loaded tokenizer folder. Not picklable on purpose: load it in each worker (`setup`)."""

    path: Path
    spec: TokenizerSpec
    fingerprint: str
    processor: spm.SentencePieceProcessor
    pretokenizer: PreTokenizer
    eos_id: int
    bos_id: int
    pad_id: int
    unk_id: int

    @classmethod
    def load(cls, folder: str | Path) -> Tokenizer:
        """A tokenizer folder, local or remote (`s3://...`: read from a local copy, `curate.fs`)."""
        folder = fs.local_tree(folder) if fs.is_remote(folder) else Path(folder)
        missing = [name for name in (MODEL_FILE, SPEC_FILE, META_FILE) if not (folder / name).is_file()]
        if missing:
            raise ConfigError(
                f"tokenizer folder '{folder}' lacks {missing[0]}; train one with pipeline=train_tokenizer"
            )
        spec = TokenizerSpec(**yaml.safe_load((folder / SPEC_FILE).read_text()))
        model_bytes = (folder / MODEL_FILE).read_bytes()
        meta = json.loads((folder / META_FILE).read_text())
        rule = pretokenization_rule(spec)
        actual = fingerprint(model_bytes, rule)
        if meta.get("fingerprint") != actual:
            raise ConfigError(
                f"tokenizer folder '{folder}': fingerprint {actual} does not match {META_FILE} "
                f"({meta.get('fingerprint')}); the model or the pre-tokenization rule changed since it was written"
            )
        processor = spm.SentencePieceProcessor(model_proto=model_bytes)
        return cls(
            folder,
            spec,
            actual,
            processor,
            PreTokenizer(spec.markup_tokens, spec.added_tokens),
            processor.eos_id(),
            processor.bos_id(),
            processor.pad_id(),
            processor.unk_id(),
        )

    def __post_init__(self) -> None:
        sp = self.processor
        # Whole-piece lookup (the export's `ignore_merges`), with SentencePiece's whitespace escape.
        # Byte pieces are included, as in Hugging Face's BPE: a text that is exactly "<0x0A>" maps
        # to the newline byte there, and must here too for the ids to agree.
        self.pieces = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
        for token in self.spec.added_tokens:  # control tokens are matched in text, as Hugging Face does
            self.pieces[token] = sp.piece_to_id(token)
        # Substring tests are much faster than the pre-tokenizer's regex: most documents hold no
        # markup at all and go to SentencePiece in one call.
        self.needles = tuple(sorted(set(self.spec.markup_tokens) | set(self.spec.added_tokens)))

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no BOS/EOS added)."""
        if not any(needle in text for needle in self.needles):  # no markup or added token: one BPE call
            whole = self.pieces.get(text.replace(" ", "▁"))
            return [whole] if whole is not None else self.processor.encode(text)
        ids: list[int] = []
        for piece, _ in self.pretokenizer(text):
            found = self.pieces.get(piece.replace(" ", "▁"))
            if found is not None:
                ids.append(found)
            else:  # BPE; a span character missing from the vocabulary becomes its UTF-8 bytes
                ids.extend(self.processor.encode(piece))
        return ids

    def decode(self, ids: list[int]) -> str:
        """The text of `ids`; control tokens (</s>, ...) are written out, as Hugging Face does."""
        sp = self.processor
        parts: list[str] = []
        run: list[int] = []
        for token in ids:
            if sp.is_control(token):
                parts.append(sp.decode(run))
                parts.append(sp.id_to_piece(token))
                run = []
            else:
                run.append(token)
        parts.append(sp.decode(run))
        return "".join(parts)

    def describe(self) -> dict:
        """What a dataset's manifest records about the tokenizer that made it."""
        return {
            "name": self.spec.name,
            "path": str(self.path.resolve()),
            "fingerprint": self.fingerprint,
            "vocab_size": self.vocab_size,
            "eos_id": self.eos_id,
            "bos_id": self.bos_id,
            "pad_id": self.pad_id,
            "unk_id": self.unk_id,
        }
