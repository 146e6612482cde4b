"""Generation backends: the OpenAI-compatible client against a loopback HTTP server in the test
(retries, timeouts, rate limits, errors), and local generation with the real SmolLM2 model."""

from __future__ import annotations

import time

import pytest
from llm_server import Server

from curate.llm import GenerationRequest, LLMConfig, LLMError, make_llm


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def client(server: Server, **options):
    settings = {
        "backend": "openai",
        "model": "test-model",
        "base_url": server.url,
        "timeout_s": 2.0,
        "max_retries": 3,
        "backoff_s": 0.01,
        **options,
    }
    return make_llm(LLMConfig(**settings))


def request(prompt, **options) -> GenerationRequest:
    return GenerationRequest(prompt, max_new_tokens=16, stop=("STOP",), **options)


def test_completions_in_order_and_cut_at_stop(server):
    llm = client(server)
    out = llm.generate([request(f"p{i}") for i in range(6)])
    assert [g.text for g in out] == [f"echo: p{i} " for i in range(6)]
    assert all(g.finish_reason == "stop" for g in out)
    call = server.calls[0]
    assert call["path"] == "/v1/completions" and call["body"]["model"] == "test-model"
    assert call["body"]["max_tokens"] == 16 and call["body"]["stop"] == ["STOP"]


def test_chat_mode_sends_messages(server):
    llm = client(server, mode="chat")
    out = llm.generate([request([{"role": "user", "content": "hi"}]), request("text prompt")])
    assert [g.text for g in out] == ["echo: hi ", "echo: text prompt "]
    assert {c["path"] for c in server.calls} == {"/v1/chat/completions"}
    assert server.calls[-1]["body"]["messages"] == [{"role": "user", "content": "text prompt"}] or server.calls[0][
        "body"
    ]["messages"] == [{"role": "user", "content": "text prompt"}]


def test_server_errors_and_rate_limits_are_retried(server):
    llm = client(server)
    out = llm.generate([request("flaky one"), request("busy two")])
    assert [g.text for g in out] == ["echo: flaky one ", "echo: busy two "]
    assert sum(c["body"]["prompt"] == "flaky one" for c in server.calls) == 3  # two 503s, then success
    assert sum(c["body"]["prompt"] == "busy two" for c in server.calls) == 3  # two 429s (Retry-After: 0)


def test_retries_are_bounded(server):
    llm = client(server, max_retries=1)
    with pytest.raises(LLMError, match="failed after 2 attempts: HTTP 503"):
        llm.generate([request("flaky forever")])


def test_timeouts_are_retried_then_reported(server):
    llm = client(server, timeout_s=0.1, max_retries=1)
    with pytest.raises(LLMError, match="timed out after 0.1 s"):
        llm.generate([request("slow")])
    assert sum(c["body"]["prompt"] == "slow" for c in server.calls) == 2


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("bad request", "HTTP 400: .*max_tokens is too large"),
        ("not json", "the answer is not JSON"),
        ("no choices", "unexpected answer"),
    ],
)
def test_client_errors_fail_at_once(server, prompt, message):
    llm = client(server)
    with pytest.raises(LLMError, match=message):
        llm.generate([request(prompt)])
    assert len(server.calls) == 1


def test_unreachable_server(server):
    url = server.url
    server.close()
    llm = make_llm(LLMConfig(backend="openai", model="m", base_url=url, max_retries=1, backoff_s=0.01))
    with pytest.raises(LLMError, match="connection error"):
        llm.generate([request("anyone?")])


def test_api_key_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("THRESHER_TEST_KEY", "sk-test")
    client(server, api_key_env="THRESHER_TEST_KEY").generate([request("hi")])
    assert server.calls[0]["auth"] == "Bearer sk-test"
    monkeypatch.delenv("THRESHER_TEST_KEY")
    with pytest.raises(LLMError, match="THRESHER_TEST_KEY is not set"):
        client(server, api_key_env="THRESHER_TEST_KEY")


def test_concurrency_and_rate_are_bounded(server):
    client(server, max_concurrency=2).generate([request(f"wait {i}") for i in range(8)])
    assert server.max_in_flight <= 2
    limited = client(server, requests_per_minute=1200)  # one request start every 50 ms
    started = time.monotonic()
    limited.generate([request(f"p{i}") for i in range(5)])
    assert time.monotonic() - started >= 4 * 0.05 - 0.01  # a lower bound only: a busy machine is slower, never faster


def test_config_is_validated():
    with pytest.raises(ValueError, match="llm.base_url"):
        LLMConfig(backend="openai", model="m").validate()
    with pytest.raises(ValueError, match="llm.backend"):
        LLMConfig(backend="gpt").validate()
    with pytest.raises(LLMError, match="not a local model folder"):
        make_llm(LLMConfig(model="/nonexistent/model"))


@pytest.fixture(scope="module")
def smollm2():
    return make_llm(LLMConfig(model="smollm2-135m-instruct", batch_size=4, threads=1))


def test_smollm2_generates_deterministically(smollm2):
    prompt = "Here is a list of tasks:\n1. Give three tips for staying healthy.\n2. Name the capital of France.\n3."
    batch = [
        GenerationRequest(prompt, max_new_tokens=24, temperature=0.7, top_p=0.9, stop=("\n",), seed=7),
        GenerationRequest(
            "The capital of France is", max_new_tokens=24, temperature=0.7, top_p=0.9, stop=("\n",), seed=7
        ),
    ]
    first = smollm2.generate(batch)
    assert [g.text for g in smollm2.generate(batch)] == [g.text for g in first]
    assert all(g.text.strip() and "\n" not in g.text for g in first)
    short = smollm2.generate(
        [GenerationRequest("Once upon a time, in a land far away, there lived", max_new_tokens=3, temperature=0.0)]
    )[0]
    assert short.finish_reason == "length" and short.usage["completion_tokens"] == 3


def test_presence_penalty_discourages_repeats(smollm2):
    prompt = "1, 2, 3, 1, 2, 3, 1, 2, 3,"
    plain, penalised = (
        smollm2.generate([GenerationRequest(prompt, max_new_tokens=12, temperature=0.0, presence_penalty=p)])[0].text
        for p in (0.0, 50.0)
    )
    assert plain.count(",") >= 3  # greedy decoding continues the pattern
    assert penalised.count(",") <= 1  # a generated ',' is not generated again


def test_smollm2_chat_mode_uses_the_chat_template():
    llm = make_llm(LLMConfig(model="smollm2-135m-instruct", mode="chat", threads=1))
    text = llm.text_of(GenerationRequest("What is 2+2?"))
    assert "<|im_start|>user\nWhat is 2+2?<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    answer = llm.generate([GenerationRequest("What is 2+2?", max_new_tokens=12, temperature=0.0)])[0]
    assert answer.text.strip()
