"""Fixtures for the deployment tests: a loopback webhook receiver and a Redis broker."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.dags.conftest import his_env  # noqa: F401  (HIS sandbox fixture, reused by the alert tests)
from tests.sources.bhxh.conftest import bhxh  # noqa: F401  (BHXH sandbox fixture, reused by the alert tests)
from tests.sources.excel.conftest import bucket  # noqa: F401  (local inbox bucket, reused by the alert tests)


class Webhook:
    """A real HTTP server on 127.0.0.1 that records every POSTed JSON body."""

    def __init__(self):
        self.received: list[dict] = []
        self.raw: list[bytes] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.raw.append(body)
                hook.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, event: str) -> list[dict]:
        return [p for p in self.received if p.get("event") == event]


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """REDIS_URL if set, else Redis on 127.0.0.1:6379 if it answers, else a redis-server we start, else skip."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"].rstrip("/")
        return
    if _reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379"
        return
    exe = shutil.which("redis-server")
    if not exe:
        pytest.skip("no Redis: REDIS_URL unset, nothing answers on 127.0.0.1:6379 and redis-server is not on PATH")
    from devtools.embedded_pg import free_port

    port = free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _reachable("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("redis-server did not start")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
