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


@contextmanager
def browser_page(log_in_to: tuple[str, Any] | None = None, **context: Any) -> Iterator[Any]:
    """A fresh page; with log_in_to=(base_url, workspace) it is logged in to the console as an owner."""
    path = chromium_path()
    if not path:
        pytest.skip("browser tests need Chromium: apt-get install chromium (or set QUNFLOW_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_context(**context).new_page()
            if log_in_to is not None:
                from tests.access import browser_log_in

                browser_log_in(page, *log_in_to)
            yield page
        finally:
            browser.close()
