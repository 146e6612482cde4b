"""The record mappers `input.records` picks from, by name.

`documents` is `curate.mapping.DocumentMapper`; the converters to `chat` and `preference` rows
(and Stack Exchange posts to post rows) are in `curate.converters`. A new converter is a
`RecordMapper` subclass added to `curate.converters.CONVERTERS`.
"""

from __future__ import annotations

from curate.converters import CONVERTERS
from curate.mapping import DocumentMapper, RecordMapper

# name → mapper class (a dataclass: its fields are its options)
MAPPERS: dict[str, type[RecordMapper]] = {"documents": DocumentMapper, **CONVERTERS}
