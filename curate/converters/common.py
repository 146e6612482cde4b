"""Shared checks of the converters: fields, roles, and the shape of a conversation.

A converter raises `FieldError(field, message)` for anything it cannot represent faithfully (a
missing or mistyped field, an unknown role, turns out of order, a conversation with nothing for
the assistant to learn); the reader quarantines the record with its file and position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curate.mapping import FieldError, RecordMapper, to_json

# Role names found in the wild (ShareGPT, OpenAI, LLaMA-Factory, Vicuna) → the chat schema's roles.
ROLES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "question": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "answer": "assistant",
}


def message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def text_field(record: dict, name: str, required: bool = True, allow_empty: bool = False) -> str:
    """`record[name]` as a string: missing (when required), non-string or empty values are errors."""
    value = record.get(name)
    if value is None:
        if required:
            raise FieldError(name, "missing")
        return ""
    if not isinstance(value, str):
        raise FieldError(name, f"is {type(value).__name__}, expected a string")
    if required and not allow_empty and not value.strip():
        raise FieldError(name, "empty")
    return value


def role_of(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in ROLES:
        raise FieldError(where, f"unknown role {value!r}; expected one of: {', '.join(sorted(ROLES))}")
    return ROLES[value.strip().lower()]


def check_turns(
    messages: list[dict], where: str, ends_with: str | None = "assistant", allow_empty_last: bool = False
) -> list[dict]:
    """Check a conversation: an optional system message first, then user and assistant turns
    alternating from a user turn, each non-empty; ending with `ends_with` if given."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not body:
        raise FieldError(where, "no user or assistant turn")
    for index, turn in enumerate(body):
        expected = "user" if index % 2 == 0 else "assistant"
        if turn["role"] != expected:
            position = index + len(messages) - len(body)
            raise FieldError(
                f"{where}[{position}]",
                f"{turn['role']} turn where a {expected} turn was expected "
                "(turns must alternate, starting with the user)",
            )
        last = index == len(body) - 1
        if not turn["content"].strip() and not (last and allow_empty_last):
            raise FieldError(f"{where}[{index + len(messages) - len(body)}]", f"empty {turn['role']} turn")
    if ends_with and body[-1]["role"] != ends_with:
        raise FieldError(where, f"ends with a {body[-1]['role']} turn; expected the last turn to be {ends_with}")
    return messages


def parse_messages(value: Any, where: str, role_key: str, content_key: str) -> list[dict]:
    """A list of {role, content}-like objects (keys given) → chat messages (roles normalised)."""
    if not isinstance(value, list):
        raise FieldError(where, f"is {type(value).__name__}, expected a list of messages")
    messages = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise FieldError(f"{where}[{index}]", f"is {type(item).__name__}, expected an object")
        role = role_of(item.get(role_key), f"{where}[{index}].{role_key}")
        content = item.get(content_key)
        if not isinstance(content, str):
            raise FieldError(
                f"{where}[{index}].{content_key}",
                "missing" if content is None else f"is {type(content).__name__}, expected a string",
            )
        if role == "system" and (index != 0 or not content.strip()):
            if not content.strip():
                continue  # an empty system prompt says nothing: leave it out
            raise FieldError(f"{where}[{index}]", "a system message is only allowed first")
        messages.append(message(role, content))
    return messages


@dataclass
class ConverterMapper(RecordMapper):
    """Base of the chat and preference converters: the record's id (or `<file>:<position>`), the
    fields the converter used, and the rest of the record kept in `meta` as JSON."""

    kind: str = "chat"
    id_field: str = "id"

    def row_id(self, record: dict, default_id: str) -> str:
        value = record.get(self.id_field)
        return default_id if value is None or value == "" else str(value)

    def meta(self, record: dict, used: tuple[str, ...], extra: dict | None = None) -> str | None:
        rest = {k: v for k, v in record.items() if k not in used and k != self.id_field}
        rest.update(extra or {})
        return to_json(rest) if rest else None

    def check_size(self, *conversations: list[dict]) -> None:
        size = sum(len(m["content"]) for conversation in conversations for m in conversation)
        if size > self.max_doc_chars:
            raise FieldError("messages", f"conversation too large ({size} characters > {self.max_doc_chars})")
