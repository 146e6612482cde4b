"""Self-Instruct (Wang et al. 2022) and Alpaca (Taori et al. 2023): prompts, parsing and filters.

The loop itself (batches, checkpoints, the LLM) is in `curate.stages.self_instruct`; this module
holds what it is made of, so each piece can be read and tested alone:
- prompt templates are files (`curate/prompts/self_instruct/*.j2`, or a folder of your own);
- `parse_instructions` reads a numbered continuation into candidate instructions;
- `instruction_problem` applies Self-Instruct's heuristic filters (the ROUGE-L novelty filter is
  `curate.sft.novelty.NoveltyIndex`);
- `parse_instance` / `instance_problem` read and check generated (input, output) instances.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from curate.sft import templates
from curate.sft.templates import render

TEMPLATE_FILES = ("instructions.j2", "is_classification.j2", "instances_input_first.j2", "instances_output_first.j2")

# Self-Instruct's keyword filter (bootstrap_instructions.py): tasks a text-only model cannot do.
SELF_INSTRUCT_BLACKLIST = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
)
# Alpaca's additions (generate_instruction.py).
ALPACA_BLACKLIST_EXTRA = ("video", "audio", "music", "flowchart", "diagram")

NUMBERED = re.compile(r"\n\s*\d+\s*[.)]\s*")
OUTPUT_MARK = re.compile(r"\n\s*Output\s*\d*\s*:", re.IGNORECASE)
INPUT_MARK = re.compile(r"(?:^|\n)\s*Input\s*\d*\s*:", re.IGNORECASE)
NONE_INPUT = {"<none>", "<noinput>", "none", "n/a", ""}


@dataclass
class SeedTask:
    instruction: str
    instances: list[dict] = field(default_factory=list)  # [{input, output}]
    is_classification: bool = False


# --------------------------------------------------------------------------------------------
# Templates


def template_folder(name: str) -> Path:
    """Self-Instruct's template set: a folder under curate/prompts/ by name, or a folder path."""
    return templates.template_folder(name, TEMPLATE_FILES)


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def instruction_prompt(folder: Path, instructions: list[str]) -> str:
    return render(folder, "instructions.j2", instructions=[one_line(i).rstrip(":") for i in instructions])


def sample_prompt_instructions(
    rng: random.Random, seeds: list[str], machine: list[str], total: int, from_machine: int
) -> list[str]:
    """Self-Instruct's in-context mix: up to `from_machine` machine instructions, the rest human, shuffled."""
    chosen = rng.sample(machine, min(from_machine, len(machine)))
    chosen += rng.sample(seeds, min(total - len(chosen), len(seeds)))
    rng.shuffle(chosen)
    return chosen


# --------------------------------------------------------------------------------------------
# Instructions


def parse_instructions(text: str, finish_reason: str) -> list[tuple[str, bool]]:
    """The instructions of a numbered continuation (the first one continues the prompt's last
    number): (instruction, truncated). The last one is truncated if generation hit its length
    limit (Self-Instruct dropped the whole answer then; Alpaca only its last instruction)."""
    parts = [one_line(p) for p in NUMBERED.split("\n" + text.lstrip(" "))]
    parts = [p for p in parts if p]
    return [(p, finish_reason == "length" and i == len(parts) - 1) for i, p in enumerate(parts)]


def capitalize_first(text: str) -> str:
    # Self-Instruct used str.capitalize(), which also lower-cases the rest (names, acronyms): not here.
    return text[:1].upper() + text[1:]


def instruction_problem(text: str, min_words: int, max_words: int, blacklist: tuple[str, ...]) -> str | None:
    """Self-Instruct's heuristic filters, as a drop reason (None keeps the instruction)."""
    words = len(text.split())
    if words < min_words:
        return "too_short"
    if words > max_words:
        return "too_long"
    if blacklisted(text, blacklist):
        return "blacklisted_word"
    if text.lower().startswith("write a program"):
        return "write_a_program"
    if text[0] in string.punctuation:
        return "starts_with_punctuation"
    if not text[0].isascii():
        return "non_ascii_start"
    return None


@lru_cache(maxsize=16)
def blacklist_pattern(words: tuple[str, ...]) -> re.Pattern | None:
    if not words:
        return None
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def blacklisted(text: str, words: tuple[str, ...]) -> bool:
    pattern = blacklist_pattern(tuple(words))
    return bool(pattern and pattern.search(text))


# --------------------------------------------------------------------------------------------
# Classification identification and instances


def classification_prompt(folder: Path, demos: list[SeedTask], instruction: str) -> str:
    return render(folder, "is_classification.j2", demos=demos, instruction=one_line(instruction))


def parse_yes_no(text: str) -> bool | None:
    word = re.match(r"\s*([A-Za-z]+)", text)
    answer = word.group(1).lower() if word else ""
    return True if answer == "yes" else False if answer == "no" else None


def instance_prompt(folder: Path, demos: list[dict], instruction: str, is_classification: bool) -> str:
    template = "instances_output_first.j2" if is_classification else "instances_input_first.j2"
    return render(folder, template, demos=demos, instruction=one_line(instruction))


def clean_input(text: str) -> str:
    text = text.strip()
    return "" if text.lower() in NONE_INPUT else text


def parse_instance(text: str, is_classification: bool) -> tuple[str, str] | None:
    """(input, output) from a continuation of an instance prompt, or None if it has no answer."""
    if is_classification:  # "<label>\nInput: <input>"
        label, _, rest = text.strip().partition("\n")
        pieces = INPUT_MARK.split("\n" + rest, maxsplit=1)
        return clean_input(pieces[1] if len(pieces) > 1 else ""), label.strip()
    parts = OUTPUT_MARK.split(text, maxsplit=1)  # "<input>\nOutput: <output>"
    if len(parts) < 2:
        return None
    output = INPUT_MARK.split(parts[1], maxsplit=1)[0]  # a second example is not part of this one
    return clean_input(parts[0]), output.strip()


def instance_problem(instance: tuple[str, str] | None, finish_reason: str) -> str | None:
    """Self-Instruct's instance filters (prepare_for_finetuning.py), as a drop reason."""
    if finish_reason == "length":
        return "truncated_instance"
    if instance is None:
        return "no_output"
    given, output = instance
    if not output:
        return "empty_output"
    if given == output:
        return "input_equals_output"
    if given.endswith(":") or output.endswith(":"):
        return "incomplete_instance"
    return None
