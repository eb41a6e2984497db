"""Every page, as a person sees it at 1366 px and on a 390 px phone: nothing wider than the screen, QR codes
that scan from a screenshot, chart text readable and never cut, times in the workspace's zone, no stray
English on a Chinese page, and emoji drawn rather than boxes.

The pages are found from the app's own routes (every GET route answering HTML, console and public), so a
page added later is checked too; a route whose path has a parameter this file has no sample for fails
with a message saying which sample to add.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from sqlalchemy import select

from qunflow.connectors import sandbox_tables
from qunflow.i18n import TEXTS
from qunflow.services.catalog import add_entry_point, list_entry_points, list_groups
from qunflow.services.ingest import ingest_batch
from qunflow.services.meetups import add_meetup
from qunflow.services.privacy import member_link_token
from qunflow.services.referrals import referral_code
from qunflow.services.waitlist import add_to_waitlist
from qunflow.sim.demo import Simulation
from qunflow.store.tables import deliveries, members
from qunflow.workspace import Workspace
from tests.conftest import LiveServer
from tests.e2e.browser import browser_page

zxingcpp = pytest.importorskip("zxingcpp", reason="decoding QR codes needs zxing-cpp: pip install -e '.[test]'")
from PIL import Image  # noqa: E402  (after the skip: Pillow comes with the app, zxing-cpp with the tests)

WIDTHS = (1366, 390)
OPEN_ENTRY = "poster-open"  # an entry point without a gate: its landing page is the group's QR code
TEMPLATES = Path(__file__).parents[2] / "src" / "qunflow" / "web" / "templates"


@dataclass
class Site:
    ws: Workspace
    url: str
    app: Any
    samples: dict[str, str] = field(default_factory=dict)  # "{param}" -> a value
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # route path -> its own samples


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The demo-like community the other browser tests use, plus a gate-less entry point."""
    from qunflow.workspace import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("layout") / "ws")
    Simulation(ws, days=14, seed=3).run()
    add_entry_point(ws, OPEN_ENTRY, "website", target_tier="newbie")
    with ws.engine.begin() as conn:
        member = conn.execute(select(members.c.id).order_by(members.c.id)).scalars().first()
        referral = referral_code(conn, member)
    with ws.sandbox.engine.connect() as conn:
        invite = conn.execute(select(sandbox_tables.sandbox_invites.c.token)).scalars().first()
    gated = next(e["code"] for e in list_entry_points(ws) if e["gate"])
    meetup = add_meetup(ws, "layout-talk", title_zh="周四分享：如何选课", title_en="Thursday talk: choosing a course",
                        starts_at=ws.clock() + timedelta(days=2), checkin_keyword="签到").key
    with ws.engine.begin() as conn:  # someone who found every group full: their waitlist page
        waiting = conn.execute(select(members.c.id).where(members.c.group_id.is_(None))
                               .order_by(members.c.id)).scalars().first() or member
        add_to_waitlist(conn, waiting, None, "core", ws.clock())
        send_id = conn.execute(select(deliveries.c.id).order_by(deliveries.c.id)).scalars().first()
    exposures = [{"event_id": f"layout-xp-{i}", "type": "experiment_exposure", "ts": ws.clock().isoformat() + "Z",
                  "member_id": f"layout-m{i}", "experiment": "layout-xp", "variant": "ab"[i % 2]} for i in range(20)]
    assert not ingest_batch(ws.engine, exposures).errors
    samples = {"{code}": gated, "{member_id}": member, "{token}": member_link_token(ws, member), "{task}": "profile",
               "{key}": meetup, "{send_id}": str(send_id), "{experiment}": "layout-xp"}
    overrides = {"/r/{code}": {"{code}": referral}, "/sandbox/invite/{token}": {"{token}": invite},
                 "/console/gates/{key}": {"{key}": "seed"}, "/w/{token}": {"{token}": member_link_token(ws, waiting)}}
    with LiveServer(ws) as server:
        yield Site(ws, server.url, server.server.config.app, samples, overrides)
    ws.close()


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """The app's routes, also inside included routers (FastAPI 0.16x includes a router as one route that
    keeps the original; its routes carry their router's prefix, and app.py includes without one)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def html_pages(site: Site) -> list[str]:
    """Every page the app serves as HTML to a GET, with sample values for its path parameters."""
    paths = []
    for route in api_routes(site.app.routes):
        if "GET" not in route.methods:
            continue
        answers_html = getattr(route.response_class, "value", route.response_class) is HTMLResponse
        if not answers_html and route.path != "/r/{code}":  # the referral link lands on its landing page
            continue
        if route.path in ("/docs", "/redoc"):  # the API's reference for developers, drawn by Swagger UI/ReDoc
            continue
        path = route.path
        for param in re.findall(r"\{[^}]+\}", route.path):
            value = {**site.samples, **site.overrides.get(route.path, {})}.get(param)
            assert value, f"no sample value for {param} in {route.path}: add one to the site fixture's samples"
            path = path.replace(param, value)
        paths.append(path)
    extra = [f"/j/{OPEN_ENTRY}", "/console/sandbox?chat=chat-newbie-1", "/j/no-such-entry"]
    return sorted(set(paths)) + extra


def with_lang(path: str, lang: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}lang={lang}"


OVERFLOW_JS = """() => {
  const page = document.scrollingElement;
  const wide = [...document.body.querySelectorAll('*')]
    .filter(e => e.getBoundingClientRect().right > innerWidth + 1 && !e.closest('.scroll'))
    .slice(0, 3).map(e => `${e.tagName.toLowerCase()}.${e.className}: ${(e.textContent || '').trim().slice(0, 50)}`);
  return {scrollWidth: page.scrollWidth, innerWidth, wide};
}"""

CHART_JS = """() => [...document.querySelectorAll('svg[viewBox]')].filter(s => s.getBoundingClientRect().width > 0)
  .flatMap(svg => {
    const box = svg.viewBox.baseVal, scale = svg.getBoundingClientRect().width / box.width;
    return [...svg.querySelectorAll('text')].map(t => {
      const b = t.getBBox();
      return {text: t.textContent, px: parseFloat(t.getAttribute('font-size')) * scale,
              inside: b.x >= -0.5 && b.x + b.width <= box.width + 0.5
                      && b.y >= -0.5 && b.y + b.height <= box.height + 0.5};
    });
  })"""


def check_page(page: Any, where: str, problems: list[str]) -> None:
    found = page.evaluate(OVERFLOW_JS)
    if found["scrollWidth"] > found["innerWidth"]:
        problems.append(f"{where}: {found['scrollWidth']} px wide in a {found['innerWidth']} px window "
                        f"({'; '.join(found['wide'])})")
    for text in page.evaluate(CHART_JS):
        if text["px"] < 11:
            problems.append(f"{where}: chart text {text['text']!r} renders at {text['px']:.1f} px")
        if not text["inside"]:
            problems.append(f"{where}: chart text {text['text']!r} is cut off by its drawing's edge")


def pass_the_gate(page: Any, site: Site, lang: str) -> None:
    """The seed gate, filled in as a visitor would (the page solves its proof-of-work by itself)."""
    page.goto(f"{site.url}{with_lang('/j/' + site.samples['{code}'], lang)}")
    page.fill("#f-name", "李雷")
    page.fill("#f-need", "获客")
    page.fill("#f-interest", "投放")
    page.check("input[name=stage][value=buying]")
    page.check("input[name=experience][value=yes]")
    page.check("#consent")
    page.click("button[type=submit]")
    page.wait_for_selector("#invite", timeout=20_000)


@pytest.mark.parametrize(("width", "lang"), [(1366, "zh"), (390, "zh"), (390, "en")])
def test_no_page_is_wider_than_the_screen_and_charts_read_well(site: Site, width: int, lang: str) -> None:
    problems: list[str] = []
    pages = html_pages(site)
    assert any(p.startswith("/console/members/") for p in pages) and "/console/login" in pages
    with browser_page(log_in_to=(site.url, site.ws), locale="zh-CN" if lang == "zh" else "en-US",
                      viewport={"width": width, "height": 900}) as page:
        for path in pages:
            page.goto(f"{site.url}{with_lang(path, lang)}")
            check_page(page, f"{path} at {width} px ({lang})", problems)
        # The pages a visitor reaches by sending forms: the ticket, the sandbox's invite and its joined page.
        pass_the_gate(page, site, lang)
        check_page(page, f"the ticket at {width} px ({lang})", problems)
        invite = re.sub(r"^https?://[^/]+", "", page.get_attribute("#invite", "href"))  # public_url is not ours
        page.goto(f"{site.url}{invite}")
        check_page(page, f"the sandbox invite at {width} px ({lang})", problems)
        page.fill("input[name=name]", "李雷")
        page.click("button[type=submit]")
        page.wait_for_load_state()
        check_page(page, f"the sandbox's joined page at {width} px ({lang})", problems)
        assert page.locator(".chat, .bubble, .card").count() >= 1
    assert not problems, "\n".join(problems)


def decoded(page: Any, selector: str) -> list[str]:
    """The text of each QR code matched by `selector`, read from a screenshot of the page as shown."""
    found = []
    for image in page.locator(selector).all():
        image.scroll_into_view_if_needed()
        shot = Image.open(io.BytesIO(image.screenshot()))
        found.append(" | ".join(r.text for r in zxingcpp.read_barcodes(shot)))
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_qr_codes_scan_from_a_screenshot_at_every_width(site: Site, width: int) -> None:
    base = site.ws.settings.public_url.rstrip("/")
    codes = [e["code"] for e in list_entry_points(site.ws)]
    with browser_page(log_in_to=(site.url, site.ws), locale="zh-CN", viewport={"width": width, "height": 900}) as page:
        page.goto(f"{site.url}/console/entry-points")
        images = page.locator("main img.qr")
        sources = [images.nth(i).get_attribute("src") or "" for i in range(images.count())]
        shown = [re.sub(r"^/j/(.+)/qr\.svg$", r"\1", src) for src in sources]
        assert sorted(shown) == sorted(codes)
        assert decoded(page, "main img.qr") == [f"{base}/j/{code}" for code in shown]
        for i in range(images.count()):  # the whole card, code and link, is on the screen
            box = images.nth(i).locator("xpath=..").bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
        page.goto(f"{site.url}/j/{OPEN_ENTRY}")  # a gate-less landing: the group's invite as a QR code
        assert decoded(page, "img.qr") == [page.get_attribute("#invite", "href")]
        pass_the_gate(page, site, "zh")  # the ticket after the gate
        assert decoded(page, "img.qr") == [page.get_attribute("#invite", "href")]


def english_ui_words() -> set[str]:
    """Words of the English UI: the English of every text in i18n.py and every English alternative written
    in a template (`'中文' if zh else 'English'`), less those the Chinese texts use too (VIP, QR...)."""
    english, chinese = [], []
    for texts in TEXTS.values():
        english.append(texts.get("en", ""))
        chinese.append(texts.get("zh", ""))
    for template in TEMPLATES.glob("*.html"):
        source = template.read_text(encoding="utf-8")
        for zh, en in re.findall(r"'([^']*)' if (?:zh|lang == 'zh') else '((?:[^'\\]|\\.)*)'", source):
            chinese.append(zh)
            english.append(en)
    words = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", " ".join(english))}
    return words - {w.lower() for w in re.findall(r"[A-Za-z]{4,}", " ".join(chinese))}


PAGE_WORDS_JS = """() => {
  // Data and code are not UI text: ids, keys, commands, and what members and bots said in their language.
  const copy = document.body.cloneNode(true);
  copy.querySelectorAll('code, pre, kbd, samp, script, style, title, [data-code], .key, .rule, .said')
      .forEach(e => e.remove());
  return document.title + ' ' + copy.textContent;
}"""


def test_chinese_pages_have_no_stray_english_and_times_are_local(site: Site) -> None:
    ui_words = english_ui_words()
    assert {"join", "rules", "members"} <= ui_words  # the vocabulary is really read
    # Data the pages show as it is stored: entry codes, channel and group keys, chat names, the user's name.
    values = [v for row in [*list_entry_points(site.ws), *list_groups(site.ws), *site.ws.sandbox.chats()]
              for v in row.values() if isinstance(v, str)] + ["owner"]
    data = {w.lower() for v in values for w in re.findall(r"[A-Za-z]{4,}", v)}
    zone = site.ws.settings.zone
    stray: dict[str, set[str]] = {}
    times_checked = 0
    with browser_page(log_in_to=(site.url, site.ws), locale="zh-CN", viewport={"width": 1366, "height": 900}) as page:
        for path in html_pages(site):
            page.goto(f"{site.url}{with_lang(path, 'zh')}")
            text = re.sub(r"https?://\S+|/[\w./{}-]+", " ", page.evaluate(PAGE_WORDS_JS))
            words = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", text)} & ui_words - data
            if words:
                stray[path] = words
            html = page.content()
            assert not re.search(r"\d\d:\d\d:\d\d\.\d", text), f"{path}: a time with microseconds"
            assert not re.search(r"\d\d:\d\d(:\d\d)? ?UTC", text), f"{path}: a time in UTC"
            for stamp, shown in re.findall(r'<time datetime="([^"]+)"[^>]*>([^<]+)</time>', html):
                if "T" in stamp:
                    local = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(zone)
                    assert shown == local.strftime("%Y-%m-%d %H:%M:%S" if shown.count(":") == 2 else "%Y-%m-%d %H:%M")
                    times_checked += 1
    assert not stray, f"English words on Chinese pages: {stray}"
    assert times_checked > 10  # the audit log and the sandbox's messages at least


def test_emoji_are_drawn_in_colour_not_as_boxes(site: Site) -> None:
    """The welcome menu starts with 👋: with an emoji font it is drawn in colour (a missing glyph is a
    grey box). CI installs fonts-noto-color-emoji (.ci/run); the stylesheet names it."""
    with browser_page(log_in_to=(site.url, site.ws), locale="zh-CN", viewport={"width": 1366, "height": 900}) as page:
        page.goto(f"{site.url}/console/sandbox?chat=chat-newbie-1")
        card = page.locator(".chat", has_text="👋").first
        shot = Image.open(io.BytesIO(card.screenshot())).convert("RGB")
    pixels = shot.tobytes()
    colours = sum(1 for i in range(0, len(pixels), 3)
                  if pixels[i] > 200 and 120 < pixels[i + 1] < 230 and pixels[i + 2] < 100)
    assert colours > 20, "👋 is not drawn in colour: install an emoji font (fonts-noto-color-emoji)"
