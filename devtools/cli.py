"""./dev up | stop | test | bench | lint"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="./dev")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start everything on the embedded default and run the HIS DAG")
    up.add_argument("--detach", action="store_true", help="leave it running and return (stop with ./dev stop)")
    sub.add_parser("stop", help="stop everything `up` started")
    t = sub.add_parser("test", help="run the whole test suite (CERTPIPE_TEST_PG_URL to use an existing server)")
    t.add_argument("pytest_args", nargs=argparse.REMAINDER)
    b = sub.add_parser("bench", help="benchmarks (prints figures)")
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    sub.add_parser("lint", help="ruff")
    a = p.parse_args(argv)
    if a.cmd == "up":
        from devtools import stack

        return stack.up(wait=not a.detach)
    if a.cmd == "stop":
        from devtools import stack

        return stack.stop()
    if a.cmd == "test":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]))
        return subprocess.call([sys.executable, "-m", "pytest", *a.pytest_args], cwd=ROOT, env=env)
    if a.cmd == "bench":
        return subprocess.call([sys.executable, "-m", "devtools.bench", *a.bench_args], cwd=ROOT)
    if a.cmd == "lint":
        return subprocess.call([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT)
    return 2


if __name__ == "__main__":
    sys.exit(main())
