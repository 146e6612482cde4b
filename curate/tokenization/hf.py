"""The Hugging Face export: a `tokenizer.json` that gives the same ids as `Tokenizer.encode`.

Built with `tokenizers` from the SentencePiece model (vocabulary and merges by transformers'
`SentencePieceExtractor`) rather than through `LlamaTokenizer`/`LlamaConverter`, whose
transformers 5 paths ignore the model file or mishandle BPE (STACK.md). The pipeline mirrors
SentencePiece with the spec's options:
- no normaliser but ' ' -> '▁' (SentencePiece's whitespace escape; no dummy prefix);
- pre-tokenizer: the Galactica pre-tokenization of `markers.py` (markup tokens and
  character-level spans), as two `Split` regexes;
- BPE with byte fallback; `ignore_merges` maps a pre-token that is a whole piece to that piece
  (how markup tokens reach their id; the engine's encoder does the same);
- control and chat tokens as added tokens (special).
"""

from __future__ import annotations

from pathlib import Path

from curate.tokenization.markers import hf_span_patterns
from curate.tokenization.spec import CONTROL_TOKENS, TokenizerSpec
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

# A chat template for trl: role tokens, the assistant's turn ending in </s>, and {% generation %}
# around what the assistant says so `assistant_only_loss=True` can mask everything else.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}{{ '\n' }}"
    "{%- elif message['role'] in ['system', 'user'] -%}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}"
    "{%- else -%}"
    "{{ raise_exception('unknown role: ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)


def build_hf_tokenizer(spec: TokenizerSpec, model_path: Path) -> Tokenizer:
    """The `tokenizers` pipeline equivalent to `curate.tokenization.Tokenizer` for this model."""
    from transformers.tokenization_utils_sentencepiece import SentencePieceExtractor

    vocab, _, merges = SentencePieceExtractor(str(model_path)).extract()
    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, byte_fallback=True, ignore_merges=True, unk_token=CONTROL_TOKENS["unk"])
    )
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    first, second = hf_span_patterns(spec.markup_tokens)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(first), "isolated"),
            pre_tokenizers.Split(Regex(second), "isolated"),
        ]
    )
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in spec.added_tokens])
    return tokenizer


def export_hf(spec: TokenizerSpec, model_path: Path, out_dir: Path) -> None:
    """Write tokenizer.json, tokenizer_config.json (and the chat template) into `out_dir`."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=build_hf_tokenizer(spec, model_path),
        unk_token=CONTROL_TOKENS["unk"],
        bos_token=CONTROL_TOKENS["bos"],
        eos_token=CONTROL_TOKENS["eos"],
        pad_token=CONTROL_TOKENS["pad"],
        clean_up_tokenization_spaces=False,  # decode must give the text back exactly
        model_max_length=1 << 30,
        chat_template=CHAT_TEMPLATE if spec.chat_template else None,
    )
    hf.save_pretrained(str(out_dir))
