"""Converters from real SFT and preference formats to Thresher's `chat` and `preference` rows
(and Stack Exchange dumps to post rows). Importing this package registers them in
`curate.records.MAPPERS`, where `input.records=<name>` picks one."""

from __future__ import annotations

from curate.converters.chat import CHAT_MAPPERS
from curate.converters.preference import PREFERENCE_MAPPERS
from curate.converters.stackexchange import StackExchangePostsMapper
from curate.records import MAPPERS

CONVERTERS = {**CHAT_MAPPERS, **PREFERENCE_MAPPERS, "stackexchange_posts": StackExchangePostsMapper}

for _name, _factory in CONVERTERS.items():
    MAPPERS.setdefault(_name, _factory)
