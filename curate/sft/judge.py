"""LLM-as-judge: ratings of a response on named aspects, one request per aspect.

UltraFeedback (Cui et al. 2023) had GPT-4 rate completions on four aspects — helpfulness, honesty,
instruction following, truthfulness — each with its own rubric, on a 1-5 scale, answering a
"Rating:" line and a "Rationale:" line. Here each aspect is a template `<aspect>.j2` in a folder
(`curate/prompts/ultrafeedback/` paraphrases UltraFeedback's rubrics; a folder of the user's own
holds their rubric), rendered with the conversation so far (`instruction`) and the `response`.

An answer is parsed by its "Rating: <number>" line; an answer without one, with two different
ratings, or with a rating outside the scale is a parse failure (None), kept with the raw answer so
it can be inspected, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from curate.llm import LLM, GenerationRequest
from curate.llm.base import derived_seed
from curate.sft.templates import render, template_folder

ULTRAFEEDBACK_ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
# "Rating: 4", "**Rating:** 4", "Rating = 4/5", "rating: 4.5"
RATING = re.compile(r"\brating\b\W{0,3}?[:=]\W{0,3}?(-?\d+(?:\.\d+)?)", re.IGNORECASE)
ASPECT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def rubric_folder(templates: str, aspects: Sequence[str]) -> Path:
    """The folder holding `<aspect>.j2` for every aspect (ValueError naming what is missing)."""
    bad = [a for a in aspects if not ASPECT_NAME.match(a)]
    if bad:
        raise ValueError(f"aspects: '{bad[0]}' is not a lower-case name (letters, digits, _): it names a column")
    if not aspects:
        raise ValueError("aspects: give at least one")
    return template_folder(templates, [f"{a}.j2" for a in aspects])


def parse_rating(answer: str, low: float, high: float) -> float | None:
    """The rating in a judge's answer, or None when there is none, several differing, or one off the scale."""
    found = {float(value) for value in RATING.findall(answer)}
    if len(found) != 1:
        return None
    rating = found.pop()
    return rating if low <= rating <= high else None


def instruction_text(messages: list[dict]) -> str:
    """The conversation before the response: the user's message for one turn, else a transcript."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


@dataclass
class Verdict:
    """A judge's ratings of one response (None: that answer could not be parsed) and its raw answers."""

    ratings: dict[str, float | None]
    answers: dict[str, str]

    @property
    def parsed(self) -> bool:
        return all(rating is not None for rating in self.ratings.values())

    @property
    def score(self) -> float | None:
        """The mean rating over the aspects (None unless every aspect was parsed)."""
        if not self.parsed or not self.ratings:
            return None
        return sum(r for r in self.ratings.values() if r is not None) / len(self.ratings)


class Judge:
    """Rates (conversation, response) pairs with an LLM, one request per aspect, greedy by default
    (the same answer on a rerun); each request's seed is derived from `seed` and the item's key."""

    def __init__(
        self,
        llm: LLM,
        folder: Path,
        aspects: Sequence[str],
        scale: tuple[float, float] = (1.0, 5.0),
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ):
        self.llm, self.folder, self.aspects = llm, folder, tuple(aspects)
        self.scale, self.max_new_tokens, self.temperature, self.seed = scale, max_new_tokens, temperature, seed

    def prompt(self, aspect: str, conversation: list[dict], response: str) -> str:
        return render(self.folder, f"{aspect}.j2", instruction=instruction_text(conversation), response=response)

    def rate(self, conversations: list[list[dict]], responses: list[str], keys: Sequence) -> list[Verdict]:
        """A verdict per (conversation, response); `keys` (stable ids) derive each request's seed."""
        requests = [
            GenerationRequest(
                self.prompt(aspect, conversation, response),
                max_new_tokens=self.max_new_tokens,
                temperature=self.temperature,
                seed=derived_seed(self.seed, "judge", key, aspect),
            )
            for conversation, response, key in zip(conversations, responses, keys)
            for aspect in self.aspects
        ]
        answers = iter(self.llm.generate(requests))
        verdicts = []
        for _ in responses:
            texts = {aspect: next(answers).text for aspect in self.aspects}
            verdicts.append(Verdict({a: parse_rating(t, *self.scale) for a, t in texts.items()}, texts))
        return verdicts

    def describe(self) -> dict:
        return {
            "llm": self.llm.describe(),
            "templates": str(self.folder),
            "aspects": list(self.aspects),
            "scale": list(self.scale),
            "temperature": self.temperature,
        }
