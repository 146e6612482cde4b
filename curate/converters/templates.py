"""Known prompt templates that wrap a user turn, and how to take them off (`input.strip_template`).

Instruction data is often shipped already rendered through the prompt template a model was tuned
with: the user turn reads "Below is an instruction that describes a task... ### Instruction: ...
### Response:" instead of the instruction itself. Trained again under another chat template, the
model would learn the old template as content. Stripping recovers the instruction (and its input,
or the system prompt the template carried).

| name | template (what is kept) | from |
|---|---|---|
| `alpaca` | "Below is an instruction that describes a task[, paired with an input ...]. Write a response that appropriately completes the request." `### Instruction:` (instruction) [`### Input:` or `Input:` (input)] `### Response:` | Stanford Alpaca's `PROMPT_DICT` (train.py), alpaca-lora's `alpaca.json`, Dolly's training prompt |
| `vicuna` | "A chat between a curious user and an artificial intelligence assistant. ..." `USER:` (prompt) `ASSISTANT:` | FastChat's `vicuna_v1.1` conversation template |
| `llama2` | `[INST]` [`<<SYS>>` (system) `<</SYS>>`] (prompt) `[/INST]` | Llama 2 chat's prompt format |
| `chatml` | [`<\\|im_start\\|>system` (system) `<\\|im_end\\|>`] `<\\|im_start\\|>user` (prompt) `<\\|im_end\\|>` [`<\\|im_start\\|>assistant`] | OpenAI's ChatML (Qwen, OpenHermes) |

A turn matches only if the whole turn is the template (with surrounding whitespace); anything
else is left as it is. A system prompt found in the template becomes the conversation's system
message when the turn is the first one and the conversation has none; otherwise the turn is
left unchanged (a conversation has one system message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every template's variants differ in blank lines and trailing spaces: `\s*` between the parts.
ALPACA = re.compile(
    r"\s*Below is an instruction that describes a task(?:, paired with an input that provides further context)?\."
    r"\s*Write a response that appropriately completes the request\.\s*"
    r"### Instruction:[ \t]*\n(?P<instruction>.*?)"
    r"(?:\n\s*(?:### )?Input:[ \t]*\n(?P<input>.*?))?"
    r"(?:\n\s*### Response:)?\s*",
    re.DOTALL,
)
VICUNA = re.compile(
    r"\s*A chat between a curious (?:user|human) and an artificial intelligence assistant\.[^\n]*?"
    r"\s*(?:USER|### Human):\s*(?P<instruction>.*?)\s*(?:ASSISTANT|### Assistant):\s*",
    re.DOTALL,
)
LLAMA2 = re.compile(
    r"\s*(?:<s>)?\s*\[INST\]\s*(?:<<SYS>>\s*(?P<system>.*?)\s*<</SYS>>\s*)?(?P<instruction>.*?)\s*\[/INST\]\s*",
    re.DOTALL,
)
CHATML = re.compile(
    r"\s*(?:<\|im_start\|>system\s*\n(?P<system>.*?)<\|im_end\|>\s*)?"
    r"<\|im_start\|>user\s*\n(?P<instruction>.*?)<\|im_end\|>\s*(?:<\|im_start\|>assistant\s*)?",
    re.DOTALL,
)
TEMPLATES: dict[str, re.Pattern[str]] = {"alpaca": ALPACA, "vicuna": VICUNA, "llama2": LLAMA2, "chatml": CHATML}


@dataclass(frozen=True)
class Unwrapped:
    """What a templated user turn held."""

    instruction: str
    input: str = ""
    system: str = ""

    @property
    def prompt(self) -> str:
        """The instruction and its input, separated by a blank line (as the converters join them)."""
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction


def unwrap(text: str, template: str) -> Unwrapped | None:
    """The parts of `text` if the whole of it is `template`, else None."""
    match = TEMPLATES[template].fullmatch(text)
    if match is None:
        return None
    parts = match.groupdict()
    instruction = (parts.get("instruction") or "").strip()
    if not instruction:
        return None
    return Unwrapped(instruction, (parts.get("input") or "").strip(), (parts.get("system") or "").strip())


def strip_template(messages: list[dict], template: str) -> tuple[list[dict], Unwrapped | None]:
    """`messages` with `template` taken off every user turn that is wrapped in it, and what the first
    such turn held (None when no turn was)."""
    out: list[dict] = []
    first: Unwrapped | None = None
    has_system = bool(messages) and messages[0]["role"] == "system"
    for index, turn in enumerate(messages):
        found = unwrap(turn["content"], template) if turn["role"] == "user" else None
        if found is None:
            out.append(turn)
            continue
        if found.system:
            if index != 0 or has_system:
                out.append(turn)  # nowhere to put a second system prompt: leave the turn whole
                continue
            out.append({"role": "system", "content": found.system})
        out.append({**turn, "content": found.prompt})
        first = first or found
    return out, first
