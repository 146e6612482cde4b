"""The record mappers `input.records` picks from, by name.

`documents` is `curate.mapping.DocumentMapper`; the converters to `chat` and `preference` rows
(and Stack Exchange posts to post rows) are in `curate.converters`. A new converter is a
`RecordMapper` subclass added to `curate.converters.CONVERTERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from curate.converters import CONVERTERS
from curate.mapping import DocumentMapper, RecordMapper

# name → factory(options)
MAPPERS: dict[str, Callable[..., RecordMapper]] = {"documents": DocumentMapper, **CONVERTERS}
