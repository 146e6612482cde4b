"""Scores of conversations' final responses: a reward model's score, a classifier's probability of a
label, a small causal LM's mean log-likelihood of the response given the prompt, and (through
`Scorer`, for `best_of_n`) an LLM judge's mean rating. Models come from local folders (or a packaged
model name, see `curate.llm.models`); nothing is downloaded."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from curate.llm.config import LLMConfig
from curate.llm.models import model_path
from curate.mapping import to_json
from curate.runfolder import read_model_lineage
from curate.sft.judge import ULTRAFEEDBACK_ASPECTS, Judge, rubric_folder

SCORER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def conversation_text(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """A conversation as the model's chat template renders it (or 'role: content' blocks without one)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
    return text + ("\n\nassistant:" if add_generation_prompt else "")


class RewardModelScorer:
    """A sequence-classification reward model with one output (as trl's RewardTrainer trains):
    the score of each whole conversation (prompt and response)."""

    def __init__(self, model: str, batch_size: int = 8, max_length: int = 1024, threads: int = 1, device: str = "cpu"):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = model_path(model)
        self.torch, self.device = torch, device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        self.model.to(device)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size, self.max_length = batch_size, max_length

    def logits(self, conversations: list[list[dict]]) -> np.ndarray:
        """The model's outputs for each whole conversation: (conversations, labels)."""
        out = []
        for start in range(0, len(conversations), self.batch_size):
            texts = [conversation_text(self.tokenizer, c) for c in conversations[start : start + self.batch_size]]
            encoded = self.tokenizer(
                texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
            ).to(self.device)
            with self.torch.inference_mode():
                out.append(self.model(**encoded).logits.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.num_labels), np.float32)

    def score(self, conversations: list[list[dict]]) -> np.ndarray:
        return self.logits(conversations)[:, 0]


class LMLikelihoodScorer:
    """Mean log-probability per token of the final assistant turn given everything before it, under
    a small causal LM: a cheap fluency/coherence signal (higher is better)."""

    def __init__(self, model: str, max_length: int = 1024, threads: int = 1):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        path = model_path(model)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        self.max_length = max_length

    def score(self, conversations: list[list[dict]]) -> np.ndarray:
        torch, out = self.torch, []
        for messages in conversations:
            prompt = conversation_text(self.tokenizer, messages[:-1], add_generation_prompt=True)
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            response_ids = self.tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
            if not response_ids:
                out.append(np.nan)
                continue
            ids = (prompt_ids + response_ids)[-self.max_length :]  # keep the response, cut the prompt's start
            start = max(1, len(ids) - len(response_ids))  # first predicted response token
            tensor = torch.tensor([ids])
            with torch.inference_mode():
                logprobs = torch.log_softmax(self.model(tensor).logits[0].float(), dim=-1)
            targets = tensor[0, start:]
            out.append(float(logprobs[torch.arange(start - 1, len(ids) - 1), targets].mean()))
        return np.asarray(out, dtype=np.float64)


class ClassifierScorer(RewardModelScorer):
    """A sequence classifier's probability of one label for each whole conversation (e.g. a
    rule-violation model, as Sparrow's): softmax over its labels, or a sigmoid for a single output.
    `label` is the label's name (the model's id2label) or its index."""

    def __init__(self, model: str, label: str, batch_size: int = 8, max_length: int = 1024, threads: int = 1):
        super().__init__(model, batch_size, max_length, threads)
        names = {str(name): int(index) for index, name in (self.model.config.id2label or {}).items()}
        labels = self.model.config.num_labels
        if label in names:
            self.label = names[label]
        elif label.isdigit() and int(label) < max(labels, 2):
            self.label = int(label)
        else:
            raise ValueError(f"label: '{label}' is not one of the classifier's labels ({', '.join(names)})")
        if labels == 1 and self.label != 1:
            raise ValueError("label: a single-output classifier gives the probability of label 1")

    def score(self, conversations: list[list[dict]]) -> np.ndarray:
        logits = self.logits(conversations).astype(np.float64)
        if logits.shape[1] == 1:
            return 1.0 / (1.0 + np.exp(-logits[:, 0]))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (shifted / shifted.sum(axis=1, keepdims=True))[:, self.label]


