"""devtools.browser: finds the machine's Chromium; with none and no way to install one, it fails loudly, naming
what to install (a browser test never passes silently)."""

import os

import pytest

from devtools import browser


def test_finds_an_installed_chromium():
    path = browser.executable()
    assert os.access(path, os.X_OK)


def test_no_browser_and_no_install_fails_naming_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("CERTPIPE_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(browser.BrowserUnavailable, match=r"apt-get install -y chromium"):
        browser.executable(install=False)


def test_a_wrong_configured_path_is_an_error_not_a_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("CERTPIPE_CHROMIUM", str(tmp_path / "no-such-chrome"))
    with pytest.raises(browser.BrowserUnavailable, match="CERTPIPE_CHROMIUM"):
        browser.executable()


def test_launches_headless_chromium(tmp_path):
    page = tmp_path / "p.html"
    page.write_text("<title>ok</title><p id=x>Giấy chứng sinh</p>", encoding="utf-8")
    with browser.launch() as b:
        p = b.new_page()
        p.goto(page.as_uri())
        assert p.locator("#x").inner_text() == "Giấy chứng sinh"
