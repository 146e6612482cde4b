"""Galactica's markup tokens, the alphabets of the spans tokenized one character per token, and
the pre-tokenization rule both the markup stages and the tokenizer rely on.

Galactica (Taylor et al. 2022, section 3.1) wraps citations, reasoning, sequences and molecules
in special tokens and tokenizes DNA, amino-acid and SMILES spans one character per token.
SentencePiece has no per-span mode, so the tokenizer splits text into pre-tokens first:

1. every markup token is its own pre-token;
2. a complete span `[START_X]content[END_X]` whose content uses only X's alphabet is split into
   its start token, one pre-token per character, and its end token;
3. the text in between is encoded by the BPE model.

The same rule is written twice: as a Python function (`pretokenize`) for the engine's encoder
and as a `tokenizers` pre-tokenizer regex (`hf_span_patterns`) for the Hugging Face export.
Tests check that both give identical ids.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# Galactica's special tokens (paper, Table 1 and section 3.1), in a fixed order: their ids follow it.
REF = ("[START_REF]", "[END_REF]")
WORK = ("<work>", "</work>")
DNA = ("[START_DNA]", "[END_DNA]")
AMINO = ("[START_AMINO]", "[END_AMINO]")
SMILES = ("[START_SMILES]", "[END_SMILES]")
I_SMILES = ("[START_I_SMILES]", "[END_I_SMILES]")
GALACTICA_TOKENS: tuple[str, ...] = (
    *REF,
    "[IMAGE]",
    "<fragments>",
    "</fragments>",
    *WORK,
    "[START_SUP]",
    "[END_SUP]",
    "[START_SUB]",
    "[END_SUB]",
    *DNA,
    *AMINO,
    *SMILES,
    *I_SMILES,
)

# Characters allowed inside each character-level span. DNA: IUPAC nucleotide codes (with U for
# RNA and lower case for soft-masked regions) and the gap '-'. Amino acids: IUPAC one-letter codes
# including B, Z, J, U, O, X, with '*' (stop) and '-' (gap). SMILES: the OpenSMILES character set
# (atoms, bonds, branches, ring closures, charges, chirality) plus '>' for reaction SMILES.
SPAN_ALPHABETS: dict[tuple[str, str], str] = {
    DNA: "ACGTUNRYSWKMBDHVacgtunryswkmbdhv-",
    AMINO: "ACDEFGHIKLMNPQRSTVWYBZJUOX*-",
    SMILES: "ABCDEFGHIKLMNOPRSTUVWXYZabcdefghiklmnoprstuy0123456789@+-[]()=#$:/\\.%*>~",
    I_SMILES: "ABCDEFGHIKLMNOPRSTUVWXYZabcdefghiklmnoprstuy0123456789@+-[]()=#$:/\\.%*>~",
}


def char_class(alphabet: str) -> str:
    """A regex character class for `alphabet`, valid in Python `re` and Oniguruma alike."""
    return "[" + "".join("\\" + c if c in "\\]-[^" else c for c in alphabet) + "]"


def span_pattern(start: str, end: str, alphabet: str) -> str:
    """A complete span: start token, content from `alphabet` (lazily, up to the first end), end token."""
    return re.escape(start) + char_class(alphabet) + "*?" + re.escape(end)


def markers_pattern(tokens: tuple[str, ...]) -> str:
    # Longest first, so a token that is a prefix of another never wins.
    return "|".join(re.escape(t) for t in sorted(tokens, key=lambda t: (-len(t), t)))


def spans_pattern() -> str:
    return "|".join(span_pattern(s, e, a) for (s, e), a in SPAN_ALPHABETS.items())


class PreTokenizer:
    """Splits text into pre-tokens: markup tokens, characters of sequence spans, and plain text.

    `atomic` are the markup tokens (Galactica's and any extra user-defined symbols); `added` are
    the tokens the Hugging Face tokenizer extracts before anything else (control and chat
    tokens), so text is first cut at those, exactly as `tokenizers` does.
    """

    def __init__(self, atomic: tuple[str, ...], added: tuple[str, ...]):
        self.added = re.compile(markers_pattern(added)) if added else None
        # The lookahead lets the regex engine skip every position that cannot start a token.
        self.split = re.compile(f"(?=[\\[<])(?:({spans_pattern()})|({markers_pattern(atomic)}))")
        self.span_ends = {s: len(e) for (s, e) in SPAN_ALPHABETS}

    def __call__(self, text: str) -> Iterator[tuple[str, bool]]:
        """Yield (piece, is_atomic): atomic pieces are one token each; the others go to BPE."""
        if self.added is None:
            yield from self.segment(text)
            return
        position = 0
        for match in self.added.finditer(text):
            if match.start() > position:
                yield from self.segment(text[position : match.start()])
            yield match.group(), True
            position = match.end()
        if position < len(text):
            yield from self.segment(text[position:])

    def segment(self, text: str) -> Iterator[tuple[str, bool]]:
        position = 0
        for match in self.split.finditer(text):
            if match.start() > position:
                yield text[position : match.start()], False
            if match.group(1) is not None:  # a sequence span: start, each character, end
                span = match.group(1)
                start = span[: span.index("]") + 1]
                end_len = self.span_ends[start]
                yield start, True
                for char in span[len(start) : len(span) - end_len]:
                    yield char, True
                yield span[len(span) - end_len :], True
            else:
                yield match.group(), True
            position = match.end()
        if position < len(text):
            yield text[position:], False


def hf_span_patterns(atomic: tuple[str, ...]) -> tuple[str, str]:
    """The two Split patterns of the Hugging Face pre-tokenizer (Oniguruma syntax).

    The first isolates complete spans and markup tokens; the second, applied to each piece,
    splits a span piece into its start token, characters and end token. `\\G` anchors each match
    where the previous one ended, so only pieces that begin with a start token are split.
    """
    first = f"{spans_pattern()}|{markers_pattern(atomic)}"
    starts = "|".join(re.escape(s) for s, _ in SPAN_ALPHABETS)
    ends = "|".join(re.escape(e) for _, e in SPAN_ALPHABETS)
    second = f"\\A(?:{starts})|\\G(?<=[\\s\\S])(?:{ends})\\z|\\G(?<=[\\s\\S])[\\s\\S]"
    return first, second
