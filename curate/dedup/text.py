"""Text normalisation and n-gram shingles, vectorised over a whole record batch.

Normalisation costs a few passes over a batch's bytes, not a Python call per character: ASCII
case and punctuation are one `bytes.translate` over the batch's UTF-8 buffer, and only rows
with non-ASCII characters go through Unicode normalisation (Python's `unicodedata`, skipped when
the text is already normalised), Unicode lower-casing and a Unicode punctuation regex (Arrow).

Shingles are hashed without a Python call per shingle: each distinct word of the batch is
hashed once with xxh3-64, and the n-gram hash is an order-sensitive combination of its words'
hashes (`sum_k word_hash[i+k] * multipliers[k]` modulo 2^64, then the splitmix64 finaliser),
computed with numpy over the whole batch. `shingle_hash_reference` is the same function written
plainly, one shingle at a time: tests check the two agree, and datasketch uses it as its
`hashfunc` in the bit-identity test.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

UNICODE_FORMS = ("NFKC", "NFC", "none")
# Unicode punctuation (P*) and symbols (S*): `don't` -> `don t`, `a+b` -> `a b`.
PUNCTUATION = r"[\p{P}\p{S}]+"
# RE2's \s is ASCII-only; \p{Z} adds the Unicode separators (no-break space, em space, ...).
WHITESPACE = r"[\s\p{Z}]+"

# Odd 64-bit constants (from xxhash/murmur/splitmix), one per position in the n-gram; beyond 8
# positions the constants are derived with splitmix64, so any n works.
_BASE_MULTIPLIERS = (
    0x9E3779B97F4A7C15,
    0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9,
    0xD6E8FEB86659FD93,
    0xFF51AFD7ED558CCD,
    0xC4CEB9FE1A85EC53,
    0x27D4EB2F165667C5,
    0x85EBCA77C2B2AE63,
)
MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """The splitmix64 finaliser on a Python int (the scalar twin of `mix64`)."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & MASK64
    return x ^ (x >> 31)


def multipliers(n: int) -> list[int]:
    """The per-position odd multipliers of an n-gram hash."""
    values = list(_BASE_MULTIPLIERS[:n])
    while len(values) < n:
        values.append(splitmix64(values[-1]) | 1)
    return values


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic is the point)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclass
class TextNormalization:
    """Options of the text normalisation applied before hashing (shared by the dedup stages)."""

    unicode_form: str = "NFKC"  # NFKC folds compatibility forms (full-width letters, ligatures)
    lowercase: bool = True
    remove_punctuation: bool = True  # Unicode punctuation and symbols become spaces
    normalize_whitespace: bool = True  # runs of whitespace become one space; ends trimmed

    def validate_normalization(self) -> None:
        if self.unicode_form not in UNICODE_FORMS:
            raise ValueError(f"unicode_form: must be one of {', '.join(UNICODE_FORMS)}")

    def normalize(self, texts: pa.Array | pa.ChunkedArray, split_words: bool = False) -> pa.Array:
        """The normalised texts (nulls become empty strings).

        With `split_words` the caller splits the result on whitespace, so collapsing whitespace
        is skipped (the words are the same either way).
        """
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        texts = pc.fill_null(texts.cast(pa.string()), "")
        if len(texts) == 0:
            return texts
        non_ascii = pc.invert(pc.string_is_ascii(texts))
        if pc.any(non_ascii).as_py():
            # Unicode work only on rows with non-ASCII characters (most web text and code has none).
            rows = texts.filter(non_ascii)
            if self.unicode_form != "none":
                form = cast(Literal["NFC", "NFKC"], self.unicode_form)  # a str option, checked by validate
                rows = pa.array(
                    [
                        t if unicodedata.is_normalized(form, t) else unicodedata.normalize(form, t)
                        for t in rows.to_pylist()
                    ],
                    pa.string(),
                )
            if self.lowercase:
                rows = pc.utf8_lower(rows)
            if self.remove_punctuation:
                rows = pc.replace_substring_regex(rows, PUNCTUATION, " ")
            texts = pc.replace_with_mask(texts, non_ascii, rows)
        # ASCII case and punctuation, in every row, as one byte translation (several times faster
        # than a regex; safe on UTF-8, whose multi-byte sequences never contain ASCII bytes).
        table = ascii_table(self.lowercase, self.remove_punctuation)
        if table is not None:
            texts = translate_bytes(texts, table)
        if self.normalize_whitespace and not split_words:
            texts = pc.utf8_trim_whitespace(pc.replace_substring_regex(texts, WHITESPACE, " "))
        return texts


def ascii_table(lowercase: bool, punctuation: bool) -> bytes | None:
    """A `bytes.translate` table: ASCII upper case to lower case, ASCII punctuation and symbols to spaces."""
    if not (lowercase or punctuation):
        return None
    source = (string.ascii_uppercase if lowercase else "") + (string.punctuation if punctuation else "")
    target = (string.ascii_lowercase if lowercase else "") + (" " * len(string.punctuation) if punctuation else "")
    return bytes.maketrans(source.encode(), target.encode())


