"""Converters to `preference` rows (id, prompt, chosen, rejected: conversations; source, meta) —
what trl's RewardTrainer and DPOTrainer read — and to ranked candidates.

| name | record | row |
|---|---|---|
| `hh_rlhf` | Anthropic HH-RLHF: chosen, rejected transcripts ("\\n\\nHuman: … \\n\\nAssistant: …") | prompt: the shared turns up to the last user turn; chosen / rejected: what follows |
| `dpo` | LLaMA-Factory (conversations [{from, value}], chosen {from, value}, rejected {…}); alpaca-style (instruction, input, chosen, rejected strings); trl (prompt, chosen, rejected: strings or message lists) | prompt turns; one assistant turn (or more) each |
| `ranked_responses` | one prompt with k responses: prompt / instruction (+ input) / messages, and responses or completions: strings best first, or objects {response/text/content, score or rank, model} | a `chat` row with the best response; every candidate with its score in meta.responses, for preference_pairs |

The final responses may be empty (a model did answer nothing): the preference_pairs stage judges
and drops such pairs with a reason. Anything else that does not parse is quarantined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from curate.converters.chat import join_prompt
from curate.converters.common import ConverterMapper, check_turns, message, parse_messages, text_field
from curate.mapping import FieldError

HH_TURN = re.compile(r"\n\n(Human|Assistant):")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_hh(transcript: Any, where: str) -> list[dict]:
    """An HH-RLHF transcript → messages (turns must alternate from Human and end with Assistant)."""
    if not isinstance(transcript, str):
        raise FieldError(
            where, "missing" if transcript is None else f"is {type(transcript).__name__}, expected a string"
        )
    parts = HH_TURN.split(transcript)
    if parts[0].strip():
        raise FieldError(where, "text before the first 'Human:' turn")
    if len(parts) < 5:
        raise FieldError(where, "expected at least one '\\n\\nHuman:' and one '\\n\\nAssistant:' turn")
    messages = [message(HH_ROLES[role], text.strip()) for role, text in zip(parts[1::2], parts[2::2])]
    return check_turns(messages, where, ends_with="assistant", allow_empty_last=True)


def split_shared_prompt(chosen: list[dict], rejected: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(prompt, chosen, rejected): the longest shared run of turns that ends with a user turn,
    and the rest of each conversation (starting with the assistant)."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    while shared > 0 and chosen[shared - 1]["role"] != "user":
        shared -= 1
    if shared == 0:
        raise FieldError("chosen", "chosen and rejected share no prompt (they differ from the first user turn)")
    return chosen[:shared], chosen[shared:], rejected[shared:]


@dataclass
class HHRLHFMapper(ConverterMapper):
    """Anthropic HH-RLHF pairs: two full transcripts that differ in the final assistant turn(s)."""

    record_fields: ClassVar[tuple[str, ...]] = ("chosen", "rejected")

    kind: str = "preference"

    def map(self, record: dict, default_id: str, source: str) -> dict:
        chosen = parse_hh(record.get("chosen"), "chosen")
        rejected = parse_hh(record.get("rejected"), "rejected")
        prompt, chosen, rejected = split_shared_prompt(chosen, rejected)
        self.check_size(prompt, chosen, rejected)
        return {
            "id": self.row_id(record, default_id),
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "source": source,
            "meta": self.meta(record, ("chosen", "rejected")),
        }


def response_turns(value: Any, where: str) -> list[dict]:
    """A response given as a string, a {from/role, value/content} object, or a list of messages."""
    if isinstance(value, str):
        return [message("assistant", value.strip())]
    if isinstance(value, dict):
        return response_turns([value], where)
    if isinstance(value, list):
        role_key = "from" if value and isinstance(value[0], dict) and "from" in value[0] else "role"
        content_key = "value" if role_key == "from" else "content"
        turns = parse_messages(value, where, role_key, content_key)
        if not turns or turns[0]["role"] != "assistant":
            raise FieldError(where, "a response must start with an assistant turn")
        for turn in turns:
            turn["content"] = turn["content"].strip()
        return turns
    raise FieldError(where, "missing" if value is None else f"is {type(value).__name__}, expected a string or messages")


# The fields `prompt_turns` reads the prompt from, whichever the record has.
PROMPT_FIELDS = ("conversations", "messages", "prompt", "instruction", "input", "system")


def prompt_turns(record: dict) -> tuple[list[dict], tuple[str, ...]]:
    """The prompt of a record (ending with a user turn) and the fields it used."""
    if "conversations" in record:
        turns = parse_messages(record["conversations"], "conversations", "from", "value")
        used: tuple[str, ...] = ("conversations", "system")
    elif isinstance(record.get("prompt"), list) or "messages" in record:
        key = "prompt" if isinstance(record.get("prompt"), list) else "messages"
        turns = parse_messages(record[key], key, "role", "content")
        used = (key, "system")
    elif "instruction" in record:
        turns = [
            message("user", join_prompt(text_field(record, "instruction"), text_field(record, "input", required=False)))
        ]
        used = ("instruction", "input", "system")
    else:
        turns = [message("user", text_field(record, "prompt").strip())]
        used = ("prompt", "system")
    if turns and turns[0]["role"] != "system":
        system = text_field(record, "system", required=False)
        turns = ([message("system", system)] if system.strip() else []) + turns
    check_turns(turns, used[0], ends_with="user")
    return turns, used


@dataclass
class DPOPairMapper(ConverterMapper):
    """Ready-made preference pairs: LLaMA-Factory's sharegpt or alpaca styles, or trl's
    prompt / chosen / rejected (strings or conversational)."""

    record_fields: ClassVar[tuple[str, ...]] = PROMPT_FIELDS + ("chosen", "rejected")

    kind: str = "preference"

    def map(self, record: dict, default_id: str, source: str) -> dict:
        prompt, used = prompt_turns(record)
        chosen = response_turns(record.get("chosen"), "chosen")
        rejected = response_turns(record.get("rejected"), "rejected")
        self.check_size(prompt, chosen, rejected)
        return {
            "id": self.row_id(record, default_id),
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "source": source,
            "meta": self.meta(record, used + ("chosen", "rejected")),
        }


def candidate(value: Any, index: int, where: str) -> dict:
    """One of k responses: a string (ranked by its position) or an object with its score/rank."""
    if isinstance(value, str):
        return {"content": value.strip(), "rank": index + 1}
    if not isinstance(value, dict):
        raise FieldError(f"{where}[{index}]", f"is {type(value).__name__}, expected a string or an object")
    text_key = next((k for k in ("response", "text", "content", "output") if k in value), None)
    if text_key is None or not isinstance(value[text_key], str):
        raise FieldError(f"{where}[{index}]", "missing the response text (response, text, content or output)")
    out = {"content": value[text_key].strip()}
    for key in ("score", "overall_score", "rating", "rank"):
        if key in value and value[key] is not None:
            number = value[key]
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise FieldError(f"{where}[{index}].{key}", f"is {number!r}, expected a number")
            out["rank" if key == "rank" else "score"] = float(number) if key != "rank" else int(number)
    if "score" not in out and "rank" not in out:
        out["rank"] = index + 1
    if isinstance(value.get("model"), str):
        out["model"] = value["model"]
    return out


@dataclass
class RankedResponsesMapper(ConverterMapper):
    """k responses to one prompt in one record (UltraFeedback-like, best-of-n dumps)."""

    record_fields: ClassVar[tuple[str, ...]] = PROMPT_FIELDS + ("responses", "completions")

    def map(self, record: dict, default_id: str, source: str) -> dict:
        prompt, used = prompt_turns(record)
        key = "responses" if "responses" in record else "completions"
        values = record.get(key)
        if not isinstance(values, list) or len(values) < 2:
            raise FieldError(key, "missing" if values is None else "expected a list of at least two responses")
        candidates = [candidate(v, i, key) for i, v in enumerate(values)]
        if any("score" in c for c in candidates) and not all("score" in c for c in candidates):
            raise FieldError(key, "some responses have a score and others do not")
        best = max(candidates, key=lambda c: (c["score"], -c.get("rank", 0)) if "score" in c else -c["rank"])
        if not best["content"]:
            raise FieldError(key, "the best response is empty")
        messages = prompt + [message("assistant", best["content"])]
        self.check_size(messages, [message("assistant", c["content"]) for c in candidates])
        return {
            "id": self.row_id(record, default_id),
            "messages": messages,
            "source": source,
            "meta": self.meta(record, used + (key,), {"responses": candidates}),
        }


PREFERENCE_MAPPERS = {
    "hh_rlhf": HHRLHFMapper,
    "dpo": DPOPairMapper,
    "ranked_responses": RankedResponsesMapper,
}
