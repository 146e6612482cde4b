"""Preference pairs for reward modelling and DPO: built from ranked responses, or checked."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, cast

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from curate.arrow_io import read_frame, write_table
from curate.errors import ConfigError
from curate.mapping import to_json
from curate.schema import KINDS
from curate.stages.base import GlobalContext, GlobalStage, RowResult
from curate.stages.generated import emit

RANK_BY = ("score", "rank", "reference_rouge", "source_order", "reward_model", "column")
PAIRING = ("all", "best_vs_worst")
CANDIDATES = pa.schema(
    [
        ("position", pa.int64()),
        ("id", pa.string()),
        ("source", pa.string()),
        ("prompt_key", pa.string()),
        ("prompt", pa.string()),
        ("response", pa.string()),
        ("score", pa.float64()),
        ("reason", pa.string()),
        ("candidate", pa.int32()),
    ]
)
PAIRS = pa.schema(
    [
        ("position", pa.int64()),
        ("key", pa.string()),
        ("reason", pa.string()),
        ("chosen_score", pa.float64()),
        ("rejected_score", pa.float64()),
        ("on_policy", pa.bool_()),
    ]
)
REJECTED_PAIRS = KINDS["preference"].append(pa.field("drop_reason", pa.string()))


def digest(value: Any) -> str:
    return hashlib.sha1(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def text_of(turns: list[dict]) -> str:
    return "\n\n".join(t["content"] for t in turns)


@dataclass
class PreferencePairs(GlobalStage):
    """Build preference pairs from ranked responses, or check ready-made pairs; drop ties,
    duplicates, empty, too short or too long responses, and (optionally) pairs a reward model
    disagrees with.

    Input `preference` rows (hh_rlhf, dpo converters) are checked one by one and kept or dropped.
    Input `chat` rows are candidate responses: the final assistant turn, grouped by the prompt
    before it (across rows and files: Self-Instruct's 6 models answering the same 252 prompts),
    plus any candidates a row carries in meta.responses (ranked_responses converter). Each
    candidate gets a score by `rank_by`: `score` (meta[`score_field`], higher is better; a
    candidate's own score in meta.responses), `rank` (lower is better), `reference_rouge`
    (ROUGE-L F with meta.reference, e.g. Self-Instruct's expert answers), `source_order`
    (position of the row's source in `source_order`, best first), `reward_model` (a local
    sequence-classification model, `reward_model`) or `column` (a typed score column of the rows,
    `score_column`, e.g. the `judge` stage's `judge_score`). `pairing=all` makes every pair of
    differently scored candidates (chosen = higher score); `best_vs_worst` one pair per prompt.
    Candidates whose scores differ by at most `min_score_gap` are ties: no pair. Rows that went
    into a pair are merged into it; the others are dropped with a reason (`no_pair`,
    `duplicate_response`, `empty_response`, `too_short`, `too_long`, `unranked`).

    Checks on every pair: `min_response_chars`..`max_response_chars` for both responses, chosen
    different from rejected (`tie`), no duplicate pair (`duplicate`), the longer response at most
    `max_length_ratio` times the shorter (0: off; long-winded chosen answers teach length bias),
    and, with a `reward_model`, r(chosen) - r(rejected) >= `min_reward_margin`
    (`reward_disagrees`). Scores and margins are kept in meta; the schema is trl's conversational
    preference format (prompt, chosen, rejected).

    On- and off-policy pairs (ready-made pairs): a pair whose meta has `policy` was sampled by
    `best_of_n` from a model (`pipeline=on_policy_pairs`), the others are off-policy.
    `on_policy_fraction` keeps the largest mix with that share of on-policy pairs (Tülu 3 mixed
    on-policy pairs from its own models with off-policy ones), the pairs left out of the larger
    side dropped as `mix_ratio` in a seeded random order.

    Defaults: every pair (`all`: k responses give up to k(k-1)/2 pairs; `best_vs_worst` gives one
    pair per prompt, with the largest margin), ranked by meta.score, any score difference counts,
    responses of 1..20,000 characters, no length-ratio cap, no reward model (both opt-in:
    they need a judgement of your data) and no on/off-policy ratio (every pair kept).
    """

    config_name: ClassVar[str] = "preference_pairs"
    requires: ClassVar[tuple[str, ...]] = ("id", "source", "meta")

    rank_by: str = "score"
    score_field: str = "score"
    score_column: str = "judge_score"
    source_order: list[str] = field(default_factory=list)
    pairing: str = "all"
    min_score_gap: float = 0.0
    min_response_chars: int = 1
    max_response_chars: int = 20_000
    max_length_ratio: float = 0.0
    reward_model: str = ""
    min_reward_margin: float = 0.0
    on_policy_fraction: Optional[float] = None

    def required_columns(self) -> tuple[str, ...]:
        return self.requires + ((self.score_column,) if self.rank_by == "column" else ())

    def validate(self) -> None:
        if self.rank_by not in RANK_BY:
            raise ValueError(f"rank_by: '{self.rank_by}' is not one of: {', '.join(RANK_BY)}")
        if self.pairing not in PAIRING:
            raise ValueError(f"pairing: '{self.pairing}' is not one of: {', '.join(PAIRING)}")
        if self.rank_by == "reward_model" and not self.reward_model:
            raise ValueError("reward_model: rank_by=reward_model needs a local reward model folder")
        if self.rank_by == "source_order" and not self.source_order:
            raise ValueError("source_order: rank_by=source_order needs the sources, best first")
        if not 0 <= self.min_response_chars <= self.max_response_chars:
            raise ValueError("min_response_chars: must be >= 0 and <= max_response_chars")
        if self.max_length_ratio and self.max_length_ratio < 1:
            raise ValueError("max_length_ratio: 0 (off) or >= 1")
        if self.on_policy_fraction is not None and not 0 <= self.on_policy_fraction <= 1:
            raise ValueError("on_policy_fraction: a share of the pairs, within [0, 1] (null: no ratio)")

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        if "chosen" in schema.names and "rejected" in schema.names:
            return schema
        if "messages" in schema.names:
            return KINDS["preference"]
        raise ConfigError(
            f"stages.{self.name}: needs preference rows (prompt, chosen, rejected) or chat rows "
            f"(messages) of candidate responses; the input has: {', '.join(schema.names)}"
        )

    def setup(self) -> None:
        self.scorer = None
        if self.reward_model:
            from curate.sft.scorers import RewardModelScorer

            self.scorer = RewardModelScorer(self.reward_model)
        self.rouge = None
        if self.rank_by == "reference_rouge":
            from rouge_score import rouge_scorer

            self.rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    # -- checks shared by both modes -----------------------------------------------------------------
    def response_problem(self, text: str) -> str | None:
        if not text.strip():
            return "empty_response"
        if len(text) < self.min_response_chars:
            return "too_short"
        if len(text) > self.max_response_chars:
            return "too_long"
        return None

    def pair_problem(self, chosen: str, rejected: str) -> str | None:
        problem = self.response_problem(chosen) or self.response_problem(rejected)
        if problem:
            return problem
        if chosen.strip() == rejected.strip():
            return "tie"
        if self.max_length_ratio:
            longer, shorter = max(len(chosen), len(rejected)), min(len(chosen), len(rejected))
            if longer > self.max_length_ratio * shorter:
                return "length_ratio"
        return None

    def margins(self, prompts: list[list[dict]], chosen: list[list[dict]], rejected: list[list[dict]]) -> list:
        if self.scorer is None:
            return [None] * len(prompts)
        good = self.scorer.score([p + c for p, c in zip(prompts, chosen)])
        bad = self.scorer.score([p + r for p, r in zip(prompts, rejected)])
        return list(zip(good.tolist(), bad.tolist()))

    # -- scan ------------------------------------------------------------------------------------------
    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch:
        if "chosen" in batch.schema.names:
            return self.scan_pairs(batch, positions)
        return self.scan_candidates(batch, positions)

    def scan_pairs(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch:
        rows = batch.select(["prompt", "chosen", "rejected"]).to_pylist()
        metas = batch.column("meta").to_pylist()
        scores = self.margins([r["prompt"] for r in rows], [r["chosen"] for r in rows], [r["rejected"] for r in rows])
        out = []
        for position, row, score, meta in zip(positions.tolist(), rows, scores, metas):
            reason = self.pair_problem(text_of(row["chosen"]), text_of(row["rejected"]))
            if reason is None and score is not None and score[0] - score[1] < self.min_reward_margin:
                reason = "reward_disagrees"
            out.append(
                {
                    "position": position,
                    "key": digest(row),
                    "reason": reason,
                    "chosen_score": score[0] if score else None,
                    "rejected_score": score[1] if score else None,
                    "on_policy": "policy" in (orjson.loads(meta) if meta else {}),
                }
            )
        return pa.RecordBatch.from_pylist(out, schema=PAIRS)

    def scan_candidates(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch:
        score_columns = [self.score_column] if self.rank_by == "column" else []
        rows = batch.select(["id", "source", "messages", "meta", *score_columns]).to_pylist()
        out = []
        for position, row in zip(positions.tolist(), rows):
            messages, meta = row["messages"], orjson.loads(row["meta"]) if row["meta"] else {}
            prompt = messages[:-1] if messages[-1]["role"] == "assistant" else messages
            base = {
                "position": position,
                "id": row["id"],
                "source": row["source"] or "",
                "prompt_key": digest(prompt),
                "prompt": orjson.dumps(prompt).decode(),
            }
            responses = meta.get("responses")
            if isinstance(responses, list) and responses:  # k ranked candidates carried by one row
                for index, candidate in enumerate(responses):
                    score = candidate.get("score", -candidate["rank"] if "rank" in candidate else None)
                    out.append(
                        {
                            **base,
                            "response": candidate["content"],
                            "candidate": index,
                            "score": self.candidate_score(row, meta, candidate["content"], score),
                        }
                    )
            else:
                out.append(
                    {
                        **base,
                        "response": messages[-1]["content"] if messages[-1]["role"] == "assistant" else "",
                        "candidate": -1,
                        "score": self.candidate_score(row, meta, messages[-1]["content"]),
                    }
                )
        for item in out:
            item["reason"] = self.response_problem(item["response"]) or (
                "unranked" if item["score"] is None or np.isnan(item["score"]) else None
            )
        if self.rank_by == "reward_model":
            assert self.scorer is not None  # setup loads it: validate requires reward_model for this rank_by
            usable = [i for i, item in enumerate(out) if item["reason"] in (None, "unranked")]
            scores: np.ndarray | list[float] = (
                self.scorer.score(
                    [
                        orjson.loads(out[i]["prompt"]) + [{"role": "assistant", "content": out[i]["response"]}]
                        for i in usable
                    ]
                )
                if usable
                else []
            )
            for i, score in zip(usable, scores):
                out[i]["score"], out[i]["reason"] = float(score), None
        return pa.RecordBatch.from_pylist(out, schema=CANDIDATES)

    def candidate_score(self, row: dict, meta: dict, response: str, own: float | None = None) -> float | None:
        if self.rank_by == "score":
            value = own if own is not None else meta.get(self.score_field)
        elif self.rank_by == "rank":
            value = own if own is not None else (-meta["rank"] if isinstance(meta.get("rank"), (int, float)) else None)
        elif self.rank_by == "reference_rouge":
            reference = meta.get("reference")
            assert self.rouge is not None  # setup creates it for this rank_by
            value = self.rouge.score(reference, response)["rougeL"].fmeasure if isinstance(reference, str) else None
        elif self.rank_by == "source_order":
            value = -self.source_order.index(row["source"]) if row["source"] in self.source_order else None
        elif self.rank_by == "column":
            value = own if own is not None else row[self.score_column]
        else:
            value = None  # reward model: scored per batch
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    # -- resolve -----------------------------------------------------------------------------------------
    def resolve(self, ctx: GlobalContext) -> None:
        state = read_frame(ctx.scan_files, PAIRS).sort("position")  # nothing scanned: no pairs to check
        if "key" in state.columns:
            self.stat_set(**self.resolve_pairs(ctx, state))
        elif self.on_policy_fraction is not None:
            raise ConfigError(
                f"stages.{self.name}.on_policy_fraction: mixes ready-made pairs; the input holds candidate responses"
            )
        else:
            self.stat_set(**self.resolve_candidates(ctx, state))

    def resolve_pairs(self, ctx: GlobalContext, state: pl.DataFrame) -> dict[str, Any]:
        first = state.with_columns(dup=pl.col("key").is_duplicated() & (pl.int_range(pl.len()).over("key") > 0))
        decided = first.with_columns(
            reason=pl.when(pl.col("reason").is_not_null())
            .then(pl.col("reason"))
            .when(pl.col("dup"))
            .then(pl.lit("duplicate"))
            .otherwise(pl.lit(None, pl.String))
        )
        mix: dict[str, Any] = {}
        if self.on_policy_fraction is not None:
            decided, mix = self.mix(decided, ctx.seed)
        write_table(
            ctx.work_dir / "decisions.arrow",
            decided.select("position", "reason", "chosen_score", "rejected_score").to_arrow(),
        )
        margins = (decided["chosen_score"] - decided["rejected_score"]).drop_nulls()
        return {
            "mode": "check pairs",
            "pairs": decided.height,
            "kept": int(decided["reason"].is_null().sum()),
            "dropped": dict(sorted(decided["reason"].drop_nulls().value_counts().iter_rows())),
            **({"reward_margin": describe(margins)} if len(margins) else {}),
            **({"mix": mix} if mix else {}),
        }

    def mix(self, decided: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, dict[str, Any]]:
        """Keep the largest set of the kept pairs with `on_policy_fraction` of on-policy ones; the
        rest of the larger side is dropped as `mix_ratio`, in a seeded random order."""
        fraction = cast(float, self.on_policy_fraction)
        kept = decided.filter(pl.col("reason").is_null())
        on, off = int(kept["on_policy"].sum()), int((~kept["on_policy"]).sum())
        total = on + off if fraction in (0.0, 1.0) else int(min(on / fraction, off / (1 - fraction)))
        keep_on = on if fraction == 1.0 else min(on, round(fraction * total))
        keep_off = off if fraction == 0.0 else min(off, total - keep_on)
        if fraction == 0.0:
            keep_on = 0
        if fraction == 1.0:
            keep_off = 0
        order = pl.Series([int(digest([seed, key])[:15], 16) for key in decided["key"].to_list()])
        ranked = decided.with_columns(order=order).with_columns(
            nth=pl.col("order").rank("ordinal").over(["on_policy", pl.col("reason").is_null()]) - 1
        )
        over = pl.col("reason").is_null() & (
            (pl.col("on_policy") & (pl.col("nth") >= keep_on)) | (~pl.col("on_policy") & (pl.col("nth") >= keep_off))
        )
        decided = ranked.with_columns(reason=pl.when(over).then(pl.lit("mix_ratio")).otherwise(pl.col("reason")))
        return decided.drop("order", "nth"), {
            "on_policy_fraction": fraction,
            "on_policy": keep_on,
            "off_policy": keep_off,
            "available": {"on_policy": on, "off_policy": off},
        }

    def resolve_candidates(self, ctx: GlobalContext, state: pl.DataFrame) -> dict[str, Any]:
        problems: dict[int, list[str]] = {}  # per row, its candidates' problems (a row may carry several)
        for position, reason in zip(state["position"].to_list(), state["reason"].to_list()):
            if reason:
                problems.setdefault(position, []).append(reason)
        usable: set[int] = set()  # rows with at least one valid, distinct candidate
        built, rejected_pairs, seen_pairs = [], [], set()
        ties = 0
        for (key,), group in state.group_by("prompt_key", maintain_order=True):
            valid = group.filter(pl.col("reason").is_null())
            first_text: dict[str, int] = {}
            candidates = []
            for item in valid.iter_rows(named=True):
                text = item["response"].strip()
                if text in first_text:  # the same answer twice: keep the first
                    problems.setdefault(item["position"], []).append("duplicate_response")
                    continue
                first_text[text] = item["position"]
                usable.add(item["position"])
                candidates.append(item)
            candidates.sort(key=lambda c: (-c["score"], c["position"], c["candidate"]))
            made = self.make_pairs(candidates)
            ties += made[1]
            for good, bad in made[0]:
                prompt = orjson.loads(good["prompt"])
                chosen = [{"role": "assistant", "content": good["response"]}]
                rejected = [{"role": "assistant", "content": bad["response"]}]
                meta = {
                    "chosen_id": good["id"],
                    "rejected_id": bad["id"],
                    "chosen_score": good["score"],
                    "rejected_score": bad["score"],
                    "chosen_source": good["source"],
                    "rejected_source": bad["source"],
                    "rank_by": self.rank_by,
                }
                row = {
                    "id": f"{key[:16]}-{good['position']}.{good['candidate']}-{bad['position']}.{bad['candidate']}",
                    "prompt": prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "source": good["source"]
                    if good["source"] == bad["source"]
                    else f"{good['source']}>{bad['source']}",
                    "meta": to_json(meta),
                }
                problem = self.pair_problem(good["response"], bad["response"])
                pair_key = digest([prompt, chosen, rejected])
                if problem is None and pair_key in seen_pairs:
                    problem = "duplicate"
                seen_pairs.add(pair_key)
                if problem is None:
                    built.append((row, (good["position"], bad["position"])))
                else:
                    rejected_pairs.append({**row, "drop_reason": problem})
        if self.scorer is not None and self.rank_by != "reward_model" and built:
            built, disagreeing = self.check_with_reward_model(built)
            rejected_pairs += disagreeing
        pairs = [row for row, _ in built]
        used = {position for _, positions in built for position in positions}
        decisions = []
        for position in sorted(set(state["position"].to_list())):
            if position in used:
                decisions.append((position, "merged"))
            elif position in usable or position not in problems:
                decisions.append((position, "no_pair"))
            else:
                decisions.append((position, problems[position][0]))
        write_table(
            ctx.work_dir / "decisions.arrow",
            pl.DataFrame(decisions, schema={"position": pl.Int64, "reason": pl.String}, orient="row").to_arrow(),
        )
        write_table(ctx.work_dir / "pairs.arrow", pa.Table.from_pylist(pairs, schema=KINDS["preference"]))
        write_table(ctx.work_dir / "rejected_pairs.arrow", pa.Table.from_pylist(rejected_pairs, schema=REJECTED_PAIRS))
        drops: dict[str, int] = {}
        for row in rejected_pairs:
            drops[row["drop_reason"]] = drops.get(row["drop_reason"], 0) + 1
        candidates_per_prompt = state.group_by("prompt_key").len()["len"]
        return {
            "mode": "build pairs",
            "rank_by": self.rank_by,
            "pairing": self.pairing,
            "candidates": state.height,
            "prompts": candidates_per_prompt.len(),
            "candidates_per_prompt": describe(candidates_per_prompt.cast(pl.Float64)),
            "pairs": len(pairs),
            "tied_pairs_skipped": ties,
            "pairs_dropped": dict(sorted(drops.items())),
            "score_margin": describe(
                pl.Series(
                    [json_meta(p)["chosen_score"] - json_meta(p)["rejected_score"] for p in pairs], dtype=pl.Float64
                )
            )
            if pairs
            else {},
        }

    def make_pairs(self, ranked: list[dict]) -> tuple[list[tuple[dict, dict]], int]:
        """(pairs (better, worse), ties skipped) from candidates sorted best first."""
        if len(ranked) < 2:
            return [], 0
        if self.pairing == "best_vs_worst":
            best, worst = ranked[0], ranked[-1]
            return ([(best, worst)], 0) if best["score"] - worst["score"] > self.min_score_gap else ([], 1)
        pairs, ties = [], 0
        for i, good in enumerate(ranked):
            for bad in ranked[i + 1 :]:
                if good["score"] - bad["score"] > self.min_score_gap:
                    pairs.append((good, bad))
                else:
                    ties += 1
        return pairs, ties

    def check_with_reward_model(self, built: list[tuple[dict, tuple]]) -> tuple[list[tuple[dict, tuple]], list[dict]]:
        """Pairs the reward model agrees with (margin >= min_reward_margin), and the others as rejected rows."""
        rows = [row for row, _ in built]
        scores = self.margins([r["prompt"] for r in rows], [r["chosen"] for r in rows], [r["rejected"] for r in rows])
        kept, dropped = [], []
        for (row, positions), (good, bad) in zip(built, scores):
            row = {**row, "meta": to_json({**json_meta(row), "reward_chosen": good, "reward_rejected": bad})}
            if good - bad < self.min_reward_margin:
                dropped.append({**row, "drop_reason": "reward_disagrees"})
            else:
                kept.append((row, positions))
        return kept, dropped

    # -- apply and generate --------------------------------------------------------------------------------
    def load(self, ctx: GlobalContext) -> None:
        self.work_dir = ctx.work_dir
        path = ctx.work_dir / "decisions.arrow"
        table = read_frame([path]) if path.is_file() else None
        self.decisions = {} if table is None else {row["position"]: row for row in table.iter_rows(named=True)}

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        found = [self.decisions.get(p, {"reason": "no_pair"}) for p in positions.tolist()]
        if "chosen" in batch.schema.names:  # checking pairs: keep or drop each row, scores into meta
            keep = [d["reason"] is None for d in found]
            metas = batch.column("meta").to_pylist()
            if self.reward_model:
                metas = [
                    to_json(
                        {
                            **(orjson.loads(m) if m else {}),
                            "reward_chosen": d.get("chosen_score"),
                            "reward_rejected": d.get("rejected_score"),
                        }
                    )
                    for m, d in zip(metas, found)
                ]
                batch = batch.set_column(batch.schema.get_field_index("meta"), "meta", pa.array(metas, pa.string()))
            dropped_index = [i for i, k in enumerate(keep) if not k]
            dropped = None
            if dropped_index:
                dropped = batch.take(pa.array(dropped_index)).append_column(
                    "drop_reason", pa.array([found[i]["reason"] for i in dropped_index], pa.string())
                )
            return RowResult(kept=batch.filter(pa.array(keep)), dropped=dropped)
        merged = [d["reason"] == "merged" for d in found]
        dropped_index = [i for i, m in enumerate(merged) if not m]
        dropped = None
        if dropped_index:
            dropped = batch.take(pa.array(dropped_index)).append_column(
                "drop_reason", pa.array([found[i]["reason"] for i in dropped_index], pa.string())
            )
        self.stat_update("consumed", sum(merged))
        return RowResult(kept=pa.RecordBatch.from_pylist([], schema=KINDS["preference"]), dropped=dropped)

    def generate(self, task: int, tasks: int) -> Iterator[RowResult]:
        work = Path(self.work_dir)
        if not (work / "pairs.arrow").is_file():
            return iter(())
        return emit(work / "pairs.arrow", work / "rejected_pairs.arrow", KINDS["preference"], task, tasks)


def json_meta(row: dict) -> dict:
    return orjson.loads(row["meta"])


def describe(values: pl.Series) -> dict[str, float]:
    if values.len() == 0:
        return {}
    # polars types aggregates as any Python literal (or None): these are numbers
    low, p50, mean, high = cast(
        tuple[float, float, float, float], (values.min(), values.median(), values.mean(), values.max())
    )
    return {
        "min": round(float(low), 4),
        "p50": round(float(p50), 4),
        "mean": round(float(mean), 4),
        "max": round(float(high), 4),
    }
