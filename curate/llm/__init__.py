"""Generation backends behind one interface (`LLM.generate(requests) -> generations`): an
OpenAI-compatible HTTP endpoint (vLLM, llama.cpp server, TGI, Ollama) and local transformers.
Pick one with the `conf/llm/` config group."""

from curate.llm.base import LLM, Generation, GenerationRequest, LLMError
from curate.llm.config import LLMConfig
from curate.llm.factory import make_llm

__all__ = ["LLM", "Generation", "GenerationRequest", "LLMConfig", "LLMError", "make_llm"]
