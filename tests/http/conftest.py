"""A scripted HTTP server on loopback: each request takes the next scripted answer (status, headers, body, delay,
or a dropped connection) and is recorded. For the client toolkit's own tests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | dict | list = b"{}"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without an answer


class Scripted:
    def __init__(self):
        self.answers: list[Answer] = []
        self.requests: list[dict] = []
        self.default = Answer(200, {"ok": True})
        self.lock = threading.Lock()

    def then(self, *answers: Answer) -> Scripted:
        self.answers.extend(answers)
        return self

    def next(self) -> Answer:
        with self.lock:
            return self.answers.pop(0) if self.answers else self.default


@pytest.fixture
def scripted():
    script = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                    "at": time.monotonic(),
                }
            )
            a = script.next()
            if a.delay:
                time.sleep(a.delay)
            if a.drop:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            data = (
                a.body
                if isinstance(a.body, bytes)
                else (a.body.encode() if isinstance(a.body, str) else json.dumps(a.body).encode())
            )
            self.send_response(a.status)
            for k, v in {"Content-Type": "application/json", **a.headers}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
