"""Tokenizer training and token packing: `train_tokenizer` (global) and `tokenize_pack` (row).

`train_tokenizer` samples documents deterministically, trains a SentencePiece BPE from a spec in
`tokenizers/` and writes the tokenizer folder (SentencePiece model, spec, fingerprint, Hugging
Face export) to `<output.dir>/tokenizer/`. `tokenize_pack` turns documents into `tokens` rows:
fixed-length sequences of ids, documents separated by EOS, document starts kept per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate import fs
from curate.arrow_io import iter_batches
from curate.errors import ConfigError
from curate.schema import KINDS
from curate.stages.base import GlobalContext, GlobalStage, RowResult, RowStage

SCAN_SCHEMA = pa.schema([("key", pa.uint64()), ("bytes", pa.int64()), ("text", pa.string())])


def sample_keys(ids: list[str], seed: int) -> np.ndarray:
    """A uniform 64-bit key per document id: the sample is every key below rate * 2**64."""
    return np.array([xxhash.xxh3_64_intdigest(doc_id.encode(), seed) for doc_id in ids], dtype=np.uint64)


@dataclass
class TrainTokenizer(GlobalStage):
    """Train a SentencePiece BPE tokenizer on a deterministic random sample of the documents.

    Galactica trained its tokenizer on a random 2% of its corpus (Taylor et al. 2022): the
    default `sample_rate` is 0.02, drawn by a 64-bit hash of each document id (the same
    documents for any number of workers). The sample is capped at `max_sample_mb` (the
    documents with the smallest hash keys, so the cap keeps the sample uniform), as SentencePiece
    holds it in memory. `spec` names `tokenizers/<spec>.yaml` (or is a path to a YAML spec);
    `vocab_size` > 0 overrides the spec's. Writes the tokenizer to `<output.dir>/<folder>/`
    (SentencePiece model, spec, fingerprint, Hugging Face export) and consumes the documents
    (counted as `consumed`): the run's product is the tokenizer, its dataset is empty.
    """

    config_name: ClassVar[str] = "train_tokenizer"
    requires: ClassVar[tuple[str, ...]] = ("id", "text")
    consumes_rows: ClassVar[bool] = True

    spec: str = "thresher"
    vocab_size: int = 0
    sample_rate: float = 0.02
    max_sample_mb: float = 1024.0
    folder: str = "tokenizer"

    def validate(self) -> None:
        from curate.tokenization import load_spec

        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError("sample_rate: must be within (0, 1]")
        if self.max_sample_mb <= 0:
            raise ValueError("max_sample_mb: must be > 0")
        if not self.folder or "/" in self.folder:
            raise ValueError("folder: must be one folder name (the tokenizer goes to <output.dir>/<folder>/)")
        try:
            load_spec(self.spec, vocab_size=self.vocab_size)
        except ConfigError as error:
            raise ValueError(f"spec: {error}") from None

    @property
    def keep_subdir(self) -> str:
        return self.folder

    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch | None:
        # Keys depend on the document ids only: the same sample whatever the tasks and workers.
        keys = sample_keys(batch.column("id").to_pylist(), 0)
        chosen = keys <= np.uint64(min(int(self.sample_rate * 2**64), 2**64 - 1))
        if not chosen.any():
            return None
        mask = pa.array(chosen)
        texts = batch.column("text").filter(mask)
        sizes = pc.binary_length(texts).cast(pa.int64())
        return pa.RecordBatch.from_arrays([pa.array(keys[chosen]), sizes, texts], schema=SCAN_SCHEMA)

    def key_limit(self, ctx: GlobalContext) -> tuple[int, int, int]:
        """The largest key kept under the size cap, and the documents and bytes it keeps."""
        keys, sizes = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)]
        for batch in self.scanned(ctx):  # keys and sizes only: the texts are read again later
            keys.append(batch.column("key").to_numpy())
            sizes.append(batch.column("bytes").to_numpy())
        key, size = np.concatenate(keys), np.concatenate(sizes)
        if key.size == 0:
            return 0, 0, 0
        order = np.argsort(key, kind="stable")
        total = np.cumsum(size[order])
        kept = max(1, int(np.searchsorted(total, int(self.max_sample_mb * (1 << 20)), side="right")))
        return int(key[order[kept - 1]]), kept, int(total[kept - 1])

    @staticmethod
    def scanned(ctx: GlobalContext):
        for path in ctx.scan_files:
            yield from iter_batches(path)

    def sample_texts(self, ctx: GlobalContext, limit: int):
        for batch in self.scanned(ctx):
            keys, texts = batch.column("key").to_numpy(), batch.column("text")
            for index in np.flatnonzero(keys <= np.uint64(limit)):
                yield texts[int(index)].as_py()

    def resolve(self, ctx: GlobalContext) -> None:
        from curate.tokenization import load_spec, write_tokenizer
        from curate.tokenization.train import training_sentences

        spec = load_spec(self.spec, vocab_size=self.vocab_size)
        limit, documents, size = self.key_limit(ctx)
        if documents == 0:
            raise ConfigError(
                f"stages.{self.name}: the sample is empty: no row reached the stage, or none was sampled at "
                f"sample_rate={self.sample_rate} (raise it)"
            )
        sample = {
            "documents": documents,
            "bytes": size,
            "sample_rate": self.sample_rate,
            "max_sample_mb": self.max_sample_mb,
        }
        # One SentencePiece thread: its BPE trainer is then reproducible byte for byte.
        summary = write_tokenizer(
            spec, training_sentences(self.sample_texts(ctx, limit), spec), ctx.keep_dir, threads=1, sample=sample
        )
        self.stat_set(
            path=self.folder,
            name=summary["name"],
            fingerprint=summary["fingerprint"],
            vocab_size=summary["vocab_size"],
            sample=sample,
            seconds=summary["seconds"],
        )


@dataclass
class TokenizePack(RowStage):
    """Tokenize documents and pack them into fixed-length sequences (`tokens` rows).

    Each document's ids are followed by EOS (`</s>` separates documents, as in Galactica) and
    concatenated in order; the stream is cut every `seq_len` ids (default 2048, Galactica's
    context length; EOS on, BOS off, as Galactica).
    `doc_starts` lists the offsets in each row where a document begins, so a trainer can mask
    attention across documents. The last partial row of each task is padded with the pad id
    (`remainder: pad`, no token lost; padding is counted) or dropped (`remainder: drop`).
    `tokenizer` is a tokenizer folder (from `pipeline=train_tokenizer`); its fingerprint, the
    token counts and the padding go to the manifest (stage `details` and `stats`). Accounting:
    every document is `consumed` (its tokens go into sequences) and every sequence is `generated`;
    tokens balance separately: tokens + padding_tokens = sequences * seq_len + dropped_tokens.
    """

    config_name: ClassVar[str] = "tokenize_pack"
    requires: ClassVar[tuple[str, ...]] = ("text",)

    tokenizer: str = "???"
    seq_len: int = 2048
    add_eos: bool = True
    add_bos: bool = False
    remainder: str = "pad"

    def validate(self) -> None:
        if self.seq_len < 2:
            raise ValueError("seq_len: must be >= 2")
        if self.remainder not in ("pad", "drop"):
            raise ValueError("remainder: must be pad or drop")
        if not fs.is_file(fs.join(self.tokenizer, "tokenizer.json")):
            raise ValueError(
                f"tokenizer: '{self.tokenizer}' is not a tokenizer folder (train one with pipeline=train_tokenizer)"
            )
        from curate.tokenization import Tokenizer

        try:  # reads the model and checks its fingerprint before any data is read
            Tokenizer.load(self.tokenizer)
        except ConfigError as error:
            raise ValueError(f"tokenizer: {error}") from None

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        return KINDS["tokens"]

    def setup(self) -> None:
        from curate.tokenization import Tokenizer

        self.model = Tokenizer.load(self.tokenizer)
        self.stat_set(tokenizer=self.model.describe())

    def start_task(self, task: int) -> None:
        self.buffer: list[int] = []
        self.starts: list[int] = []  # offsets in `buffer` where documents begin

    def process(self, batch: pa.RecordBatch) -> RowResult:
        model, buffer, starts = self.model, self.buffer, self.starts
        prefix = [model.bos_id] if self.add_bos else []
        suffix = [model.eos_id] if self.add_eos else []
        before = len(buffer)
        for text in batch.column("text").to_pylist():
            starts.append(len(buffer))
            buffer.extend(prefix)
            buffer.extend(model.encode(text))
            buffer.extend(suffix)
        self.stat_update("documents", batch.num_rows)
        self.stat_update("consumed", batch.num_rows)  # documents become parts of sequences
        self.stat_update("tokens", len(buffer) - before)
        return RowResult(kept=self.cut(len(buffer) // self.seq_len))

    def cut(self, rows: int) -> pa.RecordBatch:
        """The first `rows` full sequences of the buffer, removed from it."""
        n = rows * self.seq_len
        ids = np.array(self.buffer[:n], dtype=np.int32)
        del self.buffer[:n]
        starts = np.array(self.starts, dtype=np.int64)
        inside = starts < n
        row_of = starts[inside] // self.seq_len
        offsets = (starts[inside] % self.seq_len).astype(np.int32)
        self.starts = [s - n for s in self.starts if s >= n]
        self.stat_update("sequences", rows)
        self.stat_update("generated", rows)
        return pa.RecordBatch.from_arrays(
            [
                pa.ListArray.from_arrays(pa.array(np.arange(rows + 1, dtype=np.int32) * self.seq_len), pa.array(ids)),
                pa.ListArray.from_arrays(
                    pa.array(np.searchsorted(row_of, np.arange(rows + 1)).astype(np.int32)), pa.array(offsets)
                ),
            ],
            schema=KINDS["tokens"],
        )

    def finish_task(self) -> RowResult | None:
        left = len(self.buffer)
        dropped = left if self.remainder == "drop" else 0
        padding = (self.seq_len - left) if left and not dropped else 0
        self.stat_update("dropped_tokens", dropped)
        self.stat_update("padding_tokens", padding)
        if left == 0 or dropped:
            self.buffer.clear()
            self.starts.clear()
            return None
        self.buffer.extend([self.model.pad_id] * padding)
        return RowResult(kept=self.cut(1))
