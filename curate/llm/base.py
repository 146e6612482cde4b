"""The one interface every generation backend implements."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from curate.errors import ThresherError

Prompt = str | list  # a completion prompt, or chat messages [{role, content}]


class LLMError(ThresherError):
    """A generation backend failed for good (bad request, server down after every retry, no model)."""


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete. `seed` makes sampling reproducible where the backend supports it;
    `presence_penalty` is OpenAI's: subtracted from the logit of every token already generated."""

    prompt: Prompt
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    presence_penalty: float = 0.0


@dataclass
class Generation:
    """A completion: its text (cut before any stop string) and why it ended: "stop" (end of
    sequence or a stop string) or "length" (max_new_tokens reached: the text may be truncated)."""

    text: str
    finish_reason: str
    usage: dict = field(default_factory=dict)


class LLM:
    """A generation backend: `generate` answers a batch of requests, in order."""

    name: str = "llm"

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        raise NotImplementedError

    def describe(self) -> dict:
        """What generated the data, for manifests."""
        return {"backend": self.name}

    def close(self) -> None:
        """Release connections or memory."""


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` up to the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def derived_seed(*parts: Any) -> int:
    """A 31-bit seed from the run seed and a request's place in the run (stable across resumes)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little") >> 1
