"""Serving helpers: a background-thread server for tests, and the CLI entry point's server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn

from sandbox.app import create_app


class _Server(uvicorn.Server):
    """uvicorn server that calls `on_ready` once it listens; no signal handlers off the main thread."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None = None):
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_ready:
            self.on_ready()


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def make_server(
    app, *, log_level: str = "info", access_log: bool = True, on_ready: Callable[[], None] | None = None
) -> _Server:
    # Access logs carry only method, path and query string; no personal data is put in URLs.
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="off")
    return _Server(config, on_ready)


@contextmanager
def run_in_thread(
    port: int = 0, *, host: str = "127.0.0.1", log_level: str = "warning", **dataset_opts
) -> Iterator[str]:
    """Serve the sandbox in a daemon thread; yields the base URL, e.g. http://127.0.0.1:41234."""
    sock = bind(host, port)
    port = sock.getsockname()[1]
    server = make_server(create_app(**dataset_opts), log_level=log_level, access_log=False)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"sandbox-{port}")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("sandbox server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
