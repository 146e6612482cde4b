"""`make_llm`: the generation backend a config describes."""

from __future__ import annotations

from curate.llm.base import LLM
from curate.llm.config import LLMConfig


def make_llm(config: LLMConfig) -> LLM:
    """The backend a config describes (models are loaded here, once)."""
    config.validate()
    # Imported here: each backend's libraries (httpx, transformers) load only when it is chosen.
    if config.backend == "openai":
        from curate.llm.http import OpenAICompatibleLLM

        return OpenAICompatibleLLM(config)
    from curate.llm.local import TransformersLLM

    return TransformersLLM(config)
