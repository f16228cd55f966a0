"""./dev up | stop | test | bench | lint"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="./dev")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start everything on the embedded default and run the HIS DAG")
    up.add_argument("--detach", action="store_true", help="leave it running and return (stop with ./dev stop)")
    sub.add_parser("stop", help="stop everything `up` started")
    sub.add_parser(
        "test",
        help="run the whole test suite (CERTPIPE_TEST_PG_URL to use an existing server); "
        "further arguments go to pytest",
    )
    sub.add_parser("bench", help="benchmarks (prints figures); further arguments go to the bench")
    sub.add_parser("lint", help="ruff check (broad rule set), ruff format --check, mypy")
    sub.add_parser("backup", help="back up the warehouse: ./dev backup [PATH] (pg_dump, checksums in PATH.json)")
    sub.add_parser("restore", help="restore a backup into an empty database: ./dev restore PATH [--database NAME]")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("backup", "restore"):  # their own arguments: devtools/backup.py
        from devtools import backup

        return backup.main(argv)
    if argv and argv[0] in ("test", "bench"):  # everything after the command goes to pytest / the bench
        a = argparse.Namespace(cmd=argv[0], pytest_args=argv[1:], bench_args=argv[1:])
    else:
        a = p.parse_args(argv)
    if a.cmd == "up":
        from devtools import stack

        return stack.up(wait=not a.detach)
    if a.cmd == "stop":
        from devtools import stack

        return stack.stop()
    if a.cmd == "test":
        return subprocess.call([sys.executable, "-m", "pytest", *a.pytest_args], cwd=ROOT)
    if a.cmd == "bench":
        return subprocess.call([sys.executable, "-m", "devtools.bench", *a.bench_args], cwd=ROOT)
    if a.cmd == "lint":  # every step runs, so one report shows every problem; any failure fails the command
        steps = [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]]
        codes = [subprocess.call([sys.executable, "-m", *step], cwd=ROOT) for step in steps]
        return max(codes)
    return 2


if __name__ == "__main__":
    sys.exit(main())
