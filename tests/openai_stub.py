"""A scripted OpenAI-compatible server on 127.0.0.1 for the OpenAIBackend tests (no model, no vLLM)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(text='ok</think>{"score": "true"}', finish="stop", model="judge") -> dict:
    """A /completions answer carrying ``text``."""
    return {
        "id": "cmpl-1", "object": "text_completion", "created": 0, "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


class StubServer:
    """``script(n, body, headers) -> (status, payload, delay_s)`` answers the n-th POST; GET answers the
    ``models`` listing (404 when None) unless ``on_get(headers) -> (status, payload)`` is given. Records each
    POST's body and headers (names lower-cased). A context manager, or ``start()`` / ``close()``."""

    def __init__(self, script: Callable, models: list | None = None, on_get: Callable | None = None) -> None:
        self.script = script
        self.models = models
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if on_get is not None:
                    self._send(*on_get({k.lower(): v for k, v in self.headers.items()}))
                elif self.path.endswith("/models") and stub.models is not None:
                    self._send(200, {"object": "list", "data": stub.models})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub._lock:
                    n = len(stub.requests)
                    stub.requests.append(body)
                    stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    status, payload, delay = stub.script(n, body, stub.headers[n])
                    time.sleep(delay)
                    self._send(status, payload)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def auth(self) -> list[str]:
        """The Authorization header of each POST, in order."""
        return [h.get("authorization", "") for h in self.headers]

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
