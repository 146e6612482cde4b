"""Tokenization for science and code: Galactica's markup tokens, SentencePiece BPE training from
a spec (`tokenizers/<name>.yaml`), the engine's encoder and the Hugging Face export.

Modules: `markers` (tokens, span alphabets, pre-tokenization rule), `spec` (TokenizerSpec),
`train` (SentencePiece training, the tokenizer folder), `hf` (tokenizer.json export), `encoder`
(`Tokenizer`: load a folder, encode, decode).
"""

from curate.tokenization.encoder import Tokenizer
from curate.tokenization.spec import TokenizerSpec, load_spec
from curate.tokenization.train import write_tokenizer

__all__ = ["Tokenizer", "TokenizerSpec", "load_spec", "write_tokenizer"]
