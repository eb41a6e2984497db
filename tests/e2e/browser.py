"""Headless Chromium through Playwright, using the system's browser (no download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return os.environ.get("QUNFLOW_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


_shared: dict[str, Any] = {}  # this test process's Playwright and Chromium, started by its first browser test


def _browser(path: str) -> Any:
    """This process's Chromium, launched once (a launch per test cost about a second of CPU and two of wall);
    launched again if it went away."""
    browser = _shared.get("browser")
    if browser is None or not browser.is_connected():
        if "playwright" not in _shared:
            from playwright.sync_api import sync_playwright

            _shared["playwright"] = sync_playwright().start()
        browser = _shared["browser"] = _shared["playwright"].chromium.launch(
            executable_path=path, args=CHROMIUM_FLAGS, headless=True)
    return browser


def close_browser() -> None:
    """Stop this process's Chromium and Playwright, if a test started them (tests/conftest.py, at the end)."""
    if "browser" in _shared:
        _shared.pop("browser").close()
    if "playwright" in _shared:
        _shared.pop("playwright").stop()


@contextmanager
def browser_page(log_in_to: tuple[str, Any] | None = None, **context: Any) -> Iterator[Any]:
    """A fresh page in a browser context of its own (cookies, storage and cache as in a new browser); with
    log_in_to=(base_url, workspace) it is logged in to the console as an owner."""
    path = chromium_path()
    if not path:
        pytest.skip("browser tests need Chromium: apt-get install chromium (or set QUNFLOW_CHROMIUM)")
    browser_context = _browser(path).new_context(**context)
    try:
        page = browser_context.new_page()
        if log_in_to is not None:
            from tests.access import browser_log_in

            browser_log_in(page, *log_in_to)
        yield page
    finally:
        browser_context.close()
