"""A loopback OpenAI-compatible HTTP server for the tests: it records every request and answers by
a script (`answer`, overridden by tests that need other answers: rubric ratings, sampled responses)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server:
    """A loopback OpenAI-compatible server whose answers follow a script keyed by the prompt."""

    def __init__(self):
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.failures_left: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.calls.append(
                        {
                            "path": self.path,
                            "body": body,
                            "auth": self.headers.get("Authorization"),
                            "at": time.monotonic(),
                        }
                    )
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                self.counted = True
                try:
                    outer.answer(self, body)
                finally:
                    outer.done(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def done(self, handler) -> None:
        """A request stops counting as in flight just before its answer is written: the client
        can send its next request only after reading that answer, so the count never overstates."""
        with self.lock:
            if handler.counted:
                self.in_flight -= 1
                handler.counted = False

    def reply(self, handler, status: int, payload, headers: dict | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.done(handler)
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        try:
            handler.wfile.write(data)
        except BrokenPipeError:  # the client gave up (the timeout test): nothing to answer
            pass

    def answer(self, handler, body: dict) -> None:
        prompt = body.get("prompt") or body["messages"][-1]["content"]
        if prompt.startswith("flaky") or prompt.startswith("busy"):
            with self.lock:
                left = self.failures_left.setdefault(prompt, 2)
                self.failures_left[prompt] = left - 1
            if left > 0:
                if prompt.startswith("busy"):
                    return self.reply(handler, 429, {"error": "rate limited"}, {"Retry-After": "0"})
                return self.reply(handler, 503, {"error": "overloaded"})
        if prompt == "slow":
            time.sleep(0.5)
        if prompt == "bad request":
            return self.reply(handler, 400, {"error": {"message": "max_tokens is too large"}})
        if prompt == "not json":
            return self.reply(handler, 200, b"<html>proxy error</html>")
        if prompt == "no choices":
            return self.reply(handler, 200, {"object": "text_completion", "choices": []})
        if prompt.startswith("wait"):
            time.sleep(0.05)
        self.completion(handler, body, f"echo: {prompt} STOP ignored")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def completion(self, handler, body: dict, text: str, finish_reason: str = "stop") -> None:
        """Answer `text` in the shape of the endpoint asked (chat or completion)."""
        choice = {"message": {"role": "assistant", "content": text}} if "messages" in body else {"text": text}
        self.reply(
            handler,
            200,
            {"choices": [{**choice, "finish_reason": finish_reason, "index": 0}], "usage": {"completion_tokens": 5}},
        )
