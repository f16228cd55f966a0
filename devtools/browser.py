"""A real Chromium for browser tests (Playwright), on any machine `./dev test` runs on.

Playwright cannot download its own browser here: it drives an installed Chromium through `executable_path`.
`executable()` finds one (CERTPIPE_CHROMIUM, then chromium / chromium-browser / google-chrome on PATH); when there
is none and the process runs as root on Debian/Ubuntu, it installs Debian's `chromium` package with apt-get (once,
under a lock, so parallel test processes do not race); otherwise it raises BrowserUnavailable naming what to
install. Tests must let that error fail them: a browser test never skips silently.

    from devtools import browser
    with browser.launch() as b:          # a playwright.sync_api.Browser
        page = b.new_page(); page.goto(url)

or the pytest fixture `chromium` (tests/conftest.py): one browser per test module, for any test directory
(not longer: a live Playwright loop in the main thread breaks boto/s3fs credentials in later tests).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ARGS = [
    "--headless",
    "--no-sandbox",  # as root (CI, containers) the sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOW = (
    "install Debian's chromium package (`apt-get install -y chromium`, as root) or set CERTPIPE_CHROMIUM to a "
    "Chromium/Chrome executable; Playwright's own browser download is not used"
)


class BrowserUnavailable(RuntimeError):
    """No Chromium and none could be installed; the message says what to install."""


def find() -> str | None:
    env = os.environ.get("CERTPIPE_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in NAMES:
        if path := shutil.which(name):
            return path
    return None


def _install() -> None:
    """apt-get install chromium, serialised between processes by a lock file."""
    lock = Path(tempfile.gettempdir()) / "certpipe-chromium-install.lock"
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if find():
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise BrowserUnavailable(f"`{' '.join(cmd)}` failed ({' / '.join(tail)}): {HOW}")


def executable(install: bool = True) -> str:
    """Path of a Chromium; installs Debian's package when missing and allowed (root, apt-get present)."""
    path = find()
    if path:
        return path
    if os.environ.get("CERTPIPE_CHROMIUM"):
        raise BrowserUnavailable(f"CERTPIPE_CHROMIUM={os.environ['CERTPIPE_CHROMIUM']} is not executable: {HOW}")
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        _install()
        if path := find():
            return path
    raise BrowserUnavailable(f"no Chromium found: {HOW}")


@contextlib.contextmanager
def launch(**kwargs) -> Iterator:
    """A headless Chromium driven by Playwright; closed on exit."""
    from playwright.sync_api import sync_playwright

    path = executable()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=ARGS, headless=True, **kwargs)
        try:
            yield browser
        finally:
            browser.close()
