"""A webhook receiver on loopback for tests: records every POST, answers with scripted status codes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Webhook:
    """`answers` are the status codes of the first requests (then 200), each alone or with the headers to
    answer with, e.g. (429, {"Retry-After": "7"}); `delay` slows every answer."""

    def __init__(self, answers: list[int | tuple[int, dict[str, str]]] | None = None, delay: float = 0.0) -> None:
        self.answers = list(answers or [])
        self.delay = delay
        self.received: list[dict[str, Any]] = []  # every request, whatever the answer
        self.raw: list[bytes] = []  # the bytes of each request's body (a signature covers them)
        self.headers: list[dict[str, str]] = []  # each request's headers, names in lower case
        self.statuses: list[int] = []
        lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                raw = self.rfile.read(int(self.headers["content-length"]))
                time.sleep(hook.delay)
                with lock:
                    answer = hook.answers.pop(0) if hook.answers else 200
                    status, extra = answer if isinstance(answer, tuple) else (answer, {})
                    hook.received.append(json.loads(raw))
                    hook.raw.append(raw)
                    hook.headers.append({name.lower(): value for name, value in self.headers.items()})
                    hook.statuses.append(status)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status < 400 else b'{"error": "bot is muted"}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def delivered(self) -> list[dict[str, Any]]:
        """The posts the receiver accepted (2xx)."""
        return [body for body, status in zip(self.received, self.statuses, strict=True) if status < 400]

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
