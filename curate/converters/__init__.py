"""Converters from real SFT and preference formats to Thresher's `chat` and `preference` rows
(and Stack Exchange dumps to post rows), by the name `input.records=<name>` picks them with
(`curate.records.MAPPERS` holds them all)."""

from __future__ import annotations

from curate.converters.chat import CHAT_MAPPERS
from curate.converters.preference import PREFERENCE_MAPPERS
from curate.converters.stackexchange import StackExchangePostsMapper

CONVERTERS = {**CHAT_MAPPERS, **PREFERENCE_MAPPERS, "stackexchange_posts": StackExchangePostsMapper}
