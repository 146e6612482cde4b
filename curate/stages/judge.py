"""LLM-as-judge ratings of chat responses, as typed score columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import pyarrow as pa
import pyarrow.compute as pc

from curate.llm import LLMConfig, make_llm
from curate.mapping import to_json
from curate.sft.judge import ULTRAFEEDBACK_ASPECTS, Judge, rubric_folder
from curate.stages.base import FilterStage, Resources


@dataclass
class JudgeStage(FilterStage):
    """Rate each chat row's final assistant response with an LLM judge on named aspects, as
    UltraFeedback (Cui et al. 2023) did with GPT-4: one request per aspect, the rubric of each in
    `templates/<aspect>.j2` (default `ultrafeedback`: helpfulness, honesty, instruction following,
    truthfulness, paraphrasing UltraFeedback's 1-5 rubrics; a folder of your own holds your rubric,
    e.g. `templates=my_rubrics aspects=[clarity]`), the conversation before the response as the
    instruction. Greedy (temperature 0), up to `max_new_tokens` (256) per answer; the judge is `llm`
    (config group conf/llm/; a chat model behind an OpenAI-compatible server in practice).

    Columns: `<prefix><aspect>` (float32, the rating), `<prefix>score` (the mean over the aspects),
    `<prefix>answers` (JSON: the judge's raw answer per aspect, so every rating can be checked).
    An answer without a single "Rating: <n>" within `scale_min`..`scale_max` (1..5) is a parse
    failure: its rating is null and the row is dropped as `judge_unparsed` (its raw answers kept
    in the rejects), counted per aspect (`unparsed_<aspect>`); a conversation without an assistant
    turn is dropped as `no_response`, unrated. With `min_score`, rows whose mean
    rating is lower are dropped as `judge_low_score` (LaMDA filtered its dialogs this way with its
    quality classifiers); by default every parsed row is kept, its scores for later stages:
    `preference_pairs` (`rank_by=column score_column=judge_score`), `lima_select`
    (`score_column=judge_score`).
    """

    config_name: ClassVar[str] = "judge"
    resources: ClassVar[Resources] = Resources(
        memory_gb=0.5
    )  # measured: benchmarks/results/stage_memory.json (SmolLM2-135M: 424 MB)
    requires: ClassVar[tuple[str, ...]] = ("id", "messages")

    aspects: list[str] = field(default_factory=lambda: list(ULTRAFEEDBACK_ASPECTS))
    templates: str = "ultrafeedback"
    prefix: str = "judge_"
    scale_min: float = 1.0
    scale_max: float = 5.0
    max_new_tokens: int = 256
    temperature: float = 0.0
    min_score: Optional[float] = None
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(mode="chat"))

    def validate(self) -> None:
        rubric_folder(self.templates, self.aspects)
        if not self.prefix or not self.prefix.replace("_", "").isalnum():
            raise ValueError("prefix: letters, digits and _ (the columns are <prefix><aspect>)")
        if self.scale_min >= self.scale_max:
            raise ValueError("scale_min: must be < scale_max")
        if self.max_new_tokens < 1 or self.temperature < 0:
            raise ValueError("max_new_tokens: must be >= 1 (and temperature >= 0)")
        try:
            self.llm.validate()
        except ValueError as error:
            raise ValueError(str(error)) from None

    def provided_columns(self) -> dict[str, pa.DataType]:
        columns = {f"{self.prefix}{aspect}": pa.float32() for aspect in self.aspects}
        return {**columns, f"{self.prefix}score": pa.float32(), f"{self.prefix}answers": pa.string()}

    def setup(self) -> None:
        self.judge = Judge(
            make_llm(self.llm),
            rubric_folder(self.templates, self.aspects),
            self.aspects,
            (self.scale_min, self.scale_max),
            self.max_new_tokens,
            self.temperature,
        )

    def teardown(self) -> None:
        judge = self.__dict__.pop("judge", None)
        if judge is not None:
            judge.llm.close()

    def score(self, batch: pa.RecordBatch) -> dict[str, Any]:
        conversations = batch.column("messages").to_pylist()
        ids = batch.column("id").to_pylist()
        # the final assistant turn is the response; a conversation without one is not rated
        last = [max((i for i, m in enumerate(c) if m["role"] == "assistant"), default=-1) for c in conversations]
        rated = [row for row, i in enumerate(last) if i >= 0]
        verdicts = dict(
            zip(
                rated,
                self.judge.rate(
                    [conversations[r][: last[r]] for r in rated],
                    [conversations[r][last[r]]["content"] for r in rated],
                    [ids[r] for r in rated],
                ),
            )
        )
        columns: dict[str, Any] = {
            f"{self.prefix}{a}": [verdicts[r].ratings[a] if r in verdicts else None for r in range(len(ids))]
            for a in self.aspects
        }
        columns[f"{self.prefix}score"] = [verdicts[r].score if r in verdicts else None for r in range(len(ids))]
        columns[f"{self.prefix}answers"] = [
            to_json(verdicts[r].answers) if r in verdicts else None for r in range(len(ids))
        ]
        self.stat_update("judged", len(verdicts))
        for aspect in self.aspects:
            self.stat_update(f"unparsed_{aspect}", sum(v.ratings[aspect] is None for v in verdicts.values()))
        self.stat_set(judge=self.judge.describe())
        return columns

    def decide(self, batch: pa.RecordBatch) -> pa.Array:
        score = batch.column(f"{self.prefix}score")
        reasons = pc.if_else(
            pc.is_null(batch.column(f"{self.prefix}answers")),
            pa.scalar("no_response"),
            pc.if_else(pc.is_null(score), pa.scalar("judge_unparsed"), pa.scalar(None, pa.string())),
        )
        if self.min_score is not None:
            low = pc.fill_null(pc.less(score, pa.scalar(self.min_score, pa.float32())), False)
            reasons = pc.if_else(low, pa.scalar("judge_low_score"), reasons)
        return reasons
