"""Decontamination: find training documents that contain long n-grams of evaluation sets.

Evaluation files are read once per worker (`setup`) with Thresher's own readers (jsonl, json,
parquet, arrow, text: one example per line, compressed or not; a dataset folder Thresher wrote); the word n-grams of the chosen
fields are hashed (64-bit) into a sorted table. Each batch's documents are normalised and cut
into n-grams the same way, and looked up in the table with one vectorised search.

Two rules: `any_ngram` (GPT-3, datatrove, NeMo Curator: one shared n-gram contaminates) and
`coverage` (Tülu 3: an evaluation item is contaminated by a training item that covers more than
half of its tokens with shared n-grams). For `coverage` the table also knows, for each n-gram,
the evaluation item and the word it starts at, so the covered words of each item can be counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import fs
from curate.dedup.text import TextNormalization, hash_strings, ngram_hashes, split_words, word_shingles
from curate.errors import ConfigError
from curate.stages.base import FilterStage, Load, Memory, RowResult, split_by_reason, with_columns

ACTIONS = ("drop", "flag", "cut")
MATCHES = ("any_ngram", "coverage")
RAW_TOKEN = re.compile(r"\S+")


def eval_texts(paths: list[str], fields: list[str]) -> tuple[list[str], set[str]]:
    """Every string found under `fields` in the records of the evaluation files (lists are
    flattened), and the top-level fields the records have."""
    from curate.arrow_io import shard_format, verify_file
    from curate.mapping import get_field
    from curate.readers.files import open_decompressed
    from curate.readers.formats import FORMATS
    from curate.readers.items import Item
    from curate.readers.sources import expand_paths

    files, _ = expand_paths(paths)
    texts: list[str] = []
    seen: set[str] = set()
    for file in files:
        fmt = file.format
        if fmt == "dataset":  # a Thresher dataset's shard (Arrow, Parquet or JSON lines), checked first
            verify_file(file.path, file.sha256)
            fmt = shard_format(file.path)
        reader = FORMATS[fmt]
        with fs.open_binary(file.path) as handle:  # local or remote (curate.fs)
            stream = open_decompressed(handle, file.name)
            for item in reader(stream, file.label, text_unit="line"):
                if not isinstance(item, Item):
                    continue  # a malformed (or passed-over) evaluation record cannot contaminate anything
                seen.update(item.record)
                for name in fields:
                    try:
                        value = get_field(item.record, name)
                    except KeyError:
                        continue
                    values = value if isinstance(value, list) else [value]
                    values = [v.get("content") if isinstance(v, dict) else v for v in values]  # turns' contents
                    texts += [v for v in values if isinstance(v, str) and v.strip()]
    return texts, seen


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The integers of [start, start + length) for each pair, concatenated."""
    lengths = lengths.astype(np.int64)
    ends = np.cumsum(lengths)
    return np.repeat(starts.astype(np.int64), lengths) + (
        np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - lengths, lengths)
    )


