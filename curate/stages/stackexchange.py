"""Stack Exchange questions joined with their best answer: post rows → `chat` rows."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, cast

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from curate.arrow_io import read_frame, write_table
from curate.errors import ConfigError
from curate.mapping import to_json
from curate.schema import KINDS
from curate.stages.base import GlobalContext, GlobalStage, RowResult

QUESTION, ANSWER = 1, 2
SCAN_SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("dump", pa.string()),
        ("post_type", pa.int32()),
        ("post_id", pa.string()),
        ("parent_id", pa.string()),
        ("accepted_answer_id", pa.string()),
        ("score", pa.int64()),
        ("closed", pa.bool_()),
        ("empty", pa.bool_()),
        ("answer_text", pa.string()),
    ]
)


def numeric_id(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Int64, strict=False)


@dataclass
class StackExchangeQA(GlobalStage):
    """Join each Stack Exchange question with its best answer into a `chat` row (user: title and
    question; assistant: the answer), from the post rows of `input.records=stackexchange_posts`.

    The answer is the accepted one when `prefer_accepted` and it scores at least
    `min_answer_score`, else the top-voted answer above that bar (ties: the older post). LIMA took
    the top answer of highly voted questions and required a strongly positive score; here the bar
    defaults to 1 (a positive score) because small sites have few votes: rank on votes later with
    `lima_select`, which reads the scores kept in `meta` (question_score, answer_score, accepted,
    view_count, answer_count, tags). Closed questions (duplicates, off-topic) are dropped by default.

    Drop reasons: questions `no_answer`, `answer_score_too_low`, `question_score_too_low`,
    `closed_question`, `empty_question`; answers `not_best_answer`, `orphan_answer` (its
    question is not in the input); other posts (tag wikis, ...) `not_a_question_or_answer`. The
    chosen answer is merged into its question's row (counted as merged, not dropped).
    """

    config_name: ClassVar[str] = "stackexchange_qa"
    requires: ClassVar[tuple[str, ...]] = (
        "id",
        "text",
        "source",
        "meta",
        "post_type",
        "parent_id",
        "accepted_answer_id",
        "score",
        "view_count",
        "answer_count",
        "title",
        "tags",
        "dump",
    )

    prefer_accepted: bool = True
    min_answer_score: int = 1
    min_question_score: int = 0
    drop_closed: bool = True
    title_in_prompt: bool = True  # the user turn is "title\n\nbody" (LIMA used self-contained titles)

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        return KINDS["chat"]

    # -- scan: compact rows for the join (answer texts ride along, on disk) ----------------------
    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch:
        post_type = batch.column("post_type").to_pylist()
        metas = batch.column("meta").to_pylist()
        texts = batch.column("text").to_pylist()
        closed = [t == QUESTION and bool(m) and "ClosedDate" in orjson.loads(m) for t, m in zip(post_type, metas)]
        return pa.RecordBatch.from_arrays(
            [
                pa.array(positions, pa.int64()),
                batch.column("dump"),
                batch.column("post_type"),
                batch.column("id"),
                batch.column("parent_id"),
                batch.column("accepted_answer_id"),
                batch.column("score"),
                pa.array(closed, pa.bool_()),
                pa.array([not (t or "").strip() for t in texts], pa.bool_()),
                pa.array([x if t == ANSWER else None for x, t in zip(texts, post_type)], pa.string()),
            ],
            schema=SCAN_SCHEMA,
        )

    # -- resolve: pick each question's answer, write per-task decisions ----------------------------
    def resolve(self, ctx: GlobalContext) -> None:
        out = ctx.work_dir / "decisions"
        out.mkdir(parents=True, exist_ok=True)
        scanned = read_frame(ctx.scan_files, SCAN_SCHEMA)
        repeated = scanned.filter(pl.struct("dump", "post_id").is_duplicated())
        if repeated.height:
            dump = repeated["dump"][0]
            raise ConfigError(
                f"stages.{self.name}: post id {repeated['post_id'][0]} appears twice in '{dump}': two dumps with the "
                "same folder and file name in one run (post ids repeat across sites); keep each site's dump in a "
                "folder named after the site (dumps/<site>/Posts.xml), or run one site at a time"
            )
        posts = scanned.lazy()
        questions = posts.filter(pl.col("post_type") == QUESTION).select(
            "dump",
            pl.col("position").alias("q_position"),
            pl.col("post_id").alias("q_id"),
            pl.col("score").alias("q_score"),
            "accepted_answer_id",
            "closed",
            pl.col("empty").alias("q_empty"),
        )
        answers = posts.filter(pl.col("post_type") == ANSWER).select(
            "dump", "position", "post_id", "parent_id", "score", "answer_text", "empty"
        )
        linked = answers.join(questions, left_on=["dump", "parent_id"], right_on=["dump", "q_id"], how="left")
        eligible = linked.filter(
            pl.col("q_position").is_not_null() & ~pl.col("empty") & (pl.col("score") >= self.min_answer_score)
        )
        accepted = (pl.col("post_id") == pl.col("accepted_answer_id")).fill_null(False)
        if not self.prefer_accepted:
            accepted = pl.lit(False)
        best = (
            eligible.with_columns(
                is_accepted=(pl.col("post_id") == pl.col("accepted_answer_id")).fill_null(False),
                rank_accepted=accepted.cast(pl.Int8),
                id_num=numeric_id("post_id"),
            )
            .sort(
                ["q_position", "rank_accepted", "score", "id_num"],
                descending=[False, True, True, False],
                maintain_order=True,
            )
            .group_by("q_position", maintain_order=True)
            .first()
            .select(
                "q_position",
                pl.col("position").alias("a_position"),
                pl.col("post_id").alias("answer_id"),
                pl.col("score").alias("answer_score"),
                "is_accepted",
                "answer_text",
            )
        )
        answer_counts = answers.group_by("dump", "parent_id").agg(pl.len().alias("n_answers"))
        q = (
            questions.join(best, on="q_position", how="left")
            .join(answer_counts, left_on=["dump", "q_id"], right_on=["dump", "parent_id"], how="left")
            .with_columns(
                reason=pl.when(pl.col("q_empty"))
                .then(pl.lit("empty_question"))
                .when(self.drop_closed & pl.col("closed"))
                .then(pl.lit("closed_question"))
                .when(pl.col("q_score") < self.min_question_score)
                .then(pl.lit("question_score_too_low"))
                .when(pl.col("n_answers").is_null())
                .then(pl.lit("no_answer"))
                .when(pl.col("a_position").is_null())
                .then(pl.lit("answer_score_too_low"))
                .otherwise(pl.lit(None, pl.String))
            )
            .collect()
        )
        chosen = q.filter(pl.col("reason").is_null()).select(pl.col("a_position").alias("position"))
        a = (
            linked.select("position", "q_position")
            .collect()
            .join(chosen.with_columns(merged=pl.lit(True)), on="position", how="left")
            .with_columns(
                reason=pl.when(pl.col("q_position").is_null())
                .then(pl.lit("orphan_answer"))
                .when(pl.col("merged"))
                .then(pl.lit("merged"))
                .otherwise(pl.lit("not_best_answer"))
            )
        )
        decisions = (
            pl.concat(
                [
                    q.select(
                        pl.col("q_position").alias("position"),
                        "reason",
                        "answer_id",
                        "answer_score",
                        "is_accepted",
                        "answer_text",
                    ),
                    a.select(
                        "position",
                        "reason",
                        pl.lit(None, pl.String).alias("answer_id"),
                        pl.lit(None, pl.Int64).alias("answer_score"),
                        pl.lit(None, pl.Boolean).alias("is_accepted"),
                        pl.lit(None, pl.String).alias("answer_text"),
                    ),
                ]
            )
            .with_columns(task=pl.col("position") // (1 << 32))
            .sort("position")
        )
        for (task,), part in decisions.partition_by("task", as_dict=True).items():
            write_table(out / f"task-{task:05d}.arrow", part.drop("task").to_arrow())
        kept = q.filter(pl.col("reason").is_null())
        self.stat_set(
            questions=q.height,
            answers=a.height,
            pairs=kept.height,
            accepted_answers=int(kept["is_accepted"].sum()),
            question_drops=dict(sorted(q["reason"].drop_nulls().value_counts().iter_rows())),
            answer_score=describe(kept["answer_score"]),
        )

    # -- apply: question rows become chat rows -----------------------------------------------------
    def load(self, ctx: GlobalContext) -> None:
        self.decisions_dir = ctx.work_dir / "decisions"
        self.cached_task: int | None = None

    def task_decisions(self, task: int) -> dict[int, dict]:
        if self.cached_task != task:
            path = Path(self.decisions_dir) / f"task-{task:05d}.arrow"
            table = read_frame([path]) if path.is_file() else None
            self.cached = {row["position"]: row for row in table.iter_rows(named=True)} if table is not None else {}
            self.cached_task = task
        return self.cached

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        decisions = self.task_decisions(int(positions[0] >> 32)) if len(positions) else {}
        kept, dropped, reasons, consumed = [], [], [], 0
        for index, (row, position) in enumerate(zip(batch.to_pylist(), positions.tolist())):
            decision = decisions.get(position)
            reason = "not_a_question_or_answer" if decision is None else decision["reason"]
            if reason == "merged":
                consumed += 1
            elif reason is None:
                assert decision is not None  # a row without a decision has a reason
                kept.append(self.chat_row(row, decision))
            else:
                dropped.append(index)
                reasons.append(reason)
        rejects = None
        if dropped:
            rejects = batch.take(pa.array(dropped)).append_column("drop_reason", pa.array(reasons, pa.string()))
        self.stat_update("consumed", consumed)
        return RowResult(kept=pa.RecordBatch.from_pylist(kept, schema=KINDS["chat"]), dropped=rejects)

    def chat_row(self, question: dict, decision: dict) -> dict:
        title = (question["title"] or "").strip()
        prompt = f"{title}\n\n{question['text']}" if self.title_in_prompt and title else question["text"]
        meta = {
            "question_id": question["id"],
            "answer_id": decision["answer_id"],
            "question_score": question["score"],
            "answer_score": decision["answer_score"],
            "accepted": bool(decision["is_accepted"]),
            "view_count": question["view_count"],
            "answer_count": question.get("answer_count"),
            "title": title,
            "tags": question["tags"],
        }
        site = posixpath.dirname(question["dump"] or "")
        meta["site"] = site or question["dump"]
        return {
            "id": f"{question['source']}/{site + '/' if site else ''}{question['id']}",
            "messages": [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": decision["answer_text"]},
            ],
            "source": question["source"],
            "meta": to_json(meta),
        }


def describe(values: pl.Series) -> dict[str, float]:
    if values.len() == 0:
        return {}
    # polars types aggregates as any Python literal (or None): these are numbers
    low, p50, mean, high = cast(
        tuple[float, float, float, float], (values.min(), values.median(), values.mean(), values.max())
    )
    return {"min": float(low), "p50": float(p50), "mean": round(float(mean), 3), "max": float(high)}
