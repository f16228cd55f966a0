"""python -m sandbox --host 127.0.0.1 --port 8765 [--seed 7] [--births 200 --deaths 60]"""

from __future__ import annotations

import argparse

from sandbox.app import create_app
from sandbox.server import bind, make_server


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sandbox", description="Source-system stand-ins (HIS, ...).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 = any free port")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--births", type=int, default=200, help="birth records per facility")
    p.add_argument("--deaths", type=int, default=60, help="death records per facility")
    p.add_argument("--facilities", default=None, help="comma-separated facility codes (default: 01020,79034,96025)")
    p.add_argument("--now", default=None, help="ISO-8601 'now' for the data (default: start time)")
    p.add_argument("--bad-ratio", type=float, default=0.1)
    p.add_argument("--log-level", default="info")
    a = p.parse_args(argv)
    app = create_app(
        seed=a.seed,
        births=a.births,
        deaths=a.deaths,
        now=a.now,
        bad_ratio=a.bad_ratio,
        facilities=a.facilities.split(",") if a.facilities else None,
    )
    sock = bind(a.host, a.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    server = make_server(
        app, log_level=a.log_level, on_ready=lambda: print(f"sandbox ready on http://{shown}:{port}", flush=True)
    )
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
