"""Serving the registrar API with uvicorn: in the foreground (CLI) or in a daemon thread (tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from registrar.security import GuardedH11Protocol


def make_server(
    app, host: str, port: int, *, log_level: str = "info", log_config=uvicorn.config.LOGGING_CONFIG
) -> uvicorn.Server:
    """uvicorn, hardened: no access log of raw URLs (the API logs method, route template and status itself), no
    X-Forwarded-For rewriting (registrar.security.client_address trusts only configured proxies), a deadline for
    each request's head (slowloris), short keep-alive, bounded head size and concurrency."""
    settings = getattr(app.state, "settings", None)
    protocol = type(
        "RegistrarH11",
        (GuardedH11Protocol,),
        {"header_timeout": settings.header_timeout if settings else GuardedH11Protocol.header_timeout},
    )
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="off",
            log_config=log_config,
            server_header=False,
            access_log=False,
            proxy_headers=False,
            http=protocol,
            timeout_keep_alive=5,
            h11_max_incomplete_event_size=16384,
            limit_concurrency=200,
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
