"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash LSH) global stages.

Both stages share one life cycle (`DuplicateStage`):
- `scan` turns each batch into compact state rows (a hash or band hashes per document, its
  position, id, source and keep priority); the engine writes them to one file per task;
- `resolve` finds clusters in that state, in partitions (tasks on the executor, memory bounded
  by the partition; `curate.dedup.clusters`): exact duplicates are grouped by hash and resolved
  whole in their partition (the driver gets counts); MinHash band buckets become candidate pairs,
  verified by true Jaccard, and only the verified edges reach the driver, which joins them into
  clusters (connected components). One document per cluster is kept by the keep policy; the
  decisions, sample clusters for the report (`clusters.arrow` in the stage's keep folder) and a
  compact summary are written;
- `apply` drops the other members of each cluster (reason `exact_duplicate` / `near_duplicate`)
  and, optionally, annotates every row with its cluster (the id of the document kept for it)
  and the cluster size. Dropped rows keep those columns in the rejects, so every removed
  document names the document it duplicates.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.arrow_io import read_table, read_tables, to_frame, write_table
from curate.dedup.decisions import CLUSTERS_FILE, ROW_MASK, SAMPLES_DIR, TaskDecisions
from curate.dedup.minhash import (
    band_hashes,
    candidate_probability,
    optimal_bands,
    permutations,
    signatures,
    sorted_unique,
)
from curate.dedup.text import TextNormalization, char_shingles, mix64, word_shingles
from curate.partitions import KEY, ScanRows
from curate.stages.base import (
    GlobalContext,
    GlobalStage,
    Load,
    Memory,
    PartitionContext,
    RowResult,
    split_by_reason,
    with_columns,
)

KEEP_POLICIES = ("first", "longest", "highest", "lowest")
SAMPLE_TEXT_CHARS = 2000
SIGNATURES = ("datasketch", "rensa")
# Memory costs, measured with near_dedup on 200k and 800k documents in one partition
# (benchmarks/scale_bench.py --costs, results/scale.json; docs/scaling.md), in bytes:
MINHASH_PARTITION_ROW_BYTES = 51  # a band row of a partition while its buckets become pairs (868 B / 17 bands)
EXACT_PARTITION_DOCUMENT_BYTES = 45  # a document of an exact_dedup partition, its clusters included
DRIVER_MEMBER_BYTES = 200  # a member of a MinHash cluster on the driver (edges, components, keep choice)
# What a task holds of the rows it routes: a row's columns (exact: two hash words and a position;
# MinHash: a band value, its band and a position), twice while they are sorted by partition.
EXACT_SHUFFLE_ROW_BYTES = 2 * 24
MINHASH_SHUFFLE_ROW_BYTES = 2 * 18
EDGES = pa.schema([("a", pa.int64()), ("b", pa.int64())])  # verified duplicate pairs, by position
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

    def decision_files(self, ctx: GlobalContext) -> list[Path]:
        """The files of decisions `resolve` wrote (cluster members, sorted by position)."""
        raise NotImplementedError

    def cluster_lists(self, ctx: GlobalContext) -> list[Path]:
        """The files listing the clusters (size and kept position, largest first)."""
        raise NotImplementedError

    def similarity(self, scan: ScanRows, pairs: np.ndarray) -> np.ndarray | None:
        """Similarity of (kept position, other position) pairs, for sample clusters; None if not known."""
        return None

    def resolve_members(self, scan: ScanRows, positions: np.ndarray, labels: np.ndarray) -> Any:
        """Cluster members (positions and a cluster label each) with the kept document of each
        cluster chosen by the keep policy (a polars frame, see `clusters.keep_one`)."""
        from curate.dedup import clusters

        return clusters.keep_one(
            clusters.member_info(scan, positions, labels, by_priority=self.keep != "first"),
            by_priority=self.keep != "first",
        )

    def finish(self, ctx: GlobalContext, found: dict[str, Any], details: dict[str, Any]) -> None:
        """Sample clusters for the report, and the stage's summary (from merged counts)."""
        from curate.dedup import clusters

        scan = ctx.scan_rows()
        samples = clusters.write_samples(
            ctx.keep_dir,
            self.cluster_lists(ctx),
            self.decision_files(ctx),
            scan,
            self.sample_clusters,
            ctx.seed,
            lambda pairs: self.similarity(scan, pairs),
        )
        self.stat_set(**clusters.summary(found), sample_clusters=samples, **details)

    # ---- apply -----------------------------------------------------------------------------

    def load(self, ctx: GlobalContext) -> None:
        self._decision_files = self.decision_files(ctx)
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
            self._task = TaskDecisions(self._decision_files, task)
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

    def memory(self, load: Load) -> Memory:
        """A task holds its routed rows (one per document); a partition its documents' groups; the
        driver merges counts."""
        return Memory(
            task=load.task_documents * EXACT_SHUFFLE_ROW_BYTES,
            partition=load.documents / load.partitions * EXACT_PARTITION_DOCUMENT_BYTES,
        )

    def shuffle(self, state: pa.RecordBatch | pa.Table) -> pa.Table:
        # Routed by the first 64 bits of the 128-bit hash; grouped by both halves.
        words = digest_words(state.column("key"))
        return pa.table({KEY: words[:, 0], "low": words[:, 1], "position": state.column("position")})

    def resolve(self, ctx: GlobalContext) -> None:
        from curate.dedup.clusters import add_counts

        found: dict[str, Any] = {}
        for result in ctx.map_partitions("clusters"):
            add_counts(found, result)
        self.finish(ctx, found, {})

    def resolve_partition(self, ctx: PartitionContext) -> dict[str, Any]:
        """Every group of equal hashes in this partition, resolved whole: its decisions, its
        clusters (largest first) and counts for the summary."""
        import polars as pl

        from curate.dedup import clusters
        from curate.dedup.pairs import source_counts

        files, _ = ctx.scan_share()
        found: dict[str, Any] = {"documents_by_source": source_counts(files)}
        rows = ctx.shuffled()
        groups = pl.DataFrame(schema={"position": pl.Int64, "label": pl.Int64})
        if rows is not None:
            groups = (
                to_frame(rows)
                .lazy()
                .with_columns(label=pl.col("position").min().over(KEY, "low"), n=pl.len().over(KEY, "low"))
                .filter(pl.col("n") > 1)
                .select("position", "label")
                .collect()
            )
        members = self.resolve_members(ctx.scan_rows(), groups["position"].to_numpy(), groups["label"].to_numpy())
        clusters.write_members(ctx.output("decisions"), ctx.output("clusters"), members)
        return {**found, **clusters.counts(members)}

    def decision_files(self, ctx: GlobalContext) -> list[Path]:
        return ctx.partition_files("clusters", "decisions")

    def cluster_lists(self, ctx: GlobalContext) -> list[Path]:
        return ctx.partition_files("clusters", "clusters")

    def similarity(self, scan: ScanRows, pairs: np.ndarray) -> np.ndarray:
        return np.ones(len(pairs))


def digest_words(digests: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """16-byte digests (a fixed-size binary column) as two uint64 words each (n x 2)."""
    if isinstance(digests, pa.ChunkedArray):
        digests = digests.combine_chunks()
    data = np.frombuffer(digests.buffers()[1], np.uint64)
    return data.reshape(-1, 2)[digests.offset : digests.offset + len(digests)]


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
    `cluster_columns=false`. `signatures=rensa` computes the signatures with rensa's RMinHash
    (Rust, 3-3.5x faster than the default's numpy for signatures; another hash family, so the candidate
    pairs of documents near the threshold differ: docs/benchmarks/scaling.md counts them).
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
    signatures: str = "datasketch"  # datasketch (bit-identical, numpy) | rensa (its RMinHash, Rust: faster)

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
        if self.signatures not in SIGNATURES:
            raise ValueError(f"signatures: must be one of {', '.join(SIGNATURES)}")
        if self.signatures == "rensa" and importlib.util.find_spec("rensa") is None:
            raise ValueError("signatures: rensa is not installed (pip install rensa)")
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
        hashed = band_hashes(self.signature_matrix(values, offsets), bands, rows)
        empty = pa.array(counts == 0)
        columns: dict[str, pa.Array] = {"n_shingles": pa.array(counts, pa.int32())}
        for band, name in enumerate(self.band_columns()):
            columns[name] = pc.if_else(empty, pa.scalar(None, pa.uint64()), pa.array(hashed[:, band]))
        if self.verify:
            columns["shingles"] = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
        return columns

    def signature_matrix(self, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """MinHash signatures (documents x num_perm, uint32) of each document's distinct shingle hashes."""
        if self.signatures == "rensa":
            from rensa import RMinHash

            matrix = RMinHash.digest_matrix_from_flat_token_hashes(
                values.astype(np.uint64), offsets.astype(np.uint64), self.num_perm, self.seed
            )
            return np.array(matrix.to_rows(), np.uint32).reshape(len(offsets) - 1, self.num_perm)
        return signatures(values, offsets, *self._permutations)

    def memory(self, load: Load) -> Memory:
        """A task holds its routed band rows; a partition groups its share of them into pairs (and
        verifies pairs a chunk of shingles at a time); the driver holds the clusters' members."""
        bands = self.layout()[0]
        return Memory(
            task=load.task_documents * bands * MINHASH_SHUFFLE_ROW_BYTES,
            partition=load.documents / load.partitions * bands * MINHASH_PARTITION_ROW_BYTES + VERIFY_SHINGLES * 16,
            driver=load.duplicates * DRIVER_MEMBER_BYTES,
        )

    def shuffle(self, state: pa.RecordBatch | pa.Table) -> pa.Table:
        """One row per band of each document with words: (band value, band, position)."""
        words = state.column("n_shingles").to_numpy(zero_copy_only=False) > 0
        positions = state.column("position").to_numpy()[words]
        names = self.band_columns()
        values = [state.column(name).filter(pa.array(words)).to_numpy(zero_copy_only=False) for name in names]
        return pa.table(
            {
                KEY: pa.array(np.concatenate(values) if values else np.zeros(0, np.uint64), pa.uint64()),
                "band": pa.array(np.repeat(np.arange(len(names), dtype=np.int16), len(positions)), pa.int16()),
                "position": pa.array(np.tile(positions, len(names)), pa.int64()),
            }
        )

    def resolve(self, ctx: GlobalContext) -> None:
        from curate.dedup import clusters

        bands, rows = self.layout()
        details: dict[str, Any] = {
            "num_perm": self.num_perm,
            "bands": bands,
            "rows": rows,
            "threshold": self.threshold,
            "candidate_recall_at_threshold": round(candidate_probability(self.threshold, bands, rows), 4),
        }
        found: dict[str, Any] = {}
        for result in ctx.map_partitions("candidates") + ctx.map_partitions("verify"):
            clusters.add_counts(found, result)
        if ctx.scan_files:
            details["documents_without_words"] = found.pop("documents_without_words", 0)
            details["candidate_pairs"] = found.pop("candidate_pairs", 0)
            if self.verify and details["candidate_pairs"]:
                details["verified_pairs"] = found.pop("verified_pairs", 0)
        # Only the verified edges reach the driver: its memory grows with the duplicates.
        edges = read_tables(ctx.partition_files("verify", "edges"), EDGES)
        pairs = np.stack([edges.column("a").to_numpy(), edges.column("b").to_numpy()], axis=1)
        nodes, labels = clusters.components(pairs)
        members = self.resolve_members(ctx.scan_rows(), nodes, labels)
        clusters.write_members(*self.members_files(ctx), members)
        found.update(clusters.counts(members))
        self.finish(ctx, found, details)

    def resolve_partition(self, ctx: PartitionContext) -> dict[str, Any]:
        if ctx.step == "candidates":
            return self.candidates(ctx)
        return self.verified(ctx)

    def candidates(self, ctx: PartitionContext) -> dict[str, Any]:
        """This partition's band buckets as candidate pairs, routed by pair (each pair found in
        several bands is verified once, by one partition)."""
        from curate.dedup import pairs as candidate

        files, _ = ctx.scan_share()
        counts = read_tables(files, pa.schema([("n_shingles", pa.int32())]), ["n_shingles"]).column("n_shingles")
        rows = ctx.shuffled()
        pairs = np.zeros((0, 2), np.int64)
        if rows is not None:
            # a bucket is a band's value: the band mixed into the key (64 bits, as the band hash itself)
            band = rows.column("band").to_numpy().astype(np.uint64)
            keys = mix64(rows.column(KEY).to_numpy() ^ (band * np.uint64(0x9E3779B97F4A7C15)))
            positions = rows.column("position").to_numpy()
            del rows, band
            pairs = candidate.star_pairs(keys, positions)
        a, b = pairs[:, 0], pairs[:, 1]
        key = a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + b.astype(np.uint64)
        ctx.write_shuffled("pairs", pa.table({KEY: key, "a": a, "b": b}))
        return {
            "documents_by_source": candidate.source_counts(files),
            "documents_without_words": int(pc.sum(pc.equal(counts, 0)).as_py() or 0),
        }

    def verified(self, ctx: PartitionContext) -> dict[str, Any]:
        """This partition's candidate pairs, unique, verified by true Jaccard (in bounded chunks:
        shingles read from the scan files by position); the edges kept are written for the driver."""
        from curate.dedup import pairs as candidate

        rows = ctx.read_shuffled("candidates", "pairs", ["a", "b"])
        pairs = np.zeros((0, 2), np.int64)
        if rows is not None and rows.num_rows:
            pairs = candidate.unique_pairs(np.stack([rows.column("a").to_numpy(), rows.column("b").to_numpy()], axis=1))
        found: dict[str, Any] = {"candidate_pairs": len(pairs)}
        if self.verify and len(pairs):
            pairs = pairs[candidate.similarity(ctx.scan_rows(), pairs, VERIFY_SHINGLES) >= self.threshold]
            found["verified_pairs"] = len(pairs)
        write_table(ctx.output("edges"), pa.table({"a": pairs[:, 0], "b": pairs[:, 1]}).cast(EDGES))
        return found

    def members_files(self, ctx: GlobalContext) -> tuple[Path, Path]:
        return ctx.work_dir / "decisions.arrow", ctx.work_dir / "clusters.arrow"

    def decision_files(self, ctx: GlobalContext) -> list[Path]:
        return [self.members_files(ctx)[0]]

    def cluster_lists(self, ctx: GlobalContext) -> list[Path]:
        return [self.members_files(ctx)[1]]

    def similarity(self, scan: ScanRows, pairs: np.ndarray) -> np.ndarray | None:
        """True Jaccard similarity of the pairs' shingle sets (None without `verify`: not stored)."""
        from curate.dedup import pairs as candidate

        if not self.verify:
            return None
        return candidate.similarity(scan, pairs, VERIFY_SHINGLES)