def translate_bytes(texts: pa.Array, table: bytes) -> pa.Array:
    """Apply a byte translation table to the UTF-8 data of a string array."""
    validity, offsets, data = texts.buffers()
    if data is None:
        return texts
    data = pa.py_buffer(data.to_pybytes().translate(table))
    return pa.Array.from_buffers(pa.string(), len(texts), [validity, offsets, data], offset=texts.offset)


@dataclass
class Shingles:
    """The shingle hashes of a batch of documents: `hashes[offsets[i]:offsets[i+1]]` are document i's."""

    hashes: np.ndarray  # uint64, in document order (not deduplicated)
    offsets: np.ndarray  # int64, len = documents + 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


def list_parts(lists: pa.ListArray) -> tuple[pa.Array, np.ndarray]:
    """The flat values of a list array and its offsets rebased to start at 0."""
    offsets = lists.offsets.to_numpy().astype(np.int64)
    return lists.flatten(), offsets - offsets[0]


def hash_strings(values: pa.Array) -> np.ndarray:
    """xxh3-64 of each string's UTF-8 bytes; each distinct value is hashed once."""
    if len(values) == 0:
        return np.zeros(0, np.uint64)
    encoded = pc.dictionary_encode(values)
    distinct = encoded.dictionary.cast(pa.binary()).to_pylist()
    table = np.fromiter((xxhash.xxh3_64_intdigest(v) for v in distinct), np.uint64, len(distinct))
    return table[encoded.indices.to_numpy(zero_copy_only=False)]


def ngram_hashes(tokens: np.ndarray, offsets: np.ndarray, n: int) -> Shingles:
    """Hash every n-gram of token hashes within each document.

    A document with at least one but fewer than `n` tokens gets one shingle made of all its
    tokens (so short documents can still match); an empty document gets none.
    """
    counts = np.diff(offsets)
    total = len(tokens)
    padded = np.concatenate([tokens, np.zeros(n, np.uint64)])
    acc = np.zeros(total, np.uint64)
    short = (counts > 0) & (counts < n)
    short_hash = np.zeros(len(counts), np.uint64)
    for k, multiplier in enumerate(multipliers(n)):
        acc += padded[k : k + total] * np.uint64(multiplier)
        ends_here = short & (counts == k + 1)
        if ends_here.any():
            short_hash[ends_here] = acc[offsets[:-1][ends_here]]
    per_doc = np.where(counts >= n, counts - n + 1, short.astype(np.int64))
    new_offsets = np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int64)
    # A full n-gram starting at token j of a document sits at acc[document start + j].
    full = counts >= n
    full_counts = per_doc[full]
    full_offsets = np.concatenate([[0], np.cumsum(full_counts)]).astype(np.int64)
    within = np.arange(full_offsets[-1], dtype=np.int64) - np.repeat(full_offsets[:-1], full_counts)
    starts = np.repeat(offsets[:-1][full], full_counts) + within
    hashes = np.empty(new_offsets[-1], np.uint64)
    full_rows = np.repeat(full, per_doc)
    hashes[full_rows] = acc[starts]
    hashes[~full_rows] = short_hash[short]
    return Shingles(mix64(hashes), new_offsets)


def split_words(normalized: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The whitespace-separated words of each text: (flat words, offsets per text)."""
    words, offsets = list_parts(pc.utf8_split_whitespace(normalized))
    # Splitting gives empty strings for empty texts and at leading/trailing whitespace: drop them.
    keep = pc.greater(pc.binary_length(words), 0).to_numpy(zero_copy_only=False)
    if not keep.all():
        words = words.filter(pa.array(keep))
        offsets = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)[offsets]
    return words, offsets


def word_shingles(normalized: pa.Array, n: int) -> Shingles:
    """Word n-gram shingles: words are the whitespace-separated tokens of the normalised text."""
    words, offsets = split_words(normalized)
    return ngram_hashes(hash_strings(words), offsets, n)


def char_shingles(normalized: pa.Array, n: int) -> Shingles:
    """Character n-gram shingles over the normalised text's code points."""
    lengths = pc.utf8_length(normalized).to_numpy(zero_copy_only=False).astype(np.int64)
    joined = "".join(normalized.to_pylist())
    points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return ngram_hashes(mix64(points + np.uint64(0x9E3779B97F4A7C15)), offsets, n)


def shingle_hash_reference(tokens: tuple, chars: bool = False) -> int:
    """One shingle's 64-bit hash, computed plainly (the reference for the vectorised path).

    `tokens` are the n-gram's words (str), or its characters when `chars` is set.
    """
    acc = 0
    for token, multiplier in zip(tokens, multipliers(len(tokens))):
        if chars:
            value = splitmix64((ord(token) + 0x9E3779B97F4A7C15) & MASK64)
        else:
            value = xxhash.xxh3_64_intdigest(token.encode("utf-8"))
        acc = (acc + value * multiplier) & MASK64
    return splitmix64(acc)
