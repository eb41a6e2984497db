"""Abuse resistance at the gate (issue 11), over real HTTP on loopback: seats, rate limits, the challenge,
the new-member coupon cap. Time moves by the workspace clock; nothing sleeps."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from html import unescape
from itertools import count
from typing import Any

import httpx
from altcha import solve_challenge_v1
from sqlalchemy import select

from qunflow.services.automation import work_once
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.settings import GateLimits
from qunflow.store.tables import coupons, events, groups, join_signals, members
from qunflow.workspace import Workspace
from tests.integration.test_fraud import Clock
from tests.integration.test_join_flow import FORM, PHONE, invite_token, setup_community

T0 = datetime(2026, 3, 2, 2, 0)
ADDRESSES = (f"198.51.{n // 250}.{n % 250 + 1}" for n in count())
RELAXED = GateLimits(ip_passes=(10_000, 60), device_passes=(10_000, 60), ip_views=(10_000, 60),
                     challenge_ip_passes=(10_000, 60), challenge_device_passes=(10_000, 60))


def guarded(ws: Workspace, **limits: Any) -> Clock:
    """The workspace behind a proxy on loopback (so tests name each client's IP), with these gate limits."""
    ws.settings.trusted_proxies = ["127.0.0.1"]
    ws.settings.gate = RELAXED.model_copy(update=limits)
    clock = Clock(T0)
    ws.clock = clock
    return clock


def phone(url: str, ip: str | None = None, **headers: str) -> httpx.Client:
    """A person's phone: its own cookies, a browser's user agent, and its network's address."""
    extra = {"x-forwarded-for": ip} if ip else {}
    return httpx.Client(base_url=url, headers={**PHONE, **extra, **headers})


def gate_pass(client: httpx.Client, code: str = "xhs-note-1", form: dict[str, str] | None = None) -> httpx.Response:
    """Open the landing page and send the gate form, as a person does."""
    assert client.get(f"/j/{code}").status_code == 200
    return client.post(f"/j/{code}", data=form or FORM)


def invite_of(page: httpx.Response) -> str:
    found = re.search(r'id="invite" href="([^"]+)"', page.text)
    assert found, page.text[:400]
    return invite_token(found.group(1))


def count_members(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        return len(conn.execute(select(members.c.id)).all())


# --- seats ------------------------------------------------------------------------------------------

def test_eighty_one_gate_posts_do_not_fill_a_tier_and_real_joins_still_respect_capacity(
        workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace, core_capacity=40)  # the core tier: 2 groups, 80 seats
    guarded(workspace)
    tickets = []
    for _ in range(81):  # anonymous passes from 81 devices and networks, none of which joins
        with phone(live_server.url, next(ADDRESSES)) as client:
            page = gate_pass(client)
            assert page.status_code == 200, page.text[:300]
            tickets.append(invite_of(page))
    with phone(live_server.url, next(ADDRESSES)) as client:
        still_open = gate_pass(client)
    assert still_open.status_code == 200 and 'id="invite"' in still_open.text  # the tier is not full

    for n, token in enumerate(tickets[:80]):  # now 80 people really join: the tier fills
        assert workspace.sandbox.join(f"u{n}", f"Person {n}", token) == "joined"
    with phone(live_server.url, next(ADDRESSES)) as client:
        full = gate_pass(client)
    # core is full: the pass falls back along tier_fallback to newbie-1 (issue 12), never into a full core group
    assert full.status_code == 200 and 'id="invite"' in full.text and "群已满员" not in full.text
    with workspace.engine.connect() as conn:
        newest = select(events.c.member_id).where(events.c.type == "gate_submitted").order_by(events.c.seq.desc())
        last = conn.execute(select(members.c.group_id, members.c.tier)
                            .where(members.c.id == newest.limit(1).scalar_subquery())).one()
        newbie = conn.execute(select(groups.c.id).where(groups.c.key == "newbie-1")).scalar()
    assert (last.group_id, last.tier) == (newbie, "newbie")


# --- rate limits ------------------------------------------------------------------------------------

def test_passes_from_one_ip_past_the_limit_get_a_429_page_with_retry_after(
        workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace, core_capacity=100)
    clock = guarded(workspace, ip_passes=(5, 600))  # 5 at once, then one every 2 minutes
    venue = "203.0.113.9"
    answers = []
    for _ in range(7):  # seven phones on one Wi-Fi
        with phone(live_server.url, venue) as client:
            answers.append(gate_pass(client))
    assert [a.status_code for a in answers] == [200] * 5 + [429, 429]
    refused = answers[5]
    assert refused.headers["retry-after"] == "120"
    assert "操作太频繁" in refused.text and "2 分钟" in refused.text  # the default language is Chinese
    with phone(live_server.url, venue, **{"accept-language": "en"}) as client:
        english = gate_pass(client)
    assert english.status_code == 429 and "Too many tries" in english.text and "about 2 min" in english.text
    assert count_members(workspace) == 5  # a refused pass changes nothing

    with phone(live_server.url, "203.0.113.10") as client:  # another network is not held up
        assert gate_pass(client).status_code == 200
    clock.now += timedelta(seconds=120)  # the Retry-After has passed: one more may go
    with phone(live_server.url, venue) as client:
        assert gate_pass(client).status_code == 200
        assert client.post("/j/xhs-note-1", data=FORM).status_code == 429


def test_one_device_is_limited_whatever_network_it_moves_to(workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace, core_capacity=100)
    guarded(workspace, device_passes=(2, 3600))
    with phone(live_server.url) as client:
        statuses = []
        for _ in range(3):
            client.headers["x-forwarded-for"] = next(ADDRESSES)
            statuses.append(gate_pass(client).status_code)
        assert "qf_dev" in client.cookies
    assert statuses == [200, 200, 429]


def test_landing_referral_and_personal_link_pages_are_limited_per_ip(workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace)
    guarded(workspace, ip_views=(3, 60))
    with phone(live_server.url, "192.0.2.44") as client:
        assert [client.get("/j/xhs-note-1").status_code for _ in range(3)] == [200, 200, 200]
        landing, referral = client.get("/j/xhs-note-1"), client.get("/r/anything")
        task = client.get("/m/m_123.deadbeef/task/checkin")
    assert landing.status_code == referral.status_code == task.status_code == 429
    assert landing.headers["retry-after"] == "20"
    with phone(live_server.url, "192.0.2.45") as client:
        assert client.get("/r/anything").status_code == 404  # someone else's network: served


def test_forwarded_for_counts_only_from_a_trusted_proxy(workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace, core_capacity=100)
    guarded(workspace, ip_passes=(2, 600))
    workspace.settings.trusted_proxies = []  # reached directly: the header is the client's own say-so
    statuses = []
    for _ in range(3):
        with phone(live_server.url, next(ADDRESSES)) as client:
            statuses.append(gate_pass(client).status_code)
    assert statuses == [200, 200, 429]  # all from 127.0.0.1, whatever they claim
    workspace.settings.trusted_proxies = ["127.0.0.0/8"]
    with phone(live_server.url, next(ADDRESSES)) as client:
        assert gate_pass(client).status_code == 200


# --- the challenge ----------------------------------------------------------------------------------

def solve(page: httpx.Response) -> str:
    """What a bot that does the work (or a browser) sends: the solved proof-of-work as ALTCHA's payload."""
    found = re.search(r'data-pow="([^"]+)"', page.text)
    assert found, page.text[:400]
    data = json.loads(unescape(found.group(1)))
    solution = solve_challenge_v1(data["challenge"], data["salt"], data["algorithm"], data["maxNumber"])
    assert solution is not None
    fields = {k: data[k] for k in ("algorithm", "challenge", "salt", "signature")}
    return base64.b64encode(json.dumps({**fields, "number": solution.number}).encode()).decode()


def test_a_bot_posting_without_solving_the_challenge_is_refused(workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace, core_capacity=100)
    clock = guarded(workspace)
    with httpx.Client(base_url=live_server.url, headers={"x-forwarded-for": "192.0.2.7"}) as bot:
        blind = bot.post("/j/xhs-note-1", data=FORM)  # an HTTP library, straight to the form
        assert blind.status_code == 403 and "无法确认表单来自浏览器" in blind.text
        english = bot.post("/j/xhs-note-1", data={**FORM, "qf_pow": "bm90IGEgc29sdXRpb24="},
                           headers={"accept-language": "en"})
        assert english.status_code == 403 and "could not confirm" in english.text
        assert count_members(workspace) == 0  # a refused post stores nothing

        page = bot.get("/j/xhs-note-1")
        payload = solve(page)
        assert bot.post("/j/xhs-note-1", data={**FORM, "qf_pow": payload}).status_code == 200
        assert bot.post("/j/xhs-note-1", data={**FORM, "qf_pow": payload}).status_code == 403  # spent
        late = solve(bot.get("/j/xhs-note-1"))
        clock.now += timedelta(minutes=21)
        assert bot.post("/j/xhs-note-1", data={**FORM, "qf_pow": late}).status_code == 403  # expired
    assert count_members(workspace) == 1


def test_many_passes_from_one_network_ask_for_the_challenge(workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace, core_capacity=100)
    guarded(workspace, challenge_ip_passes=(3, 600))
    statuses = []
    for _ in range(4):  # real-looking phones with cookies, all on one network
        with phone(live_server.url, "203.0.113.50") as client:
            statuses.append(gate_pass(client).status_code)
    assert statuses == [200, 200, 200, 403]
    with phone(live_server.url, "203.0.113.50") as client:  # a browser solves it by itself and passes
        page = client.get("/j/xhs-note-1")
        assert client.post("/j/xhs-note-1", data={**FORM, "qf_pow": solve(page)}).status_code == 200


# --- the new-member coupon cap ----------------------------------------------------------------------

def test_passes_over_the_coupon_cap_join_without_a_coupon_and_are_told_kindly(
        workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace, core_capacity=100)
    clock = guarded(workspace, coupons_per_ip_day=2)
    apply_playbooks(workspace, shipped_files())  # S2's Day-0 new-member coupon
    clock.now = datetime(2026, 3, 2, 3, 0)  # 11:00 in Shanghai: outside the quiet hours
    people = []
    for n in range(4):
        ip = "203.0.113.77" if n < 3 else "203.0.113.78"  # three phones on one network, one elsewhere
        with phone(live_server.url, ip) as client:  # S2's coupon DM is marketing: they agree to it
            ticket = gate_pass(client, form={**FORM, "marketing": "on"})
        assert ticket.status_code == 200
        assert workspace.sandbox.join(f"u{n}", f"Person {n}", invite_of(ticket)) == "joined"
        people.append(ticket)
    assert ['id="no-coupon"' in t.text for t in people] == [False, False, True, False]
    assert "新人券每天按设备和网络限量发放" in people[2].text
    work_once(workspace, worker="test")

    with workspace.engine.connect() as conn:
        owners = set(conn.execute(select(coupons.c.member_id)).scalars())
        capped = conn.execute(select(join_signals.c.member_id).where(join_signals.c.coupon_eligible.is_(False))
                              ).scalars().all()
        withheld = conn.execute(select(events.c.member_id).where(events.c.type == "coupon_withheld")).scalars().all()
        joined = conn.execute(select(members.c.id).where(members.c.joined_at.is_not(None))).scalars().all()
    assert len(joined) == 4 and len(owners) == 3 and list(withheld) == list(capped) and len(capped) == 1
    assert capped[0] not in owners
    kind = [m["text"] for m in workspace.sandbox.messages(dm_user_id="u2", limit=50)
            if (m.get("client_key") or "").startswith("pb:")]
    assert kind and "新人券每天按设备和网络限量发放" in kind[0] and "{{" not in kind[0]

    clock.now += timedelta(hours=24, minutes=1)  # a new day: the network earns coupons again
    with phone(live_server.url, "203.0.113.77") as client:
        assert 'id="no-coupon"' not in gate_pass(client).text
