"""Tokenizer specs: what a tokenizer is, written in `tokenizers/<name>.yaml` and checked on load.

A spec fixes everything that decides the ids: vocabulary size, control and markup tokens, the
SentencePiece options. Training data selection (how much of the corpus to sample) belongs to
the `train_tokenizer` stage, not to the spec.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curate.errors import ConfigError
from curate.resources import TOKENIZERS_DIR
from curate.tokenization.markers import GALACTICA_TOKENS, SPAN_ALPHABETS

# Control tokens and their ids: fixed, so every tokenizer Thresher trains agrees on them.
CONTROL_TOKENS = {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}
CHAT_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")


@dataclass
class TokenizerSpec:
    """A SentencePiece BPE tokenizer for science and code (Galactica's design, Codex's whitespace).

    Defaults: 50,000 pieces, Galactica's vocabulary size (Taylor et al. 2022); BPE with digits
    split into single tokens, byte fallback so no text is ever unknown, and no normalisation or
    whitespace rewriting, so decode(encode(x)) == x for code with tabs, runs of spaces, CRLF and
    any Unicode (Galactica used NFKC; exactness for code wins here, see docs/tokenization.md).
    Runs of spaces are allowed as pieces (Codex: indentation must not waste the context).
    Galactica's markup tokens, the chat role tokens and `extra_tokens` are atomic: one id each.
    """

    name: str = "thresher"
    vocab_size: int = 50_000
    character_coverage: float = 0.9999  # rarer characters fall back to bytes
    max_piece_length: int = 16  # SentencePiece's default; 16 spaces of indentation fit one piece
    extra_tokens: list[str] = field(default_factory=list)  # more atomic tokens (e.g. "<filename>")
    chat_template: bool = True  # write a chat template (trl: assistant_only_loss) in the HF export

    def validate(self) -> None:
        if self.vocab_size < 300:
            raise ConfigError(f"tokenizer spec '{self.name}': vocab_size must be >= 300 (256 byte pieces + tokens)")
        if not 0.98 <= self.character_coverage <= 1.0:
            raise ConfigError(f"tokenizer spec '{self.name}': character_coverage must be within [0.98, 1.0]")
        if not 1 <= self.max_piece_length <= 64:
            raise ConfigError(f"tokenizer spec '{self.name}': max_piece_length must be within [1, 64]")
        clash = set(self.extra_tokens) & (set(GALACTICA_TOKENS) | set(CHAT_TOKENS) | set(CONTROL_TOKENS.values()))
        if clash:
            raise ConfigError(f"tokenizer spec '{self.name}': extra_tokens repeats built-in token {sorted(clash)[0]!r}")
        if any(not t or any(c.isspace() for c in t) for t in self.extra_tokens):
            raise ConfigError(f"tokenizer spec '{self.name}': extra_tokens must be non-empty and without whitespace")

    @property
    def markup_tokens(self) -> tuple[str, ...]:
        """Atomic tokens matched inside text by the pre-tokenizer (Galactica's + extra)."""
        return GALACTICA_TOKENS + tuple(self.extra_tokens)

    @property
    def added_tokens(self) -> tuple[str, ...]:
        """Tokens Hugging Face extracts before anything else: control and chat tokens."""
        return tuple(CONTROL_TOKENS.values()) + (CHAT_TOKENS if self.chat_template else ())

    @property
    def required_chars(self) -> str:
        """Characters that must be pieces: those of the character-level spans, and tab/newlines."""
        chars = set("\t\n\r")
        for alphabet in SPAN_ALPHABETS.values():
            chars.update(alphabet)
        return "".join(sorted(chars))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_spec(name_or_path: str, **overrides: Any) -> TokenizerSpec:
    """A spec by name (`tokenizers/<name>.yaml`) or path, with `overrides` applied and checked."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = TOKENIZERS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        found = ", ".join(sorted(p.stem for p in TOKENIZERS_DIR.glob("*.yaml"))) or "none"
        raise ConfigError(f"tokenizer spec '{name_or_path}' not found (specs in {TOKENIZERS_DIR}: {found})")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"tokenizer spec {path}: expected a mapping of options")
    data.update({k: v for k, v in overrides.items() if v not in (None, 0, "")})
    valid = {f.name for f in dataclasses.fields(TokenizerSpec)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ConfigError(f"tokenizer spec {path}: unknown option '{unknown[0]}'; valid: {', '.join(sorted(valid))}")
    spec = TokenizerSpec(**data)
    spec.validate()
    return spec