@dataclass
class Decontaminate(TextNormalization, FilterStage):
    """Drop (or flag, or cut) documents sharing a word n-gram with evaluation sets given as files.

    Defaults: 13-grams (GPT-3, Brown et al. 2020; NeMo Curator's `max_ngram_size`; datatrove
    uses 12) over text normalised as for `minhash_dedup` (NFKC, lowercase, punctuation and
    symbols removed); `match=any_ngram`: one shared n-gram contaminates. `match=coverage` is
    Tülu 3's rule (Lambert et al. 2024; with 8-grams: the `decontaminate_tulu3` stage): a document
    is contaminated when, for some evaluation item, more than `coverage_threshold` (0.5) of the
    item's words lie in n-grams the document shares with it; score column
    `contamination_coverage`, the largest such share (only `drop` and `flag` apply). An evaluation example shorter than `ngram` words is matched as a whole
    (only by a document made of exactly those words). `eval_fields` are the fields of each
    evaluation record to take n-grams from (`text` for plain text files, one example per line).
    Score column: `contaminated_ngrams`, the number of the document's n-grams found in the
    evaluation sets. `action`: `drop` (datatrove's behaviour: drop as `contaminated`), `flag`
    (keep, score only), or `cut` (NeMo Curator's: remove each matching span widened by
    `cut_margin_chars`=200 characters each side; keep the remaining pieces of at least
    `min_doc_chars`=200 characters, joined by a blank line; drop the document if none is left
    (`contaminated`) or if it has more than `max_splits`=10 spans (`contaminated_too_many_spans`)).
    `columns`: what of each row is checked: `text` (documents), a conversation column (`messages`
    of chat rows, `prompt` / `chosen` / `rejected` of preference rows: every turn's content), or
    several; n-grams never span two turns or two columns, and a row's n-grams are counted (and its
    coverage measured) over all of them. `cut` rewrites `text` only.
    """

    config_name: ClassVar[str] = "decontaminate"
    provides: ClassVar[dict[str, pa.DataType]] = {"contaminated_ngrams": pa.int32()}

    eval_paths: list[str] = field(kw_only=True)  # evaluation files, folders or globs (required)
    eval_fields: list[str] = field(default_factory=lambda: ["text"])
    # text columns or conversations (list of {role, content}); chat: [messages]; preference: [prompt, chosen, rejected]
    columns: list[str] = field(default_factory=lambda: ["text"])
    ngram: int = 13
    match: str = "any_ngram"  # any_ngram | coverage
    coverage_threshold: float = 0.5  # coverage: the share of an evaluation item's words that contaminates
    action: str = "drop"  # drop | flag | cut
    min_doc_chars: int = 200  # cut: pieces shorter than this are discarded
    cut_margin_chars: int = 200  # cut: characters removed on each side of a matching span
    max_splits: int = 10  # cut: more contaminated spans than this drops the document

    def validate(self) -> None:
        from curate.readers.sources import expand_paths

        self.validate_normalization()
        if self.action not in ACTIONS:
            raise ValueError(f"action: must be one of {', '.join(ACTIONS)}")
        if self.ngram < 1:
            raise ValueError("ngram: must be >= 1")
        if self.match not in MATCHES:
            raise ValueError(f"match: must be one of {', '.join(MATCHES)}")
        if self.match == "coverage" and self.action == "cut":
            raise ValueError("action: cut removes matching spans; with match=coverage use drop or flag")
        if not 0 <= self.coverage_threshold < 1:
            raise ValueError("coverage_threshold: a share of an item's words, within [0, 1)")
        if not self.eval_paths:
            raise ValueError("eval_paths: give at least one evaluation file")
        if not self.eval_fields:
            raise ValueError("eval_fields: give at least one field")
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError("columns: give the columns to check, each once (text; messages; prompt, chosen, rejected)")
        if self.action == "cut" and list(self.columns) != ["text"]:
            raise ValueError(
                "action: cut removes spans from the text column; with conversation columns use drop or flag"
            )
        if min(self.min_doc_chars, self.cut_margin_chars, self.max_splits) < 0:
            raise ValueError("min_doc_chars: min_doc_chars, cut_margin_chars and max_splits must be >= 0")
        try:
            expand_paths(list(self.eval_paths))
        except ConfigError as error:
            raise ValueError(f"eval_paths: {str(error).split(': ', 1)[-1]}") from None
        # A misspelt field would silently match nothing: fail now, naming the fields found.
        texts, seen = eval_texts(list(self.eval_paths), list(self.eval_fields))
        self._eval_words = sum(len(text.split()) for text in texts)  # about one n-gram each
        if not texts:
            raise ValueError(
                f"eval_fields: none of {', '.join(self.eval_fields)} holds text in the evaluation "
                f"files (fields found: {', '.join(sorted(seen)) or 'none'})"
            )

    def required_columns(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def provided_columns(self) -> dict[str, pa.DataType]:
        if self.match == "coverage":
            return {**self.provides, "contamination_coverage": pa.float32()}
        return dict(self.provides)

    def memory(self, load: Load) -> Memory:
        """Every worker holds the evaluation n-grams' table, sorted (8 B an n-gram; 32 B with the
        item, first word and span that `coverage` needs), and its sorting copy while built."""
        return Memory(setup=2 * getattr(self, "_eval_words", 0) * (32 if self.match == "coverage" else 8))

    def setup(self) -> None:
        texts, _ = eval_texts(list(self.eval_paths), list(self.eval_fields))
        words, word_offsets = split_words(self.normalize(pa.array(texts, pa.string()), split_words=True))
        shingles = ngram_hashes(hash_strings(words), word_offsets, self.ngram)
        order = np.argsort(shingles.hashes, kind="stable")
        self._table = shingles.hashes[order]  # duplicates are harmless to the search
        if self.match == "coverage":
            # for each n-gram of the table: its item, the first word it covers (as a global word
            # index) and how many words it covers (n, or the whole of a shorter item)
            item_words = np.diff(word_offsets)
            per_item = np.diff(shingles.offsets)
            items = np.repeat(np.arange(len(texts)), per_item)
            within = np.arange(len(items)) - np.repeat(shingles.offsets[:-1], per_item)
            self._item = items[order]
            self._first_word = (word_offsets[:-1][items] + within)[order]
            self._span = np.minimum(self.ngram, item_words[items])[order]
            self._item_words = item_words
            self._word_item = np.repeat(np.arange(len(texts)), item_words)

    def coverage(self, hashes: np.ndarray) -> float:
        """The largest share of an evaluation item's words covered by n-grams in `hashes` (one document's)."""
        unique = np.unique(hashes)
        lo = np.searchsorted(self._table, unique, side="left")
        entries = ranges(lo, np.searchsorted(self._table, unique, side="right") - lo)
        if len(entries) == 0:
            return 0.0
        spans = self._span[entries]
        words = ranges(self._first_word[entries], spans)
        covered = np.bincount(self._word_item[np.unique(words)], minlength=len(self._item_words))
        return float((covered / np.maximum(self._item_words, 1)).max())

    def matches(self, hashes: np.ndarray) -> np.ndarray:
        """Whether each n-gram hash is one of the evaluation sets'."""
        if len(self._table) == 0 or len(hashes) == 0:
            return np.zeros(len(hashes), bool)
        index = np.minimum(np.searchsorted(self._table, hashes), len(self._table) - 1)
        return self._table[index] == hashes

    def segments(self, batch: pa.RecordBatch) -> tuple[pa.Array, np.ndarray]:
        """The texts checked, grouped by row, and the row of each: a text column's value, every
        turn's content of a conversation column."""
        if list(self.columns) == ["text"]:
            return batch.column("text"), np.arange(batch.num_rows)
        texts, rows = [], []
        for name in self.columns:
            column = batch.column(name)
            if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
                texts.append(pc.struct_field(pc.list_flatten(column), "content").cast(pa.string()))
                rows.append(pc.list_parent_indices(column).to_numpy(zero_copy_only=False))
            else:
                texts.append(column.cast(pa.string()))
                rows.append(np.arange(batch.num_rows))
        row = np.concatenate(rows).astype(np.int64)
        order = np.argsort(row, kind="stable")
        return pa.concat_arrays(texts).take(pa.array(order)), row[order]

    def score(self, batch: pa.RecordBatch) -> dict[str, Any]:
        texts, rows = self.segments(batch)
        shingles = word_shingles(self.normalize(texts, split_words=True), self.ngram)
        doc = np.repeat(rows, shingles.counts)
        matched = self.matches(shingles.hashes)
        found = np.bincount(doc, weights=matched, minlength=batch.num_rows)
        columns: dict[str, Any] = {"contaminated_ngrams": found.astype(np.int32)}
        if self.match == "coverage":
            coverage = np.zeros(batch.num_rows, np.float32)
            bounds = shingles.offsets[np.searchsorted(rows, np.arange(batch.num_rows + 1))]  # a row's shingles
            for row in np.flatnonzero(found).tolist():  # only rows sharing an n-gram can cover an item
                start, end = bounds[row], bounds[row + 1]
                coverage[row] = self.coverage(shingles.hashes[start:end][matched[start:end]])
            columns["contamination_coverage"] = coverage
        return columns

    def decide(self, batch: pa.RecordBatch) -> pa.Array:
        if self.action == "flag":
            return pa.nulls(batch.num_rows, pa.string())
        if self.match == "coverage":
            found = pc.greater(batch.column("contamination_coverage"), self.coverage_threshold)
        else:
            found = pc.greater(batch.column("contaminated_ngrams"), 0)
        return pc.if_else(found, pa.scalar("contaminated"), pa.scalar(None, pa.string()))

    def process(self, batch: pa.RecordBatch) -> RowResult:
        if self.action != "cut":
            return super().process(batch)
        batch = with_columns(batch, self.score(batch), self.provided_columns())
        texts = batch.column("text").to_pylist()
        reasons: list[str | None] = [None] * batch.num_rows
        for row in np.flatnonzero(batch.column("contaminated_ngrams").to_numpy() > 0).tolist():
            texts[row], reasons[row] = self.cut(texts[row])
        index = batch.schema.get_field_index("text")
        batch = batch.set_column(index, batch.schema.field(index), pa.array(texts, pa.string()))
        return split_by_reason(batch, reasons)

    def cut(self, text: str) -> tuple[str, str | None]:
        """The text without its contaminated spans (NeMo Curator's rule), or the reason it is dropped."""
        raw = [(m.start(), m.end()) for m in RAW_TOKEN.finditer(text)]
        # Normalise each whitespace-separated token alone: its words are the document's words,
        # and each word knows the token (so the characters) it came from.
        words, offsets = split_words(
            self.normalize(pa.array([text[s:e] for s, e in raw], pa.string()), split_words=True)
        )
        token_of = np.repeat(np.arange(len(raw)), np.diff(offsets))
        shingles = ngram_hashes(hash_strings(words), np.array([0, len(words)]), self.ngram)
        hits = np.flatnonzero(self.matches(shingles.hashes))
        last_word = np.minimum(hits + self.ngram - 1, len(words) - 1)
        spans: list[list[int]] = []
        for first, last in zip(token_of[hits].tolist(), token_of[last_word].tolist()):
            start = max(0, raw[first][0] - self.cut_margin_chars)
            end = min(len(text), raw[last][1] + self.cut_margin_chars)
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        if len(spans) > self.max_splits:
            return text, "contaminated_too_many_spans"
        bounds = [0] + [b for span in spans for b in span] + [len(text)]
        pieces = [text[bounds[i] : bounds[i + 1]].strip() for i in range(0, len(bounds), 2)]
        kept = [piece for piece in pieces if len(piece) >= self.min_doc_chars]
        return ("\n\n".join(kept), None) if kept else (text, "contaminated")


@dataclass
class Tulu3Decontaminate(Decontaminate):
    """Tülu 3's prompt decontamination (Lambert et al. 2024): a training prompt is dropped when, for
    some evaluation item, more than half of the item's tokens lie in 8-grams the prompt shares
    with it (`match=coverage`, `ngram=8`, `coverage_threshold=0.5`); `decontaminate` with those
    options. Words are the normalised words of `decontaminate` (NFKC, lowercase, punctuation and
    symbols removed); an evaluation item shorter than 8 words is covered only by all of its words.
    Score columns: `contaminated_ngrams`, `contamination_coverage`. Defaults: Tülu 3's (8-grams,
    threshold 0.5); the other options are `decontaminate`'s.
    """

    config_name: ClassVar[str] = "decontaminate_tulu3"

    ngram: int = 8
    match: str = "coverage"
