"""A converter applied to records that name their fields differently (`input.fields`) or whose user
turns are wrapped in a known prompt template (`input.strip_template`), without a script.

`input.fields={instruction: prompt, output: answer}` reads a file of {prompt, answer} records with
the `alpaca` converter: each key is a field the converter reads (its `record_fields`), each value
the field of the file that holds it (a dotted path reaches a nested field). The names change
together, so `{instruction: input, input: instruction}` swaps two fields. A record that has a field
under a mapped-to name as well (both `instruction` and `prompt`, with `instruction: prompt`) is
bad input: either value could be meant. A record without the mapped field is read as it is
(files that mix both namings convert). Errors name the file's own field.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from curate.converters.templates import strip_template, unwrap
from curate.mapping import FieldError, RecordMapper, to_json

FIELD_HEAD = re.compile(r"[^.\[]+")


def take(record: dict, dotted: str) -> tuple[bool, Any]:
    """(found, value) of `record`'s field at a dotted path; a found nested value is removed from a
    copy of its parent object in `record` (the rest of the parent stays, for `meta`)."""
    head, _, rest = dotted.partition(".")
    if head not in record:
        return False, None
    if not rest:
        return True, record.pop(head)
    parent = record[head]
    if not isinstance(parent, dict):
        return False, None
    parent = dict(parent)
    found, value = take(parent, rest)
    if found:
        record[head] = parent
    return found, value


def rename_fields(record: dict, fields: dict[str, str]) -> dict:
    """`record` with each mapped field under the name the converter reads (all names at once)."""
    out = dict(record)
    values = {}
    for target, source in fields.items():
        found, value = take(out, source)
        if found:
            values[target] = value
    for target in values:
        if target in out:  # not itself mapped away: two values for one field
            raise FieldError(
                fields[target],
                f"the record has '{target}' as well, and input.fields reads '{target}' from "
                f"'{fields[target]}': map '{target}' to another name too (input.fields.<name>={target})",
            )
    out.update(values)
    return out


class MappedInput(RecordMapper):
    """`inner` (a converter) on records renamed by `fields`, user turns taken out of `template`."""

    def __init__(self, inner: RecordMapper, fields: dict[str, str], template: str | None = None):
        super().__init__(kind=inner.kind, max_doc_chars=inner.max_doc_chars)
        self.inner = inner
        self.fields = dict(fields)
        self.template = template

    def schema(self):
        return self.inner.schema()

    def map(self, record: dict, default_id: str, source: str) -> dict:
        renamed = rename_fields(record, self.fields) if self.fields else record
        try:
            row = self.inner.map(renamed, default_id, source)
        except FieldError as error:
            raise self.named_as_in_file(error) from None
        return self.unwrapped(row) if self.template else row

    def named_as_in_file(self, error: FieldError) -> FieldError:
        """An error about a mapped field, naming the file's field (`prompt[2]`, not `instruction[2]`)."""
        match = FIELD_HEAD.match(error.field or "")
        if match is None or match.group() not in self.fields:
            return error
        head = match.group()
        return FieldError(
            self.fields[head] + error.field[len(head) :], f"{error.message} (read as '{head}', input.fields)"
        )

    def unwrapped(self, row: dict) -> dict:
        """The row with the template taken off its user turns (and off `meta.instruction`, which the
        selection and generation stages read)."""
        assert self.template is not None
        key = "prompt" if self.kind == "preference" else "messages"
        row[key], found = strip_template(row[key], self.template)
        if found is not None and row.get("meta"):
            meta = orjson.loads(row["meta"])
            inner = unwrap(meta.get("instruction") or "", self.template) if isinstance(meta, dict) else None
            if inner is not None:
                meta["instruction"], meta["input"] = inner.instruction, inner.input
                row["meta"] = to_json(meta)
        return row
