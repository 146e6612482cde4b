"""An OpenAI-compatible HTTP backend (vLLM, llama.cpp server, TGI, Ollama, OpenAI).

`/completions` in completion mode, `/chat/completions` in chat mode. Every request has a
timeout; connection errors, timeouts, 429 and 5xx answers are retried with exponential backoff
(honouring Retry-After); a client error (4xx) or a malformed answer fails at once with the
server's message. A rate limiter spaces request starts; a thread pool bounds concurrency.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from curate.llm.base import LLM, Generation, GenerationRequest, LLMError, cut_at_stop
from curate.llm.config import LLMConfig

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 60.0


class RateLimiter:
    """At most `per_minute` request starts per minute, evenly spaced (0: no limit)."""

    def __init__(self, per_minute: float):
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.next_start = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        if start > now:
            time.sleep(start - now)


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class OpenAICompatibleLLM(LLM):
    name = "openai"

    def __init__(self, config: LLMConfig):
        self.config = config
        headers = {"Content-Type": "application/json"}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise LLMError(f"llm.api_key_env: the environment variable {config.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            limits=httpx.Limits(max_connections=config.max_concurrency),
        )
        self.limiter = RateLimiter(config.requests_per_minute)
        self.pool = ThreadPoolExecutor(max_workers=config.max_concurrency, thread_name_prefix="llm")
        self.jitter = random.Random(0)

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "model": self.config.model,
            "base_url": self.config.base_url,
            "mode": self.config.mode,
        }

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return list(self.pool.map(self.generate_one, requests))

    def payload(self, request: GenerationRequest) -> tuple[str, dict]:
        body = {
            "model": self.config.model,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "n": 1,
        }
        if request.presence_penalty:
            body["presence_penalty"] = request.presence_penalty
        if request.stop:
            body["stop"] = list(request.stop)[:4]  # the OpenAI API takes at most 4 stop sequences
        if self.config.mode == "chat":
            messages = (
                request.prompt if isinstance(request.prompt, list) else [{"role": "user", "content": request.prompt}]
            )
            return "chat/completions", {**body, "messages": messages}
        if not isinstance(request.prompt, str):
            raise LLMError("llm.mode=completion needs text prompts; set llm.mode=chat for messages")
        return "completions", {**body, "prompt": request.prompt}

    def generate_one(self, request: GenerationRequest) -> Generation:
        path, body = self.payload(request)
        last_error = ""
        for attempt in range(self.config.max_retries + 1):
            self.limiter.wait()
            try:
                return self.parse(self.post(path, body), request)
            except RetryableError as error:
                last_error = str(error)
                if attempt == self.config.max_retries:
                    break
                delay = min(MAX_BACKOFF_S, self.config.backoff_s * 2**attempt) * (1 + 0.1 * self.jitter.random())
                time.sleep(error.retry_after if error.retry_after is not None else delay)
        raise LLMError(
            f"{self.config.base_url}/{path}: failed after {self.config.max_retries + 1} attempts: {last_error}"
        )

    def post(self, path: str, body: dict) -> dict:
        try:
            response = self.client.post(path, json=body)
        except httpx.TimeoutException:
            raise RetryableError(f"timed out after {self.config.timeout_s} s") from None
        except httpx.TransportError as error:
            raise RetryableError(f"connection error: {type(error).__name__}: {error}") from None
        if response.status_code in RETRY_STATUS:
            raise RetryableError(f"HTTP {response.status_code}: {response.text[:200]}", retry_after_seconds(response))
        if response.status_code >= 400:
            raise LLMError(f"{self.config.base_url}/{path}: HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError:
            raise LLMError(f"{self.config.base_url}/{path}: the answer is not JSON: {response.text[:200]!r}") from None

    def parse(self, answer: dict, request: GenerationRequest) -> Generation:
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"] if self.config.mode == "chat" else choice["text"]
            finish = choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError):
            raise LLMError(
                f"{self.config.base_url}: unexpected answer (no choices[0] text): {str(answer)[:200]}"
            ) from None
        if not isinstance(text, str):
            raise LLMError(f"{self.config.base_url}: unexpected answer: the text is {type(text).__name__}")
        text, stopped = cut_at_stop(text, request.stop)  # servers honour at most 4 stop strings
        return Generation(
            text, "stop" if stopped else ("length" if finish == "length" else "stop"), answer.get("usage") or {}
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()
