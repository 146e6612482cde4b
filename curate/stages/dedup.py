"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash LSH) global stages.

Both stages share one life cycle (`DuplicateStage`):
- `scan` turns each batch into compact state rows (a hash or band hashes per document, its
  position, id, source and keep priority); the engine writes them to one file per task;
- `resolve` finds clusters in that state (polars group-by, scipy connected components), keeps one
  document per cluster by the keep policy, writes the decisions per task, sample clusters for
  the report (`clusters.arrow` in the stage's keep folder) and returns a compact summary;
- `apply` drops the other members of each cluster (reason `exact_duplicate` / `near_duplicate`)
  and, optionally, annotates every row with its cluster (the id of the document kept for it)
  and the cluster size. Dropped rows keep those columns in the rejects, so every removed
  document names the document it duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.arrow_io import read_frame, read_table, read_tables, write_table
from curate.dedup.decisions import CLUSTERS_FILE, ROW_MASK, SAMPLES_DIR, TaskDecisions
from curate.dedup.minhash import (
    band_hashes,
    candidate_probability,
    optimal_bands,
    permutations,
    signatures,
    sorted_unique,
)
from curate.dedup.text import TextNormalization, char_shingles, word_shingles
from curate.stages.base import GlobalContext, GlobalStage, RowResult, split_by_reason, with_columns

KEEP_POLICIES = ("first", "longest", "highest", "lowest")
SAMPLE_TEXT_CHARS = 2000
# Shingles read per chunk of candidate pairs when verifying (4 bytes each).
VERIFY_SHINGLES = 1 << 20


@dataclass
class DuplicateStage(GlobalStage):
    """What both dedup stages share: keep policy, decisions, apply, summary and sample clusters.

    Subclasses set `reason` and `columns` (the names of the cluster and size columns) and
    implement `state` (the scan state of a batch) and `clusters` (cluster members from the state).
    """

    reason: ClassVar[str] = ""
    columns: ClassVar[tuple[str, str]] = ("", "")

    keep: str = "first"  # first | longest | highest | lowest (the last two read priority_column)
    priority_column: str = ""  # a numeric column, for keep=highest / keep=lowest
    cluster_columns: bool = True  # add the cluster (id of the kept document) and size columns
    sample_clusters: int = 20  # clusters kept for the report (half the largest, half at random)

    def validate_keep(self) -> None:
        if self.keep not in KEEP_POLICIES:
            raise ValueError(f"keep: must be one of {', '.join(KEEP_POLICIES)}")
        if self.keep in ("highest", "lowest") and not self.priority_column:
            raise ValueError(f"priority_column: required with keep={self.keep}")
        if self.keep not in ("highest", "lowest") and self.priority_column:
            raise ValueError("priority_column: only used with keep=highest or keep=lowest")
        if self.sample_clusters < 0:
            raise ValueError("sample_clusters: must be >= 0")

    def required_columns(self) -> tuple[str, ...]:
        return ("id", "text", "source") + ((self.priority_column,) if self.priority_column else ())

    def provided_columns(self) -> dict[str, pa.DataType]:
        cluster, size = self.columns
        return {cluster: pa.string(), size: pa.int64()} if self.cluster_columns else {}

    # ---- scan ------------------------------------------------------------------------------

    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch:
        columns = {
            "position": pa.array(positions, pa.int64()),
            "id": batch.column("id"),
            "source": batch.column("source"),
        }
        if self.keep != "first":
            columns["priority"] = self.priority(batch)
        columns.update(self.state(batch))
        return pa.RecordBatch.from_pydict(columns)

    def priority(self, batch: pa.RecordBatch) -> pa.Array:
        """The keep priority of each row: higher is kept first (missing values rank last)."""
        if self.keep == "longest":
            return pc.utf8_length(pc.fill_null(batch.column("text"), "")).cast(pa.float64())
        values = batch.column(self.priority_column).cast(pa.float64())
        if self.keep == "lowest":
            values = pc.negate(values)
        return pc.fill_null(pc.if_else(pc.is_nan(values), -np.inf, values), -np.inf)

    def state(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        raise NotImplementedError

    # ---- resolve ---------------------------------------------------------------------------

    def clusters(self, files: list[Path]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Cluster members as (global rows, cluster label per row) and stage-specific summary numbers."""
        raise NotImplementedError

    def similarity(self, files: list[Path], pairs: np.ndarray) -> np.ndarray | None:
        """Similarity of (kept row, other row) pairs, for sample clusters; None if not known."""
        return None

    def resolve(self, ctx: GlobalContext) -> None:
        from curate.dedup import clusters  # polars and scipy: needed here, not in the workers

        files = list(ctx.scan_files)
        rows, labels, details = self.clusters(files)
        members = clusters.keep_one(files, rows, labels, by_priority=self.keep != "first")
        clusters.write_decisions(ctx.work_dir / "decisions", members.select("position", "cluster", "size", "drop"))
        samples = clusters.write_samples(
            ctx.keep_dir, members, self.sample_clusters, ctx.seed, lambda pairs: self.similarity(files, pairs)
        )
        self.stat_set(**clusters.summary(files, members), sample_clusters=samples, **details)

    # ---- apply -----------------------------------------------------------------------------

    def load(self, ctx: GlobalContext) -> None:
        self._decisions_dir = ctx.work_dir / "decisions"
        self._samples_dir = ctx.keep_dir / SAMPLES_DIR
        self._task: TaskDecisions | None = None
        clusters = ctx.keep_dir / CLUSTERS_FILE
        self._sample_positions = (
            read_table(clusters).column("position").to_numpy() if clusters.is_file() else np.zeros(0, np.int64)
        )

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        if batch.num_rows == 0:
            return RowResult(kept=batch)
        task = int(positions[0] >> 32)
        if self._task is None or self._task.task != task:
            self._task = TaskDecisions(self._decisions_dir, task)
        cluster, size, drop = self._task.annotate(positions & ROW_MASK)
        if self.cluster_columns:
            batch = with_columns(batch, dict(zip(self.columns, (cluster, size))), self.provided_columns())
        self.save_sample_texts(batch, positions)
        reasons = pc.if_else(pa.array(drop), pa.scalar(self.reason), pa.scalar(None, pa.string()))
        return split_by_reason(batch, reasons)

    def save_sample_texts(self, batch: pa.RecordBatch, positions: np.ndarray) -> None:
        """Write the text of this batch's sample-cluster members for the report (idempotent)."""
        if not len(self._sample_positions):
            return
        hit = np.isin(positions, self._sample_positions)
        if not hit.any():
            return
        texts = pc.utf8_slice_codeunits(batch.column("text").filter(pa.array(hit)), 0, SAMPLE_TEXT_CHARS)
        table = pa.table({"position": pa.array(positions[hit], pa.int64()), "text": texts})
        task, row = int(positions[0] >> 32), int(positions[0] & ROW_MASK)
        write_table(self._samples_dir / f"part-{task:05d}-{row:010d}.arrow", table)


@dataclass
class ExactDedup(TextNormalization, DuplicateStage):
    """Keep one document per exact (normalised) text; drop the others as `exact_duplicate`.

    The text is normalised, then hashed with xxh3-128 (collisions are negligible: about 2^-64
    for 10^9 documents). Default normalisation: Unicode NFKC and whitespace collapsed, case and
    punctuation kept, so documents that differ only in encoding or spacing are one document
    (case and punctuation variants are left to `minhash_dedup`). Which document is kept:
    `keep=first` (first seen in input order, the default and datatrove's/NeMo Curator's
    behaviour), `longest`, or `highest` / `lowest` value of `priority_column`; ties go to the
    first seen. Adds `exact_cluster` (id of the kept document; null for unique ones) and
    `exact_cluster_size` unless `cluster_columns=false`.
    """

    config_name: ClassVar[str] = "exact_dedup"
    reason: ClassVar[str] = "exact_duplicate"
    columns: ClassVar[tuple[str, str]] = ("exact_cluster", "exact_cluster_size")

    lowercase: bool = False
    remove_punctuation: bool = False

    def validate(self) -> None:
        self.validate_normalization()
        self.validate_keep()

    def state(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        # Collapsing whitespace as split + join (C speed, per document) rather than a regex pass.
        texts = self.normalize(batch.column("text"), split_words=True).to_pylist()
        if self.normalize_whitespace:
            texts = [" ".join(text.split()) for text in texts]
        digests = [xxhash.xxh3_128_digest(text.encode("utf-8")) for text in texts]
        return {"key": pa.array(digests, pa.binary(16))}

    def clusters(self, files: list[Path]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        import polars as pl

        if not files:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), {}
        keys = read_frame(files, columns=["key"]).with_row_index("row")
        groups = (
            keys.lazy()
            .with_columns(label=pl.col("row").min().over("key"), n=pl.len().over("key"))
            .filter(pl.col("n") > 1)
            .collect()
        )
        return (groups["row"].cast(pl.Int64).to_numpy(), groups["label"].cast(pl.Int64).to_numpy(), {})

    def similarity(self, files: list[Path], pairs: np.ndarray) -> np.ndarray:
        return np.ones(len(pairs))


@dataclass
class MinHashDedup(TextNormalization, DuplicateStage):
    """Near-duplicate removal with MinHash LSH: keep one document per cluster of similar documents.

    Each document's normalised text (NFKC, lowercase, punctuation and symbols removed,
    whitespace collapsed, as datatrove does) is cut into shingles — word 5-grams by default
    (Lee et al. 2022, datatrove), or character n-grams with `shingle_unit=char` — hashed to 32
    bits. Its MinHash signature (`num_perm`=128 permutations, datasketch's `affine32` scheme,
    bit-identical to `datasketch.MinHash`) is cut into `bands` x `rows`; documents sharing a band
    are candidates. With `bands=0, rows=0` the layout is chosen by datasketch's optimiser for
    `threshold` (0.8, Lee et al. 2022), weighting false negatives 0.98 and false positives 0.02
    (17 bands x 7 rows: a pair at 0.8 becomes a candidate with probability 0.98): with
    `verify=true` (the default) every candidate pair is checked by its true Jaccard similarity
    over the shingle sets, so a false positive costs only a check while a false negative is a
    missed duplicate. Verified pairs (or all candidate pairs with `verify=false`)
    are joined into clusters by connected components; one document per cluster is kept by the
    keep policy (`first`, `longest`, `highest`/`lowest` of `priority_column`) and the others
    are dropped as `near_duplicate`. Documents with no words are left alone. Adds `dup_cluster`
    (id of the kept document; null for unique ones) and `dup_cluster_size` unless
    `cluster_columns=false`.
    """

    config_name: ClassVar[str] = "minhash_dedup"
    reason: ClassVar[str] = "near_duplicate"
    columns: ClassVar[tuple[str, str]] = ("dup_cluster", "dup_cluster_size")

    threshold: float = 0.8  # Jaccard similarity at or above which documents are near-duplicates
    shingle_unit: str = "word"  # word | char
    ngram: int = 5  # tokens per shingle
    num_perm: int = 128  # MinHash permutations
    bands: int = 0  # LSH bands; 0 = chosen from threshold (with rows)
    rows: int = 0  # signature values per band; 0 = chosen from threshold (with bands)
    false_positive_weight: float = 0.02  # optimiser weights (datasketch's MinHashLSH `weights`)
    false_negative_weight: float = 0.98
    verify: bool = True  # check candidate pairs by true Jaccard of their shingle sets
    seed: int = 1  # seed of the permutations (datasketch's default)

    def validate(self) -> None:
        self.validate_normalization()
        self.validate_keep()
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold: must be in (0, 1]")
        if self.shingle_unit not in ("word", "char"):
            raise ValueError("shingle_unit: must be word or char")
        if self.ngram < 1:
            raise ValueError("ngram: must be >= 1")
        if self.num_perm < 1:
            raise ValueError("num_perm: must be >= 1")
        if (self.bands == 0) != (self.rows == 0) or self.bands < 0 or self.rows < 0:
            raise ValueError("bands: set both bands and rows (> 0), or neither to choose them from threshold")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands: bands x rows ({self.bands * self.rows}) exceeds num_perm ({self.num_perm})")
        if (
            self.false_positive_weight < 0
            or self.false_negative_weight < 0
            or self.false_positive_weight + self.false_negative_weight <= 0
        ):
            raise ValueError("false_positive_weight: weights must be >= 0 and not both 0")
        # Chosen once, in the driver: workers receive them with the stage (and never import
        # datasketch and scipy just for these).
        self.layout()
        self._permutations = permutations(self.num_perm, self.seed)

    def layout(self) -> tuple[int, int]:
        """(bands, rows): as given, or datasketch's optimum for the threshold and weights."""
        if self.bands:
            return self.bands, self.rows
        if not hasattr(self, "_layout"):
            self._layout = optimal_bands(
                self.threshold, self.num_perm, self.false_positive_weight, self.false_negative_weight
            )
        return self._layout

    def band_columns(self) -> list[str]:
        return [f"band_{band:03d}" for band in range(self.layout()[0])]

    def shingles(self, texts: pa.Array):
        if self.shingle_unit == "char":
            return char_shingles(self.normalize(texts), self.ngram)
        return word_shingles(self.normalize(texts, split_words=True), self.ngram)

    def state(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        shingles = self.shingles(batch.column("text"))
        # Distinct 32-bit shingle hashes per document, sorted: key = document << 32 | hash.
        doc = np.repeat(np.arange(batch.num_rows, dtype=np.uint64), shingles.counts)
        keys = sorted_unique((doc << np.uint64(32)) | (shingles.hashes & np.uint64(0xFFFFFFFF)))
        values = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        counts = np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=batch.num_rows)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        bands, rows = self.layout()
        hashed = band_hashes(signatures(values, offsets, *self._permutations), bands, rows)
        empty = pa.array(counts == 0)
        columns: dict[str, pa.Array] = {"n_shingles": pa.array(counts, pa.int32())}
        for band, name in enumerate(self.band_columns()):
            columns[name] = pc.if_else(empty, pa.scalar(None, pa.uint64()), pa.array(hashed[:, band]))
        if self.verify:
            columns["shingles"] = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
        return columns

    def clusters(self, files: list[Path]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        from curate.dedup.clusters import band_pairs, components

        bands, rows = self.layout()
        details: dict[str, Any] = {
            "num_perm": self.num_perm,
            "bands": bands,
            "rows": rows,
            "threshold": self.threshold,
            "candidate_recall_at_threshold": round(candidate_probability(self.threshold, bands, rows), 4),
        }
        if not files:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), details
        counts = read_tables(files, columns=["n_shingles"]).column("n_shingles")
        details["documents_without_words"] = int(pc.sum(pc.equal(counts, 0)).as_py() or 0)
        pairs = band_pairs(files, self.band_columns())
        details["candidate_pairs"] = int(len(pairs))
        if self.verify and len(pairs):
            similarity = self.similarity(files, pairs)
            assert similarity is not None  # None only when verify is off
            pairs = pairs[similarity >= self.threshold]
            details["verified_pairs"] = int(len(pairs))
        nodes, labels = components(pairs)
        return nodes, labels, details

    def similarity(self, files: list[Path], pairs: np.ndarray) -> np.ndarray | None:
        """True Jaccard similarity of the pairs' shingle sets.

        Pairs are checked in chunks holding at most VERIFY_SHINGLES shingles, and only those
        documents' shingle sets are read, so memory stays bounded however many pairs there are.
        """
        from curate.dedup.clusters import jaccard, take_rows

        if not self.verify:
            return None
        sizes = read_tables(files, columns=["n_shingles"]).column("n_shingles").to_numpy().astype(np.int64)
        done = np.cumsum(sizes[pairs[:, 0]] + sizes[pairs[:, 1]])
        result = np.zeros(len(pairs))
        start = 0
        while start < len(pairs):
            before = done[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(done, before + VERIFY_SHINGLES, side="right")))
            chunk = pairs[start:stop]
            needed = sorted_unique(chunk.ravel())
            lists = take_rows(files, ["shingles"], needed).column("shingles").combine_chunks()
            offsets = lists.offsets.to_numpy().astype(np.int64)
            result[start:stop] = jaccard(
                lists.flatten().to_numpy(), offsets - offsets[0], np.searchsorted(needed, chunk)
            )
            start = stop
        return result
