"""Self-Instruct generation: seed tasks in, machine-generated instruction data out."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import orjson
import pyarrow as pa

from curate.arrow_io import read_frame, write_table
from curate.converters.chat import join_prompt
from curate.errors import ConfigError
from curate.llm import LLM, GenerationRequest, LLMConfig, make_llm
from curate.llm.base import derived_seed
from curate.mapping import to_json
from curate.schema import KINDS
from curate.sft.checkpoint import Checkpoint
from curate.sft.novelty import NoveltyIndex
from curate.sft.self_instruct import (
    SELF_INSTRUCT_BLACKLIST,
    SeedTask,
    capitalize_first,
    classification_prompt,
    instance_problem,
    instance_prompt,
    instruction_problem,
    instruction_prompt,
    one_line,
    parse_instance,
    parse_instructions,
    parse_yes_no,
    sample_prompt_instructions,
    template_folder,
)
from curate.stages.base import GlobalContext, GlobalStage, Resources, RowResult
from curate.stages.generated import emit

SEED_STATE = pa.schema(
    [
        ("position", pa.int64()),
        ("instruction", pa.string()),
        ("instances", pa.string()),
        ("is_classification", pa.bool_()),
    ]
)
REJECTED_SCHEMA = KINDS["chat"].append(pa.field("drop_reason", pa.string()))


@dataclass
class SelfInstruct(GlobalStage):
    """Generate instruction data from seed tasks with an LLM: the Self-Instruct algorithm
    (Wang et al. 2022), as Alpaca also ran it. Input rows are the seed tasks (`input.records=
    self_instruct_seeds` for the 175 Self-Instruct/Alpaca seeds; any chat rows work, with their
    first user turn as the instruction); output rows are the generated (instruction, input,
    output) instances as `chat` rows.

    1. Instructions: each prompt (template `instructions.j2`) shows `prompt_instructions` (8)
       instructions, `machine_in_prompt` (2) of them machine-generated once there are some, the
       rest human seeds, and the model continues the numbered list; `request_batch_size` (5)
       prompts per batch; temperature 0.7, top_p 0.5, presence penalty 2, up to 1024 new tokens, at most
       `max_new_per_prompt` (7) new instructions per answer — Self-Instruct's settings. A
       candidate is kept if it has `min_words`..`max_words` (4..150) words, contains no
       `blacklist` word (Self-Instruct's list; Alpaca added video, audio, music, flowchart,
       diagram), does not start with "Write a program", with punctuation or a non-ASCII
       character, and its ROUGE-L with every seed and kept instruction is <= `rouge_threshold`
       (0.7), computed exactly as rouge-score but fast (`curate.sft.novelty`). Until
       `num_instructions` are kept or `max_requests` prompts were sent.
    2. Classification or not: the model answers Yes/No after `classification_demos` labelled
       seeds (Self-Instruct used 12 per prompt).
    3. Instances: classification tasks output-first (label, then input), others input-first,
       after `instance_demos` seed examples of the same type; `instance_samples` answers per task,
       greedy by default (Self-Instruct: temperature 0); invalid ones (no output, output equal
       to the input, ending with ':', truncated, duplicates, one input with two outputs) dropped.

    Every LLM answer is appended to a checkpoint in the run's work folder before it is used: a
    killed run, rerun with the same command, replays the answers and continues, with the same
    result. Every candidate that is not kept becomes a rejected row with its reason. Seed rows
    are not in the output unless `keep_seeds`. Prompts are templates in `templates` (a folder
    under curate/prompts/ or a path); the model is `llm` (config group conf/llm/).
    """

    config_name: ClassVar[str] = "self_instruct"
    resources: ClassVar[Resources] = Resources(memory_gb=0.5)  # the default LLM, as judge's (stage_memory.json)
    requires: ClassVar[tuple[str, ...]] = ("id", "messages", "source", "meta")

    num_instructions: int = 100
    prompt_instructions: int = 8
    machine_in_prompt: int = 2
    request_batch_size: int = 5
    max_new_per_prompt: int = 7
    max_requests: int = 1000
    max_new_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.5
    presence_penalty: float = 2.0
    rouge_threshold: float = 0.7
    min_words: int = 4
    max_words: int = 150
    blacklist: list[str] = field(default_factory=lambda: list(SELF_INSTRUCT_BLACKLIST))
    identify_classification: bool = True
    classification_demos: int = 12
    instance_demos: int = 3
    instance_samples: int = 1
    instance_max_new_tokens: int = 300
    instance_temperature: float = 0.0
    templates: str = "self_instruct"
    source: str = "self_instruct"
    keep_seeds: bool = False
    llm: LLMConfig = field(default_factory=LLMConfig)

    def validate(self) -> None:
        for name in (
            "num_instructions",
            "prompt_instructions",
            "request_batch_size",
            "max_new_per_prompt",
            "max_requests",
            "max_new_tokens",
            "instance_samples",
            "instance_max_new_tokens",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1")
        if not 0 <= self.machine_in_prompt <= self.prompt_instructions:
            raise ValueError("machine_in_prompt: must be between 0 and prompt_instructions")
        if not 0 < self.rouge_threshold <= 1:
            raise ValueError("rouge_threshold: must be in (0, 1]")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError("min_words: must be >= 1 and <= max_words")
        template_folder(self.templates)
        try:
            self.llm.validate()
        except ValueError as error:
            raise ValueError(str(error)) from None

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        return KINDS["chat"]

    # -- scan: the seed tasks ----------------------------------------------------------------------
    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.RecordBatch:
        rows = []
        for row in batch.select(["messages", "meta"]).to_pylist():
            meta = orjson.loads(row["meta"]) if row["meta"] else {}
            turns = row["messages"]
            instruction = meta.get("instruction") or next(m["content"] for m in turns if m["role"] == "user")
            instances = meta.get("instances") or [
                {
                    "input": meta.get("input", ""),
                    "output": turns[-1]["content"] if turns[-1]["role"] == "assistant" else "",
                }
            ]
            rows.append(
                {
                    "instruction": instruction,
                    "instances": to_json(instances),
                    "is_classification": bool(meta.get("is_classification", False)),
                }
            )
        return pa.RecordBatch.from_arrays(
            [
                pa.array(positions, pa.int64()),
                pa.array([r["instruction"] for r in rows], pa.string()),
                pa.array([r["instances"] for r in rows], pa.string()),
                pa.array([r["is_classification"] for r in rows], pa.bool_()),
            ],
            schema=SEED_STATE,
        )

    # -- resolve: the generation loop --------------------------------------------------------------
    def resolve(self, ctx: GlobalContext) -> None:
        started = time.time()
        state = read_frame(ctx.scan_files, SEED_STATE).sort("position")
        seeds = [
            SeedTask(r["instruction"], orjson.loads(r["instances"]), r["is_classification"])
            for r in state.iter_rows(named=True)
        ]
        if not seeds:
            raise ConfigError(f"stages.{self.name}: no seed task in the input")
        run = GenerationRun(self, ctx, seeds)
        try:
            machine, candidates = run.instructions()
            run.classify(machine)
            kept, rejected = run.instances(machine)
        finally:
            run.close()
        write_table(ctx.work_dir / "generated.arrow", pa.Table.from_pylist(kept, schema=KINDS["chat"]))
        write_table(
            ctx.work_dir / "rejected.arrow", pa.Table.from_pylist(candidates + rejected, schema=REJECTED_SCHEMA)
        )
        reasons: dict[str, int] = {}
        for row in candidates + rejected:
            reasons[row["drop_reason"]] = reasons.get(row["drop_reason"], 0) + 1
        scores = [orjson.loads(r["meta"])["rouge_l_max"] for r in kept]
        self.stat_set(
            seeds=len(seeds),
            requests=run.requests,
            new_requests=run.new_requests,
            candidates=len(candidates) + len(machine),
            kept_instructions=len(machine),
            classification_tasks=sum(bool(m["is_classification"]) for m in machine),
            unclear_classification_answers=run.unclear,
            instances=len(kept),
            rows=len(kept),
            dropped=dict(sorted(reasons.items())),
            rouge_l_max_of_kept={"mean": round(float(np.mean(scores)), 4), "max": round(float(np.max(scores)), 4)}
            if scores
            else {},
            llm=run.llm_description(),
            seconds=round(time.time() - started, 1),
        )

    # -- apply and generate --------------------------------------------------------------------------
    def load(self, ctx: GlobalContext) -> None:
        self.work_dir = ctx.work_dir

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        if self.keep_seeds:
            return RowResult(kept=batch.select(KINDS["chat"].names))
        self.stat_update("consumed", batch.num_rows)  # the seeds end here: they prompted the new rows
        return RowResult(kept=batch.slice(0, 0).select(KINDS["chat"].names))

    def generate(self, task: int, tasks: int) -> Iterator[RowResult]:
        work = Path(self.work_dir)
        return emit(work / "generated.arrow", work / "rejected.arrow", KINDS["chat"], task, tasks)


class GenerationRun:
    """One resolve of the self_instruct stage: the LLM, the checkpoints, the pools."""

    def __init__(self, stage: SelfInstruct, ctx: GlobalContext, seeds: list[SeedTask]):
        self.stage, self.ctx, self.seeds = stage, ctx, seeds
        self.folder = template_folder(stage.templates)
        self.llm: LLM | None = None
        self.requests = 0
        self.new_requests = 0
        self.unclear = 0

    def model(self) -> LLM:
        if self.llm is None:  # loaded only if something is left to generate
            self.llm = make_llm(self.stage.llm)
        return self.llm

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()

    def llm_description(self) -> dict:
        return self.llm.describe() if self.llm else {"backend": self.stage.llm.backend, "model": self.stage.llm.model}

    def call(self, requests: list[GenerationRequest]) -> list[dict]:
        self.new_requests += len(requests)
        return [{"text": g.text, "finish_reason": g.finish_reason} for g in self.model().generate(requests)]

    # step 1
    def instructions(self) -> tuple[list[dict], list[dict]]:
        stage, ctx = self.stage, self.ctx
        index = NoveltyIndex(threshold=stage.rouge_threshold)
        pool = []
        for seed in self.seeds:
            pool.append(one_line(seed.instruction))
            index.add(pool[-1])
        seed_texts = list(pool)
        machine: list[dict] = []
        candidates: list[dict] = []
        checkpoint = Checkpoint(ctx.work_dir / "instructions.jsonl")
        done = checkpoint.load()
        batch = 0
        stop_number = stage.prompt_instructions + stage.max_new_per_prompt + 1
        while len(machine) < stage.num_instructions and batch * stage.request_batch_size < stage.max_requests:
            prompts = []
            for i in range(stage.request_batch_size):
                rng = random.Random(derived_seed(ctx.seed, "instructions", batch, i))
                shown = sample_prompt_instructions(
                    rng,
                    seed_texts,
                    [m["instruction"] for m in machine],
                    stage.prompt_instructions,
                    stage.machine_in_prompt,
                )
                prompts.append(instruction_prompt(self.folder, shown))
            if batch < len(done):
                record = done[batch]
                if record["prompts"] != prompts:
                    raise RuntimeError(
                        f"{checkpoint.path}: batch {batch} was made with other prompts; "
                        "the checkpoint belongs to another configuration"
                    )
            else:
                requests = [
                    GenerationRequest(
                        p,
                        stage.max_new_tokens,
                        stage.temperature,
                        stage.top_p,
                        ("\n\n", f"\n{stop_number}."),
                        derived_seed(ctx.seed, "instructions", batch, i),
                        stage.presence_penalty,
                    )
                    for i, p in enumerate(prompts)
                ]
                record = {"batch": batch, "prompts": prompts, "generations": self.call(requests)}
                checkpoint.append(record)
            self.requests += len(prompts)
            self.take(record, batch, index, pool, machine, candidates)
            batch += 1
            if batch % 10 == 0 and batch > len(done):
                print(
                    f"self_instruct: batch {batch}, {len(machine)}/{stage.num_instructions} instructions kept",
                    file=sys.stderr,
                    flush=True,
                )
        return machine, candidates

    def take(
        self,
        record: dict,
        batch: int,
        index: NoveltyIndex,
        pool: list[str],
        machine: list[dict],
        candidates: list[dict],
    ) -> None:
        stage = self.stage
        for request, generation in enumerate(record["generations"]):
            parsed = parse_instructions(generation["text"], generation["finish_reason"])
            for number, (text, truncated) in enumerate(parsed[: stage.max_new_per_prompt]):
                text = capitalize_first(text)
                reason = (
                    "truncated"
                    if truncated
                    else instruction_problem(text, stage.min_words, stage.max_words, tuple(stage.blacklist))
                )
                info = {"instruction": text, "batch": batch, "request": request, "number": number}
                if reason is None:
                    novel, match, tokens = index.check(text, exact_max=True)
                    info.update(
                        rouge_l_max=round(match.score, 4), most_similar=pool[match.index] if match.index >= 0 else None
                    )
                    if not novel:
                        reason = "too_similar"
                    elif len(machine) >= stage.num_instructions:
                        reason = "over_target"
                    else:
                        index.add_tokens(tokens)
                        pool.append(text)
                        machine.append(info)
                        continue
                candidates.append(
                    rejected_row(
                        f"{stage.source}/candidate-{batch:05d}-{request}-{number}",
                        [{"role": "user", "content": text}],
                        stage.source,
                        info,
                        reason,
                    )
                )

    # step 2
    def classify(self, machine: list[dict]) -> None:
        stage = self.stage
        if not stage.identify_classification or not machine:
            for m in machine:
                m["is_classification"] = False
            return
        rng = random.Random(derived_seed(self.ctx.seed, "classification-demos"))
        yes = [s for s in self.seeds if s.is_classification]
        no = [s for s in self.seeds if not s.is_classification]
        half = stage.classification_demos // 2
        demos = rng.sample(yes, min(half, len(yes))) + rng.sample(no, min(stage.classification_demos - half, len(no)))
        rng.shuffle(demos)
        requests = [
            GenerationRequest(
                classification_prompt(self.folder, demos, m["instruction"]),
                3,
                0.0,
                1.0,
                ("\n",),
                derived_seed(self.ctx.seed, "classification", j),
            )
            for j, m in enumerate(machine)
        ]
        for m, answer in zip(machine, self.chunked("classification.jsonl", requests)):
            verdict = parse_yes_no(answer["text"])
            self.unclear += verdict is None
            m["is_classification"] = bool(verdict)

    # step 3
    def instances(self, machine: list[dict]) -> tuple[list[dict], list[dict]]:
        stage, ctx = self.stage, self.ctx
        requests = []
        for j, m in enumerate(machine):
            same_type = [s for s in self.seeds if s.is_classification == m["is_classification"]] or self.seeds
            for k in range(stage.instance_samples):
                rng = random.Random(derived_seed(ctx.seed, "instance-demos", j, k))
                demos = []
                for seed in rng.sample(same_type, min(stage.instance_demos, len(same_type))):
                    example = rng.choice(seed.instances)
                    demos.append(
                        {
                            "instruction": one_line(seed.instruction),
                            "input": example["input"],
                            "output": example["output"],
                        }
                    )
                requests.append(
                    GenerationRequest(
                        instance_prompt(self.folder, demos, m["instruction"], m["is_classification"]),
                        stage.instance_max_new_tokens,
                        stage.instance_temperature,
                        stage.top_p if stage.instance_temperature else 1.0,
                        ("\nTask:",),
                        derived_seed(ctx.seed, "instances", j, k),
                    )
                )
        answers = self.chunked("instances.jsonl", requests)
        kept, rejected = [], []
        for j, m in enumerate(machine):
            mine = answers[j * stage.instance_samples : (j + 1) * stage.instance_samples]
            parsed = [(parse_instance(a["text"], m["is_classification"]), a["finish_reason"]) for a in mine]
            outputs_by_input: dict[str, set[str]] = {}
            for instance, finish in parsed:
                if instance is not None and instance_problem(instance, finish) is None and instance[0]:
                    outputs_by_input.setdefault(instance[0], set()).add(instance[1])
            conflicting = any(len(outputs) > 1 for outputs in outputs_by_input.values())
            seen = set()
            for k, (instance, finish) in enumerate(parsed):
                reason = instance_problem(instance, finish)
                if reason is None and conflicting:
                    reason = "conflicting_instances"  # one input, two outputs: Self-Instruct drops the task
                if reason is None and instance in seen:
                    reason = "duplicate_instance"
                given, output = instance if instance else ("", mine[k]["text"].strip())
                meta = {**m, "input": given, "output": output, "origin": "machine", "sample": k}
                messages = [
                    {"role": "user", "content": join_prompt(m["instruction"], given)},
                    {"role": "assistant", "content": output},
                ]
                row_id = f"{stage.source}/{j:06d}-{k}"
                if reason is None:
                    seen.add(instance)
                    kept.append({"id": row_id, "messages": messages, "source": stage.source, "meta": to_json(meta)})
                else:
                    rejected.append(rejected_row(row_id, messages, stage.source, meta, reason))
        return kept, rejected

    def chunked(self, name: str, requests: list[GenerationRequest]) -> list[dict]:
        """Answers to `requests`, generated in checkpointed chunks (replayed on resume)."""
        checkpoint = Checkpoint(self.ctx.work_dir / name)
        done = checkpoint.load()
        size = self.stage.request_batch_size * 4
        answers = []
        for c, start in enumerate(range(0, len(requests), size)):
            chunk = requests[start : start + size]
            if c < len(done):
                generations = done[c]["generations"]
                if len(generations) != len(chunk):
                    raise RuntimeError(
                        f"{checkpoint.path}: chunk {c} has {len(generations)} answers, expected "
                        f"{len(chunk)}; the checkpoint belongs to another configuration"
                    )
            else:
                generations = self.call(chunk)
                checkpoint.append({"chunk": c, "generations": generations})
            self.requests += len(chunk)
            answers += generations
        return answers


def rejected_row(row_id: str, messages: list[dict], source: str, meta: dict, reason: str) -> dict:
    return {"id": row_id, "messages": messages, "source": source, "meta": to_json(meta), "drop_reason": reason}
