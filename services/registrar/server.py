"""Serving the registrar API with uvicorn: in the foreground (CLI) or in a daemon thread (tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


def make_server(
    app, host: str, port: int, *, log_level: str = "info", log_config=uvicorn.config.LOGGING_CONFIG
) -> uvicorn.Server:
    # access logs show method and path only: personal IDs travel in request bodies, never in URLs
    return uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level=log_level, lifespan="off", log_config=log_config, server_header=False
        )
    )


@contextmanager
def run_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` on loopback in a daemon thread; yields the base URL. Logs go to the root logger."""
    server = make_server(app, host, port, log_level="info", log_config=None)
    server.install_signal_handlers = lambda: None  # uvicorn < 0.29 compatibility; harmless otherwise
    thread = threading.Thread(target=server.run, daemon=True, name="registrar-api")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("registrar API did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
