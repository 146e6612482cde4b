"""Best-of-N sampling (rejection sampling): N responses per prompt from a policy, scored by one or
more scorers, the best kept as a chat row, or best and worst as a preference pair."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from curate.arrow_io import StreamFile, read_frame, read_table
from curate.errors import ConfigError
from curate.llm import LLM, GenerationRequest, LLMConfig, make_llm
from curate.llm.base import derived_seed
from curate.mapping import to_json
from curate.runfolder import read_model_lineage
from curate.schema import KINDS
from curate.sft.checkpoint import Checkpoint
from curate.sft.scorers import Scorer, ScorerConfig
from curate.stages.base import GlobalContext, GlobalStage, Resources, RowResult

log = logging.getLogger(__name__)

OUTPUTS = ("chat", "preference")
PROMPTS = pa.schema(
    [
        ("position", pa.int64()),
        ("id", pa.string()),
        ("source", pa.string()),
        ("prompt", pa.string()),  # the conversation to answer, JSON
        ("meta", pa.string()),
        ("problem", pa.string()),  # why the row has no prompt to sample from (null: it has one)
    ]
)
SAMPLE_COLUMNS = (
    "position",
    "id",
    "sample",
    "text",
    "finish_reason",
    "rank_score",
    "problem",
    "chosen",
    "rejected",
    "notes",
)


def prompt_of(messages: list[dict]) -> list[dict]:
    """The conversation before its last assistant turn (all of it when it ends with a user turn)."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
    return messages[:last] if last == len(messages) - 1 else messages


@dataclass
class Selection:
    """What the rule made of one prompt's samples."""

    rank: np.ndarray  # the ranking score of each sample (NaN where a weighted score is missing)
    problems: list[str | None]  # per sample: why it may not be chosen (None: eligible)
    chosen: int | None = None
    rejected: int | None = None
    reason: str | None = None  # why the prompt gives no row (None: it gives one)


def select(
    texts: Sequence[str],
    scores: dict[str, np.ndarray],
    scorers: Sequence[ScorerConfig],
    pairs: bool = False,
    min_margin: float = 0.0,
) -> Selection:
    """The selection rule. A sample is eligible when it is not empty, every scorer scored it, and
    every score is within its scorer's `minimum` / `maximum`; the chosen sample is the eligible one
    with the highest ranking score, sum(weight x score) (ties: the first sample). For a pair, the
    rejected sample is the lowest-ranked scored sample whose text differs from the chosen one, a
    sample outside the thresholds ranking below every eligible one; two eligible samples must
    differ by more than `min_margin`."""
    rank = np.zeros(len(texts))
    for config in scorers:
        if config.weight:
            rank = rank + config.weight * scores[config.name]
    problems: list[str | None] = []
    for i, text in enumerate(texts):
        problem = "empty_response" if not text.strip() else None
        for config in scorers:
            value = scores[config.name][i]
            if problem:
                break
            if np.isnan(value):
                problem = f"unscored_{config.name}"
            elif config.minimum is not None and value < config.minimum:
                problem = f"below_minimum_{config.name}"
            elif config.maximum is not None and value > config.maximum:
                problem = f"above_maximum_{config.name}"
        problems.append(problem)
    selection = Selection(rank, problems)
    eligible = [i for i, p in enumerate(problems) if p is None]
    if not eligible:
        scored = any(p is None or p.startswith(("below_", "above_")) for p in problems)
        selection.reason = "no_sample_within_thresholds" if scored else "no_sample_scored"
        return selection
    selection.chosen = max(eligible, key=lambda i: (rank[i], -i))
    if not pairs:
        return selection
    chosen_text = texts[selection.chosen].strip()
    others = [
        i
        for i, p in enumerate(problems)
        if (p is None or p.startswith(("below_", "above_"))) and texts[i].strip() != chosen_text
    ]
    if not others:
        selection.reason = "no_pair"
        return selection
    worst = min(others, key=lambda i: (problems[i] is None, rank[i], -i))
    if problems[worst] is None and rank[selection.chosen] - rank[worst] <= min_margin:
        selection.reason = "tie"
        return selection
    selection.rejected = worst
    return selection


