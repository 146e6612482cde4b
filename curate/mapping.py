"""Record mappers: turn one raw input record (a dict) into one row of a dataset kind.

Readers parse containers (JSON lines, arrays, Parquet, text, code trees) into records; a mapper
checks the fields it needs and builds the row. A bad field raises `FieldError`, which the reader
quarantines (or reports, with `input.on_error=fail`) with the file, position and field.

Here: the mapper base and `DocumentMapper` (`input.records=documents`). The converters to `chat`
and `preference` rows (`curate.converters`) build on this module; `curate.records.MAPPERS`
names them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
import pyarrow as pa

from curate.schema import KINDS, TYPE_NAMES


class FieldError(Exception):
    """A record's field is missing or has the wrong type or value."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


def get_field(record: dict, dotted: str) -> Any:
    """`record["a"]["b"]` for 'a.b'; raises KeyError if any part is missing."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def to_json(value: Any, field_name: str = "meta") -> str:
    """`value` as JSON text; a value orjson cannot write (nested deeper than its 254 levels) is a
    FieldError of `field_name`, so the record is quarantined, not the run stopped."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as error:
        raise FieldError(field_name, f"cannot be written as JSON ({error}: nested too deeply?)") from None


@dataclass
class RecordMapper:
    """Base of the mappers. `kind` names the dataset kind of the rows it builds; `record_fields`, the
    record fields it reads by name (what `input.fields` may map other names to)."""

    record_fields: ClassVar[tuple[str, ...]] = ()

    kind: str = "documents"
    max_doc_chars: int = 64_000_000

    def schema(self) -> pa.Schema:
        return KINDS[self.kind]

    def map(self, record: dict, default_id: str, source: str) -> dict:
        raise NotImplementedError

    def for_file(self, path: str) -> RecordMapper:
        """The mapper for the records of the input file at `path` (a mapper whose rows depend on where
        the file is, e.g. a Stack Exchange dump named by its folder, returns a copy that knows)."""
        return self


@dataclass
class DocumentMapper(RecordMapper):
    """Records with a text field → `documents` rows (id, text, source, meta + promoted columns).

    - `text_field` / `id_field`: where the text and the id are (dotted paths reach nested fields).
      A record without an id gets a stable one: `<file label>:<position>`.
    - `columns`: fields promoted to typed columns (name → type name); the rest go to `meta` as JSON.
    - Empty documents and documents over `max_doc_chars` characters are bad input.
    """

    text_field: str = "text"
    id_field: str = "id"
    columns: dict[str, str] = field(default_factory=dict)

    def schema(self) -> pa.Schema:
        schema = KINDS["documents"]
        for name, type_name in self.columns.items():
            schema = schema.append(pa.field(name, TYPE_NAMES[type_name]))
        return schema

    def check_text(self, text: Any) -> str:
        if not isinstance(text, str):
            raise FieldError(self.text_field, f"is {type(text).__name__}, expected a string")
        if not text.strip():
            raise FieldError(self.text_field, "empty document")
        if len(text) > self.max_doc_chars:
            raise FieldError(self.text_field, f"document too large ({len(text)} characters > {self.max_doc_chars})")
        return text

    def map(self, record: dict, default_id: str, source: str) -> dict:
        try:
            text = get_field(record, self.text_field)
        except KeyError:
            raise FieldError(self.text_field, "missing") from None
        text = self.check_text(text)
        row: dict[str, Any] = {"text": text, "source": source}
        doc_id = record.get(self.id_field)
        row["id"] = default_id if doc_id is None else str(doc_id)
        rest = {k: v for k, v in record.items() if k not in (self.id_field, self.text_field)}
        if "." in self.text_field:  # nested text: keep the rest of its parent object in meta
            top = self.text_field.split(".")[0]
            rest[top] = {k: v for k, v in record[top].items() if k != self.text_field.split(".", 1)[1]}
        for name, type_name in self.columns.items():
            value = rest.pop(name, None)
            row[name] = self.coerce(name, value, type_name)
        row["meta"] = to_json(rest) if rest else None
        return row

    @staticmethod
    def coerce(name: str, value: Any, type_name: str) -> Any:
        if value is None:
            return None
        try:
            if type_name == "string":
                return value if isinstance(value, str) else str(value)
            if type_name in ("int64", "int32"):
                return int(value)
            if type_name in ("float64", "float32"):
                return float(value)
            if type_name == "bool":
                return bool(value)
        except (TypeError, ValueError):
            raise FieldError(name, f"is {value!r}, expected {type_name}") from None
        return value
