"""/docs loads with every asset from the server itself: no request leaves the loopback (the Swagger UI
files come from the fastapi-offline package, not a CDN)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import LiveServer
from tests.e2e.browser import browser_page

pytestmark = pytest.mark.browser


def test_swagger_ui_loads_from_the_server_alone_and_shows_the_bearer_scheme(live_server: LiveServer) -> None:
    requested: list[str] = []
    with browser_page(locale="en-US") as page:
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{live_server.url}/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
        assert "qunflow" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector("button.authorize", timeout=5_000)  # the declared HTTP bearer scheme
        page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/events']", timeout=5_000)
    hosts = {urlsplit(url).hostname for url in requested if not url.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, requested
    assert any(url.endswith("swagger-ui-bundle.js") for url in requested)


def test_the_docs_pages_name_no_other_host(live_server: LiveServer) -> None:
    for path in ("/docs",):
        html = httpx.get(f"{live_server.url}{path}").text
        assert "cdn." not in html and "https://" not in html and "<script>" not in html.replace(" ", ""), html