SCORER_KINDS = ("reward_model", "classifier", "judge", "lm_likelihood")


@dataclass
class ScorerConfig:
    """One scorer of sampled responses (`best_of_n`): its `name` (a column of the samples dataset),
    its `kind` and what it needs, and its part in the selection rule (`weight` in the ranking sum,
    `minimum` / `maximum` a sample must keep to).

    - `reward_model`: a sequence classifier with one output (a `task=reward` run's `model/`): its score.
    - `classifier`: a sequence classifier's probability of `label` (e.g. Sparrow's rule-violation model).
    - `judge`: an LLM judge (`llm`) rating `aspects` with the rubric templates in `templates`: the
      mean rating (`curate.sft.judge`).
    - `lm_likelihood`: a causal LM's mean log-probability per token of the response.
    Model folders are local (nothing is downloaded).
    """

    name: str = ""
    kind: str = "reward_model"
    model: str = ""
    label: str = "1"
    weight: float = 1.0
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    aspects: list[str] = field(default_factory=lambda: list(ULTRAFEEDBACK_ASPECTS))
    templates: str = "ultrafeedback"
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(mode="chat"))
    max_length: int = 1024
    batch_size: int = 8

    def validate(self) -> None:
        if not SCORER_NAME.match(self.name):
            raise ValueError(f"name: '{self.name}' is not a lower-case name (letters, digits, _): it names a column")
        if self.kind not in SCORER_KINDS:
            raise ValueError(f"kind: '{self.kind}' is not one of: {', '.join(SCORER_KINDS)}")
        if self.kind == "judge":
            rubric_folder(self.templates, self.aspects)
            self.llm.validate()
        elif not self.model:
            raise ValueError(f"model: a {self.kind} scorer needs a local model folder")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum: must be <= maximum")
        if self.max_length < 1 or self.batch_size < 1:
            raise ValueError("max_length: max_length and batch_size must be >= 1")


@dataclass
class Scores:
    """One scorer's scores of a list of samples: NaN where a sample could not be scored (a judge's
    unparsable answer), and optional notes per sample (a judge's raw answers, JSON)."""

    values: np.ndarray
    notes: list[str] | None = None


class Scorer:
    """A `ScorerConfig` with its model loaded: `score(conversations, keys)` rates the final
    assistant turn of each conversation; `keys` (stable ids) seed a judge's requests."""

    def __init__(self, config: ScorerConfig, seed: int = 0):
        self.config = config
        self.judge: Judge | None = None
        self.model: RewardModelScorer | LMLikelihoodScorer | None = None
        if config.kind == "judge":
            from curate.llm import make_llm

            self.judge = Judge(
                make_llm(config.llm), rubric_folder(config.templates, config.aspects), config.aspects, seed=seed
            )
        elif config.kind == "reward_model":
            self.model = RewardModelScorer(config.model, config.batch_size, config.max_length)
        elif config.kind == "classifier":
            self.model = ClassifierScorer(config.model, config.label, config.batch_size, config.max_length)
        else:
            self.model = LMLikelihoodScorer(config.model, config.max_length)

    def score(self, conversations: list[list[dict]], keys: Sequence) -> Scores:
        if self.judge is not None:
            verdicts = self.judge.rate([c[:-1] for c in conversations], [c[-1]["content"] for c in conversations], keys)
            values = np.array([np.nan if v.score is None else v.score for v in verdicts], np.float64)
            return Scores(values, [to_json({"ratings": v.ratings, "answers": v.answers}) for v in verdicts])
        assert self.model is not None
        return Scores(np.asarray(self.model.score(conversations), np.float64))

    def describe(self) -> dict:
        """What scored the samples, for manifests: the kind and the model (with its training lineage)."""
        config = self.config
        described: dict = {"name": config.name, "kind": config.kind}
        if self.judge is not None:
            return {**described, **self.judge.describe()}
        lineage = read_model_lineage(config.model)
        described["model"] = str(model_path(config.model).resolve())
        if lineage:
            described["lineage"] = {"task": lineage.get("task"), "fingerprint": lineage.get("fingerprint")}
        return described

    def close(self) -> None:
        if self.judge is not None:
            self.judge.llm.close()
