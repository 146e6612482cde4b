"""Stack Exchange data dumps (Posts.xml, read by the `xml` row reader) → `documents` rows, one per
post, with the fields the question/answer join needs as typed columns.

Each <row> of Posts.xml is a post: questions (PostTypeId 1) carry Title, Tags, ViewCount,
AnswerCount and AcceptedAnswerId; answers (PostTypeId 2) carry ParentId. Score is up minus
down votes. Bodies are HTML: `text` is their Markdown rendering (code blocks and lists kept,
links reduced to their text). Other attributes (dates, owner, licence) go to `meta`.

Joining questions with their best answer needs every row: that is the `stackexchange_qa`
global stage (recipe `stackexchange_qa`), which turns these rows into `chat` rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from curate import fs
from curate.converters.html import html_to_text
from curate.mapping import FieldError, RecordMapper, to_json
from curate.schema import KINDS

POST_COLUMNS = [
    ("post_type", pa.int32()),
    ("parent_id", pa.string()),
    ("accepted_answer_id", pa.string()),
    ("score", pa.int64()),
    ("view_count", pa.int64()),
    ("answer_count", pa.int64()),
    ("title", pa.string()),
    ("tags", pa.list_(pa.string())),
    ("dump", pa.string()),  # the file the post came from: post ids are unique only within one dump
]
USED = (
    "Id",
    "PostTypeId",
    "ParentId",
    "AcceptedAnswerId",
    "Score",
    "ViewCount",
    "AnswerCount",
    "Title",
    "Tags",
    "Body",
)
TAG = re.compile(r"<([^<>]+)>")
POST_ID = re.compile(r"^[0-9]+$")


def present(record: dict, name: str, required: bool) -> Any:
    """The field's value, or None when it is absent or empty (a FieldError if it is required)."""
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise FieldError(name, "missing")
        return None
    return value


def integer(record: dict, name: str, required: bool = False) -> int | None:
    value = present(record, name, required)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FieldError(name, f"is {value!r}, expected an integer") from None


def post_id(record: dict, name: str, required: bool = False) -> str | None:
    value = present(record, name, required)
    if value is None:
        return None
    if not POST_ID.match(str(value)):
        raise FieldError(name, f"is {value!r}, expected a post id (digits)")
    return str(value)


def parse_tags(value: str | None) -> list[str]:
    """'<beer><hops>' (older dumps) or '|beer|hops|' (2024+ dumps) → ['beer', 'hops']."""
    if not value:
        return []
    tags = TAG.findall(value)
    return tags if tags else [t for t in value.split("|") if t]


@dataclass
class StackExchangePostsMapper(RecordMapper):
    """Posts.xml rows → `documents` rows with post_type, parent_id, accepted_answer_id, score,
    view_count, answer_count, title, tags, and `dump`: the file's label under its input entry, with
    the folder holding it when the label has none (a site's folder given as the entry: the site is
    named by its folder, `beer.stackexchange.com/Posts.xml`)."""

    record_fields: ClassVar[tuple[str, ...]] = USED

    kind: str = "documents"
    folder: str = ""  # the name of the folder holding the file being read (set by `for_file`)

    def for_file(self, path: str) -> StackExchangePostsMapper:
        folder = fs.parent(path) if fs.is_remote(path) else str(Path(path).absolute().parent)
        return replace(self, folder=fs.basename(folder))

    def dump_of(self, default_id: str) -> str:
        label = default_id.rsplit(":", 1)[0]
        return label if "/" in label or not self.folder else f"{self.folder}/{label}"

    def schema(self) -> pa.Schema:
        schema = KINDS["documents"]
        for name, dtype in POST_COLUMNS:
            schema = schema.append(pa.field(name, dtype))
        return schema

    def map(self, record: dict, default_id: str, source: str) -> dict:
        body = record.get("Body")
        if body is None:
            raise FieldError("Body", "missing")
        if len(body) > self.max_doc_chars:
            raise FieldError("Body", f"post too large ({len(body)} characters > {self.max_doc_chars})")
        row = {
            "id": post_id(record, "Id", required=True),
            "text": html_to_text(body) if body.strip() else "",
            "source": source,
            "post_type": integer(record, "PostTypeId", required=True),
            "parent_id": post_id(record, "ParentId"),
            "accepted_answer_id": post_id(record, "AcceptedAnswerId"),
            "score": integer(record, "Score", required=True),
            "view_count": integer(record, "ViewCount"),
            "answer_count": integer(record, "AnswerCount"),
            "title": record.get("Title"),
            "tags": parse_tags(record.get("Tags")),
            "dump": self.dump_of(default_id),
        }
        if row["post_type"] == 2 and row["parent_id"] is None:
            raise FieldError("ParentId", "missing on an answer (PostTypeId 2)")
        rest = {k: v for k, v in record.items() if k not in USED}
        row["meta"] = to_json(rest) if rest else None
        return row