def policy_lineage(llm: LLMConfig) -> dict[str, Any]:
    """What the policy is: the backend and model, and for a local model folder written by
    `thresher train` its training run's record (task, fingerprint, data, base model)."""
    info: dict[str, Any] = {"backend": llm.backend, "model": llm.model}
    folder = Path(llm.model).expanduser()
    lineage = read_model_lineage(folder) if llm.backend == "transformers" and folder.is_dir() else None
    if lineage:
        info.update(path=str(folder.resolve()), lineage=lineage)
    return info


@dataclass
class BestOfN(GlobalStage):
    """Sample `n` responses per prompt from a policy, score them, keep the best: Llama 2's
    rejection sampling (Touvron et al. 2023: best of N samples under the reward model, then
    fine-tune on them), with Sparrow's rule (Glaese et al. 2022: the highest preference score
    among samples a rule-violation model finds unlikely to break a rule) and on-policy preference
    pairs (Tülu 3, Lambert et al. 2024: pairs from the model being trained beat off-policy ones).

    Prompts: `chat` rows (the conversation before the last assistant turn, whose answer is
    replaced) or `preference` rows (their prompt). The policy is `llm` (config group conf/llm/,
    chat mode: a trained model folder with backend transformers, or an OpenAI-compatible server),
    sampling at `temperature` 1.0 and `top_p` 1.0 (pure sampling, as Llama 2's rejection sampling
    at T=1), up to `max_new_tokens` (512), each sample with its own seed.

    `scorers` (at least one; see `ScorerConfig`): `reward_model` (a `task=reward` run's model),
    `classifier` (the probability of a label, e.g. a rule-violation model), `judge` (an LLM judge's
    mean rating on UltraFeedback's aspects or your rubric), `lm_likelihood`. The rule: a sample is
    eligible if it is not empty and every score is within its scorer's `minimum` / `maximum`; the
    chosen sample has the highest sum(weight x score). Sparrow: the preference model with weight 1
    and the rule model with weight 0, `maximum` 0.5; a weighted sum: weights on several.

    `output=chat` writes the chosen response as the row's answer; `output=preference` writes
    (chosen, rejected) pairs, rejected being the lowest-ranked scored sample (a sample outside the
    thresholds ranks below every eligible one) and at least `min_margin` below the chosen one when
    both are eligible. Prompts without a row are dropped: `no_prompt`, `no_sample_scored`,
    `no_sample_within_thresholds`, `no_pair`, `tie`. Each row's meta records its scores and
    `policy` (the model, and the fingerprint of the training run that made it); the manifest
    records the policy's whole lineage and the scorers'. Every sample, with every score, its
    problem and whether it was chosen or rejected, is kept in `stages/<name>/samples.arrow`.

    Resumable at the prompt level: samples and scores are appended to a checkpoint every
    `chunk_prompts` (16) prompts; a killed run, rerun with the same command, replays them.
    Memory: the driver holds the prompts and one chunk of samples; workers memory-map the decisions.

    Defaults: `n=4` (UltraFeedback's 4 completions per prompt), pure sampling at temperature 1
    (Llama 2's rejection sampling), `output=chat`, no margin; no scorer (give at least one).
    """

    config_name: ClassVar[str] = "best_of_n"
    resources: ClassVar[Resources] = Resources(memory_gb=0.5)  # the default LLM, as judge's (stage_memory.json)
    requires: ClassVar[tuple[str, ...]] = ("id", "source", "meta")

    n: int = 4
    scorers: list[ScorerConfig] = field(default_factory=list)
    output: str = "chat"
    min_margin: float = 0.0
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    chunk_prompts: int = 16
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(mode="chat"))

    def validate(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output: '{self.output}' is not one of: {', '.join(OUTPUTS)}")
        if self.n < (2 if self.output == "preference" else 1):
            raise ValueError("n: must be >= 1 (>= 2 for output=preference)")
        if self.max_new_tokens < 1 or self.chunk_prompts < 1:
            raise ValueError("max_new_tokens: max_new_tokens and chunk_prompts must be >= 1")
        if not self.temperature > 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature: must be > 0 (and top_p in (0, 1]): best-of-N samples")
        if not self.scorers:
            raise ValueError("scorers: give at least one scorer ({name: ..., kind: reward_model, model: ...})")
        names = [s.name for s in self.scorers]
        for index, scorer in enumerate(self.scorers):
            try:
                scorer.validate()
            except ValueError as error:
                raise ValueError(f"scorers.{index}.{error}") from None
            if scorer.name in SAMPLE_COLUMNS or names.count(scorer.name) > 1:
                raise ValueError(f"scorers.{index}.name: '{scorer.name}' is used twice or names a samples column")
        if not any(s.weight for s in self.scorers):
            raise ValueError("scorers: at least one scorer needs a weight (the ranking score is sum(weight x score))")
        try:
            self.llm.validate()
        except ValueError as error:
            raise ValueError(str(error)) from None
        if self.llm.mode != "chat":
            raise ValueError("llm.mode: best_of_n sends conversations; set stages.<name>.llm.mode=chat")

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        if "messages" not in schema.names and "prompt" not in schema.names:
            raise ConfigError(
                f"stages.{self.name}: needs chat rows (messages) or preference rows (prompt); "
                f"the input has: {', '.join(schema.names)}"
            )
        return KINDS[self.output]

    # -- scan: the prompts ---------------------------------------------------------------------------
    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch:
        column = "messages" if "messages" in batch.schema.names else "prompt"
        conversations = batch.column(column).to_pylist()
        prompts = [prompt_of(c or []) if column == "messages" else (c or []) for c in conversations]
        problems = [None if any(m["role"] == "user" for m in p) else "no_prompt" for p in prompts]
        return pa.RecordBatch.from_arrays(
            [
                pa.array(positions, pa.int64()),
                batch.column("id").cast(pa.string()),
                batch.column("source").cast(pa.string()),
                pa.array([orjson.dumps(p).decode() for p in prompts], pa.string()),
                batch.column("meta").cast(pa.string()),
                pa.array(problems, pa.string()),
            ],
            schema=PROMPTS,
        )

    # -- resolve: sample, score, select --------------------------------------------------------------
    def samples_schema(self) -> pa.Schema:
        fields = [
            ("position", pa.int64()),
            ("id", pa.string()),
            ("sample", pa.int32()),
            ("text", pa.string()),
            ("finish_reason", pa.string()),
            *[(s.name, pa.float64()) for s in self.scorers],
            ("rank_score", pa.float64()),
            ("problem", pa.string()),
            ("chosen", pa.bool_()),
            ("rejected", pa.bool_()),
            ("notes", pa.string()),  # scorers' notes (a judge's raw answers), JSON
        ]
        return pa.schema(fields)

    def decisions_schema(self) -> pa.Schema:
        return KINDS[self.output].insert(0, pa.field("position", pa.int64())).append(pa.field("reason", pa.string()))

    def resolve(self, ctx: GlobalContext) -> None:
        started = time.time()
        state = read_frame(ctx.scan_files, PROMPTS).sort("position")
        run = SamplingRun(self, ctx)
        counts: dict[str, int] = {}
        # per scorer: sum and count of the scores of all samples, then of the chosen ones
        lift = {s.name: np.zeros(4) for s in self.scorers}
        ctx.keep_dir.mkdir(parents=True, exist_ok=True)
        try:
            with (
                StreamFile(ctx.keep_dir / "samples.arrow", self.samples_schema()) as samples,
                StreamFile(ctx.work_dir / "decisions.arrow", self.decisions_schema()) as decisions,
            ):
                for chunk, start in enumerate(range(0, state.height, self.chunk_prompts)):
                    rows = list(state.slice(start, self.chunk_prompts).iter_rows(named=True))
                    drawn = run.chunk(chunk, rows)
                    sample_rows, decision_rows = self.decide(rows, drawn, run.policy_meta)
                    for row in decision_rows:
                        counts[row["reason"] or "kept"] = counts.get(row["reason"] or "kept", 0) + 1
                    for row in sample_rows:
                        for name, sums in lift.items():
                            if row[name] is not None:
                                sums += [row[name], 1, row[name] * row["chosen"], row["chosen"]]
                    samples.write(pa.Table.from_pylist(sample_rows, schema=self.samples_schema()))
                    decisions.write(pa.Table.from_pylist(decision_rows, schema=self.decisions_schema()))
                    if chunk % 10 == 9:
                        log.info("best_of_n: %d of %d prompts", start + len(rows), state.height)
        finally:
            run.close()
        kept = counts.pop("kept", 0)
        self.stat_set(
            prompts=state.height,
            samples=run.samples,
            new_samples=run.new_samples,
            rows=kept,
            dropped=dict(sorted(counts.items())),
            scores={
                name: {
                    "mean_of_samples": round(float(sums[0] / sums[1]), 4) if sums[1] else None,
                    "mean_of_chosen": round(float(sums[2] / sums[3]), 4) if sums[3] else None,
                }
                for name, sums in lift.items()
            },
            policy=policy_lineage(self.llm),
            scorers=run.scorer_descriptions(),
            seconds=round(time.time() - started, 1),
        )

    def decide(
        self, rows: list[dict], drawn: list[dict], policy: dict
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The samples' rows (for samples.arrow) and the decision for each prompt."""
        sample_rows, decision_rows = [], []
        for row, record in zip(rows, drawn):
            decision: dict[str, Any] = {"position": row["position"], "reason": row["problem"]}
            decision_rows.append(decision)
            if row["problem"]:
                continue
            texts = [s["text"] for s in record["samples"]]
            scores = {
                name: np.array([np.nan if v is None else v for v in values], np.float64)
                for name, values in record["scores"].items()
            }
            selection = select(texts, scores, self.scorers, self.output == "preference", self.min_margin)
            for k, sample in enumerate(record["samples"]):
                notes = {name: values[k] for name, values in record["notes"].items() if values[k] is not None}
                sample_rows.append(
                    {
                        "position": row["position"],
                        "id": row["id"],
                        "sample": k,
                        "text": sample["text"],
                        "finish_reason": sample["finish_reason"],
                        **{name: None if np.isnan(values[k]) else float(values[k]) for name, values in scores.items()},
                        "rank_score": None if np.isnan(selection.rank[k]) else float(selection.rank[k]),
                        "problem": selection.problems[k],
                        "chosen": k == selection.chosen,
                        "rejected": k == selection.rejected,
                        "notes": to_json(notes) if notes else None,
                    }
                )
            decision["reason"] = selection.reason
            if selection.reason is None:
                decision.update(self.output_row(row, record, scores, selection, policy))
        return sample_rows, decision_rows

    def output_row(
        self, row: dict, record: dict, scores: dict[str, np.ndarray], selection: Selection, policy: dict
    ) -> dict[str, Any]:
        prompt = orjson.loads(row["prompt"])
        meta = orjson.loads(row["meta"]) if row["meta"] else {}

        def answer(k: int) -> list[dict]:
            return [{"role": "assistant", "content": record["samples"][k]["text"]}]

        def scored(k: int) -> dict[str, float]:
            return {name: float(values[k]) for name, values in scores.items()}

        assert selection.chosen is not None
        chosen = selection.chosen
        info: dict[str, Any] = {"n": self.n, "chosen_sample": chosen, "chosen_scores": scored(chosen)}
        out = {"id": row["id"], "source": row["source"]}
        if self.output == "chat":
            out["messages"] = prompt + answer(chosen)
        else:
            assert selection.rejected is not None
            rejected = selection.rejected
            info.update(rejected_sample=rejected, rejected_scores=scored(rejected))
            out.update(prompt=prompt, chosen=answer(chosen), rejected=answer(rejected))
        out["meta"] = to_json({**meta, "best_of_n": info, "policy": policy})
        return out

    # -- apply: each row becomes its decision --------------------------------------------------------
    def load(self, ctx: GlobalContext) -> None:
        path = ctx.work_dir / "decisions.arrow"
        self.decisions = read_table(path) if path.is_file() else self.decisions_schema().empty_table()
        self.positions = self.decisions.column("position").to_numpy()

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        index = np.minimum(np.searchsorted(self.positions, positions), max(len(self.positions) - 1, 0))
        found = self.decisions.take(pa.array(index, pa.int64()))
        if not np.array_equal(found.column("position").to_numpy(), positions):
            raise RuntimeError(f"stages.{self.name}: rows reached apply that resolve has no decision for")
        keep = pc.is_null(found.column("reason"))
        kept = found.filter(keep).select(KINDS[self.output].names).combine_chunks()
        rows = pa.RecordBatch.from_arrays(
            [kept.column(i).combine_chunks() for i in range(kept.num_columns)], schema=KINDS[self.output]
        )
        dropped = None
        if rows.num_rows < batch.num_rows:
            lost = pc.invert(keep).combine_chunks()
            dropped = batch.filter(lost).append_column(
                "drop_reason", found.column("reason").filter(lost).combine_chunks()
            )
        return RowResult(kept=rows, dropped=dropped)


class SamplingRun:
    """One resolve of best_of_n: the policy and the scorers (loaded only if something is left to
    sample), and the checkpoint of samples and scores, chunk by chunk."""

    def __init__(self, stage: BestOfN, ctx: GlobalContext):
        self.stage, self.ctx = stage, ctx
        self.checkpoint = Checkpoint(ctx.work_dir / "samples.jsonl")
        self.done = self.checkpoint.load()
        self.llm: LLM | None = None
        self.scorers: list[Scorer] | None = None
        self.samples = self.new_samples = 0
        lineage = policy_lineage(stage.llm)
        self.policy_meta = {
            "backend": lineage["backend"],
            "model": lineage.get("path", lineage["model"]),
            **({"fingerprint": lineage["lineage"].get("fingerprint")} if "lineage" in lineage else {}),
        }

    def chunk(self, index: int, rows: list[dict]) -> list[dict]:
        """The samples and scores of a chunk of prompts: replayed from the checkpoint, or made now."""
        positions = [row["position"] for row in rows]
        if index < len(self.done):
            record = self.done[index]
            if record["positions"] != positions:
                raise RuntimeError(
                    f"{self.checkpoint.path}: chunk {index} holds other prompts; "
                    "the checkpoint belongs to another configuration"
                )
        else:
            record = {"chunk": index, "positions": positions, "prompts": self.draw(rows)}
            self.checkpoint.append(record)
            self.new_samples += sum(len(p["samples"]) for p in record["prompts"] if p)
        self.samples += sum(len(p["samples"]) for p in record["prompts"] if p)
        return record["prompts"]

    def draw(self, rows: list[dict]) -> list[dict]:
        """N samples for every prompt with one, then every scorer's scores of the non-empty samples."""
        stage, seed = self.stage, self.ctx.seed
        sampled = [row for row in rows if not row["problem"]]
        prompts = {row["position"]: orjson.loads(row["prompt"]) for row in sampled}
        requests = [
            GenerationRequest(
                prompts[row["position"]],
                stage.max_new_tokens,
                stage.temperature,
                stage.top_p,
                seed=derived_seed(seed, "best_of_n", row["position"], k),
            )
            for row in sampled
            for k in range(stage.n)
        ]
        generations = self.policy().generate(requests) if requests else []
        samples = [
            [{"text": g.text, "finish_reason": g.finish_reason} for g in generations[i * stage.n : (i + 1) * stage.n]]
            for i in range(len(sampled))
        ]
        # every non-empty sample, as the conversation it completes
        flat = [(i, k) for i, group in enumerate(samples) for k, s in enumerate(group) if s["text"].strip()]
        conversations = [
            prompts[sampled[i]["position"]] + [{"role": "assistant", "content": samples[i][k]["text"]}] for i, k in flat
        ]
        keys = [(sampled[i]["position"], k) for i, k in flat]
        scores: dict[str, list[list[float | None]]] = {}
        notes: dict[str, list[list[str | None]]] = {}
        for scorer in self.loaded_scorers() if flat else []:
            result = scorer.score(conversations, keys) if conversations else None
            name = scorer.config.name
            scores[name] = [[None] * stage.n for _ in sampled]
            notes[name] = [[None] * stage.n for _ in sampled]
            for j, (i, k) in enumerate(flat):
                assert result is not None
                value = float(result.values[j])
                scores[name][i][k] = None if np.isnan(value) else value
                notes[name][i][k] = result.notes[j] if result.notes is not None else None
        out: list[dict] = []
        position_index = {row["position"]: i for i, row in enumerate(sampled)}
        for row in rows:
            if row["problem"]:
                out.append({})
                continue
            i = position_index[row["position"]]
            out.append(
                {
                    "samples": samples[i],
                    "scores": {
                        s.name: scores[s.name][i] if s.name in scores else [None] * stage.n for s in stage.scorers
                    },
                    "notes": {s.name: notes[s.name][i] if s.name in notes else [None] * stage.n for s in stage.scorers},
                }
            )
        return out

    def policy(self) -> LLM:
        if self.llm is None:
            self.llm = make_llm(self.stage.llm)
        return self.llm

    def loaded_scorers(self) -> list[Scorer]:
        if self.scorers is None:
            self.scorers = [Scorer(config, self.ctx.seed) for config in self.stage.scorers]
        return self.scorers

    def scorer_descriptions(self) -> list[dict]:
        if self.scorers is not None:
            return [scorer.describe() for scorer in self.scorers]
        return [{"name": s.name, "kind": s.kind, "model": s.model or None} for s in self.stage.scorers]

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
        for scorer in self.scorers or []:
            scorer.close()
