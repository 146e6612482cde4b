"""The dataset kinds Thresher writes and their declared Arrow schemas.

Schemas are declared here, never inferred from the first batch: every shard of a dataset has
exactly the schema in its manifest, so trainers and other tools can rely on it.
"""

from __future__ import annotations

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)

# Core columns per kind. Stages add typed annotation columns (lang, quality_score, ...) after these.
KINDS: dict[str, pa.Schema] = {
    # meta: the input record's other fields as a JSON object, so nothing from the source is lost.
    "documents": pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("meta", pa.string())]
    ),
    # What trl's SFTTrainer reads (conversational "messages").
    "chat": pa.schema([("id", pa.string()), ("messages", MESSAGES), ("source", pa.string()), ("meta", pa.string())]),
    # What trl's RewardTrainer / DPOTrainer read (conversational prompt, chosen, rejected).
    "preference": pa.schema(
        [
            ("id", pa.string()),
            ("prompt", MESSAGES),
            ("chosen", MESSAGES),
            ("rejected", MESSAGES),
            ("source", pa.string()),
            ("meta", pa.string()),
        ]
    ),
    # Fixed-length packed sequences; doc_starts are offsets of documents starting inside the row.
    "tokens": pa.schema([("input_ids", pa.list_(pa.int32())), ("doc_starts", pa.list_(pa.int32()))]),
}

# Columns the engine adds to every rejected row.
REJECT_COLUMNS = [("drop_stage", pa.string()), ("drop_reason", pa.string())]

# Quarantined input: where it was, what was wrong, and the raw bytes (so nothing is lost).
QUARANTINE = pa.schema(
    [
        ("file", pa.string()),
        ("position", pa.int64()),  # line for line formats, item/row index (1-based) otherwise
        ("field", pa.string()),
        ("error", pa.string()),
        ("raw", pa.binary()),
    ]
)

TYPE_NAMES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
}


def schema_to_json(schema: pa.Schema) -> list[dict]:
    """A readable, stable description of a schema for manifests."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Return `batch` with exactly `schema`'s columns, in order: missing ones become nulls, types are cast."""
    n = batch.num_rows
    columns = []
    for field in schema:
        idx = batch.schema.get_field_index(field.name)
        if idx < 0:
            columns.append(pa.nulls(n, field.type))
            continue
        column = batch.column(idx)
        if column.type != field.type:
            column = column.cast(field.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)
