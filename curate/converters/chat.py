"""Converters from the common SFT formats to `chat` rows (id, messages, source, meta).

Each is a `RecordMapper` picked with `input.records=<name>`:

| name | record | messages |
|---|---|---|
| `alpaca` | instruction, input, output (+ optional system, history [[user, assistant], ...]) | [system], history..., user: instruction + input, assistant: output |
| `lima` | GAIR LIMA: conversations [str, ...] alternating user/assistant, source; or LLaMA-Factory's conversion (alpaca fields) | the turns |
| `sharegpt` | conversations [{from, value}] (human/gpt/system), optional system | the turns |
| `messages` | messages [{role, content}] (OpenAI / trl) | the turns |
| `dolly` | instruction, context, response, category | user: instruction + context, assistant: response |
| `prompt_completion` | prompt, completion (strings) | user: prompt, assistant: completion (end-of-text marker removed) |
| `self_instruct_seeds` | Self-Instruct seed tasks: instruction, instances [{input, output}], is_classification | the first instance; every instance, the instruction and `is_classification` in meta |
| `responses` | one model response per record: instruction (+ input) or prompt, response, target (reference) | user: prompt, assistant: response (may be empty); the reference in meta |

Fields not used for the messages are kept in `meta` (JSON). Alpaca-like converters also keep
the bare `instruction` and `input` in meta: selection and generation stages read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from curate.converters.common import ConverterMapper, check_turns, message, parse_messages, text_field
from curate.mapping import FieldError

# End-of-text markers left in completions by GPT-3 fine-tuning files (T0/Self-Instruct) and others.
END_MARKERS = ("<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>")


def join_prompt(instruction: str, extra: str) -> str:
    """An instruction and its input (or context), separated by a blank line, as most chat
    conversions of Alpaca do (LLaMA-Factory joins them with a newline; a blank line keeps
    multi-line inputs apart)."""
    instruction, extra = instruction.strip(), extra.strip()
    return f"{instruction}\n\n{extra}" if extra else instruction


def history_turns(record: dict, field_name: str = "history") -> list[dict]:
    """LLaMA-Factory's `history`: [[user, assistant], ...] turns before the instruction."""
    value = record.get(field_name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FieldError(field_name, f"is {type(value).__name__}, expected a list of [user, assistant] pairs")
    turns = []
    for index, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise FieldError(f"{field_name}[{index}]", "expected a [user, assistant] pair of strings")
        turns += [message("user", pair[0]), message("assistant", pair[1])]
    return turns


def system_turn(record: dict) -> list[dict]:
    system = text_field(record, "system", required=False)
    return [message("system", system)] if system.strip() else []


@dataclass
class AlpacaMapper(ConverterMapper):
    """Alpaca / LLaMA-Factory alpaca format (instruction, input, output, optional system and history)."""

    record_fields: ClassVar[tuple[str, ...]] = ("instruction", "input", "output", "system", "history")

    def convert(self, record: dict) -> list[dict]:
        instruction = text_field(record, "instruction")
        extra = text_field(record, "input", required=False)
        output = text_field(record, "output")
        messages = system_turn(record) + history_turns(record)
        messages += [message("user", join_prompt(instruction, extra)), message("assistant", output.strip())]
        return check_turns(messages, "history" if record.get("history") else "output")

    def map(self, record: dict, default_id: str, source: str) -> dict:
        messages = self.convert(record)
        self.check_size(messages)
        extra = {"instruction": record["instruction"].strip(), "input": (record.get("input") or "").strip()}
        used = ("instruction", "input", "output", "system", "history")
        return {
            "id": self.row_id(record, default_id),
            "messages": messages,
            "source": source,
            "meta": self.meta(record, used, extra),
        }


@dataclass
class LimaMapper(ConverterMapper):
    """LIMA: GAIR's format (conversations: alternating user/assistant strings, source), or the
    alpaca-style conversion LLaMA-Factory ships (instruction, output, history)."""

    record_fields: ClassVar[tuple[str, ...]] = ("conversations", *AlpacaMapper.record_fields)

    def map(self, record: dict, default_id: str, source: str) -> dict:
        if "conversations" not in record and "instruction" in record:
            return AlpacaMapper(max_doc_chars=self.max_doc_chars, id_field=self.id_field).map(
                record, default_id, source
            )
        turns = record.get("conversations")
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise FieldError("conversations", "missing" if turns is None else "expected a list of strings")
        messages = [message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(turns)]
        check_turns(messages, "conversations")
        self.check_size(messages)
        return {
            "id": self.row_id(record, default_id),
            "messages": messages,
            "source": source,
            "meta": self.meta(record, ("conversations",)),
        }


@dataclass
class ShareGPTMapper(ConverterMapper):
    """ShareGPT: conversations [{from: human|gpt|system, value}], optional top-level system."""

    record_fields: ClassVar[tuple[str, ...]] = ("conversations", "system")

    field_name: str = "conversations"
    role_key: str = "from"
    content_key: str = "value"

    def map(self, record: dict, default_id: str, source: str) -> dict:
        if self.field_name not in record:
            raise FieldError(self.field_name, "missing")
        messages = parse_messages(record[self.field_name], self.field_name, self.role_key, self.content_key)
        if messages and messages[0]["role"] != "system":
            messages = system_turn(record) + messages
        check_turns(messages, self.field_name)
        self.check_size(messages)
        return {
            "id": self.row_id(record, default_id),
            "messages": messages,
            "source": source,
            "meta": self.meta(record, (self.field_name, "system")),
        }


@dataclass
class MessagesMapper(ShareGPTMapper):
    """OpenAI / trl conversational records: messages [{role, content}]."""

    record_fields: ClassVar[tuple[str, ...]] = ("messages", "system")

    field_name: str = "messages"
    role_key: str = "role"
    content_key: str = "content"


@dataclass
class DollyMapper(ConverterMapper):
    """databricks-dolly-15k: instruction, context (optional), response, category (kept in meta)."""

    record_fields: ClassVar[tuple[str, ...]] = ("instruction", "context", "response")

    def map(self, record: dict, default_id: str, source: str) -> dict:
        instruction = text_field(record, "instruction")
        context = text_field(record, "context", required=False)
        response = text_field(record, "response")
        messages = [message("user", join_prompt(instruction, context)), message("assistant", response.strip())]
        self.check_size(messages)
        extra = {"instruction": instruction.strip(), "input": context.strip()}
        return {
            "id": self.row_id(record, default_id),
            "messages": messages,
            "source": source,
            "meta": self.meta(record, ("instruction", "context", "response"), extra),
        }


def strip_end_marker(text: str) -> str:
    text = text.rstrip()
    for marker in END_MARKERS:
        if text.endswith(marker):
            return text[: -len(marker)].rstrip()
    return text


@dataclass
class PromptCompletionMapper(ConverterMapper):
    """prompt / completion string pairs (GPT-3 fine-tuning files, T0 templates): one user turn and
    one assistant turn; a trailing end-of-text marker (`<|endoftext|>`, `</s>`, ...) is removed."""

    record_fields: ClassVar[tuple[str, ...]] = ("prompt", "completion")

    def map(self, record: dict, default_id: str, source: str) -> dict:
        prompt = text_field(record, "prompt")
        completion = strip_end_marker(text_field(record, "completion"))
        if not completion.strip():
            raise FieldError("completion", "empty once the end-of-text marker is removed")
        messages = [message("user", prompt.strip()), message("assistant", completion.strip())]
        self.check_size(messages)
        return {
            "id": self.row_id(record, default_id),
            "messages": messages,
            "source": source,
            "meta": self.meta(record, ("prompt", "completion")),
        }


@dataclass
class SelfInstructSeedMapper(ConverterMapper):
    """Self-Instruct / Alpaca seed tasks: instruction, instances [{input, output}], is_classification.

    The row's messages are the first instance; `meta` keeps the instruction, every instance and
    `is_classification` (the self_instruct stage uses them as in-context examples)."""

    record_fields: ClassVar[tuple[str, ...]] = ("instruction", "instances", "is_classification")

    def map(self, record: dict, default_id: str, source: str) -> dict:
        instruction = text_field(record, "instruction")
        instances = record.get("instances")
        if not isinstance(instances, list) or not instances:
            raise FieldError("instances", "missing" if instances is None else "expected a non-empty list")
        clean = []
        for index, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise FieldError(f"instances[{index}]", "expected an object with input and output")
            try:
                clean.append(
                    {
                        "input": text_field(instance, "input", required=False).strip(),
                        "output": text_field(instance, "output").strip(),
                    }
                )
            except FieldError as error:
                raise FieldError(f"instances[{index}].{error.field}", error.message) from None
        is_classification = record.get("is_classification", False)
        if not isinstance(is_classification, bool):
            raise FieldError("is_classification", f"is {is_classification!r}, expected true or false")
        first = clean[0]
        messages = [message("user", join_prompt(instruction, first["input"])), message("assistant", first["output"])]
        self.check_size(messages)
        extra = {
            "instruction": instruction.strip(),
            "input": first["input"],
            "instances": clean,
            "is_classification": is_classification,
        }
        return {
            "id": self.row_id(record, default_id),
            "messages": messages,
            "source": source,
            "meta": self.meta(record, ("instruction", "instances", "is_classification"), extra),
        }


@dataclass
class ResponsesMapper(ConverterMapper):
    """One model's response to a prompt per record (Self-Instruct's human-eval predictions,
    best-of-n samples): instruction (+ input) or prompt, response, optional target (a reference
    answer) and score. Several records with the same prompt are the candidates the
    preference_pairs stage ranks and pairs. The response may be empty: that is a model's
    answer, judged (and dropped, with its reason) by the stages, not malformed input."""

    record_fields: ClassVar[tuple[str, ...]] = ("instruction", "input", "prompt", "response", "target", "score")

    def map(self, record: dict, default_id: str, source: str) -> dict:
        if "instruction" in record:
            instruction = text_field(record, "instruction")
            extra_input = text_field(record, "input", required=False)
            prompt = join_prompt(instruction, extra_input)
        else:
            prompt = text_field(record, "prompt").strip()
            instruction, extra_input = prompt, ""
        response = strip_end_marker(text_field(record, "response", allow_empty=True))
        messages = [message("user", prompt), message("assistant", response.strip())]
        self.check_size(messages)
        extra = {"instruction": instruction.strip(), "input": extra_input.strip()}
        if "target" in record:
            extra["reference"] = text_field(record, "target", required=False)
        score = record.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise FieldError("score", f"is {score!r}, expected a number")
        return {
            "id": self.row_id(record, default_id),
            "messages": messages,
            "source": source,
            "meta": self.meta(record, ("instruction", "input", "prompt", "response", "target"), extra),
        }


CHAT_MAPPERS = {
    "alpaca": AlpacaMapper,
    "lima": LimaMapper,
    "sharegpt": ShareGPTMapper,
    "messages": MessagesMapper,
    "dolly": DollyMapper,
    "prompt_completion": PromptCompletionMapper,
    "self_instruct_seeds": SelfInstructSeedMapper,
    "responses": ResponsesMapper,
}
