"""Fraud checks against the real parts: join signals recorded as keyed hashes by the gate over HTTP, and
referrals scored and stored on SQLite and PostgreSQL from a few set-based queries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, select
from starlette.requests import Request

import qunflow
from qunflow.services import coupons as ledger
from qunflow.services.fraud import RawSignals, hash_signals, record_join_signals, rescore, score_referrals
from qunflow.services.ingest import ingest_batch
from qunflow.services.playbooks import apply_playbooks
from qunflow.settings import Settings
from qunflow.store.tables import join_signals, members, referrals
from qunflow.web.public import client_ip
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, invite_token, setup_community
from tests.integration.test_join_flow import PHONE as PHONE_BROWSER

T0 = datetime(2026, 3, 2, 2, 0)
S3 = Path(qunflow.__file__).parent / "playbooks" / "s3_referral_rewards.yaml"
PHONE = "+86 138-0013-8000"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def member_ids(ws: Workspace) -> set[str]:
    with ws.engine.connect() as conn:
        return set(conn.execute(select(members.c.id)).scalars())


def gate_pass(ws: Workspace, client: httpx.Client, *, ref: str | None = None, form: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, user: str | None = None) -> str:
    """A person opens the (referral) link, passes the gate over HTTP and joins the sandbox group; the member id."""
    before = member_ids(ws)
    params = {"ref": ref} if ref else {}
    headers = {**PHONE_BROWSER, **(headers or {})}
    assert client.get("/j/xhs-note-1", params=params, headers=headers).status_code == 200
    page = client.post("/j/xhs-note-1", params=params, data=form or FORM, headers=headers)
    assert page.status_code == 200, page.text
    invite = re.search(r'id="invite" href="([^"]+)"', page.text)
    assert invite
    (member,) = member_ids(ws) - before
    if user:
        assert ws.sandbox.join(user, user, invite_token(invite.group(1))) == "joined"
    return member


def stored_signals(ws: Workspace, member: str) -> Any:
    with ws.engine.connect() as conn:
        return conn.execute(select(join_signals).where(join_signals.c.member_id == member)).one()


def test_gate_records_signals_as_keyed_hashes_over_http(workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace)
    workspace.settings.trust_proxy = True
    form = {**FORM, "phone": PHONE, "email": "li@mailinator.com"}
    agent = {"user-agent": "Mozilla/5.0 (iPhone) MicroMessenger/8.0", "x-forwarded-for": "203.0.113.7, 10.0.0.1"}
    with httpx.Client(base_url=live_server.url) as phone_a, httpx.Client(base_url=live_server.url) as phone_b:
        first = gate_pass(workspace, phone_a, form=form, headers=agent)
        device = phone_a.cookies["qf_dev"]
        again = gate_pass(workspace, phone_a, form={**FORM, "phone": "13800138000"}, headers=agent)
        other = gate_pass(workspace, phone_b, headers={**agent, "user-agent": "Mozilla/5.0 (Android)"})
        set_cookie = phone_b.get("/j/xhs-note-1").headers.get("set-cookie", "")
    with httpx.Client(base_url=live_server.url) as stranger:  # only a consenting gate pass sets the device id
        assert "qf_dev" not in stranger.get("/j/xhs-note-1").headers.get("set-cookie", "")
    a, a2, b = stored_signals(workspace, first), stored_signals(workspace, again), stored_signals(workspace, other)
    raw = {device, "203.0.113.7", PHONE, "13800138000", "li@mailinator.com", "mailinator.com"}
    for row in (a, a2, b):
        values = [v for v in (row.device, row.ip, row.ip_ua, row.phone) if v is not None]
        assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in values)
        assert not raw & set(values)  # nothing readable is stored
    assert a.device == a2.device != b.device  # the same cookie matches, another phone does not
    assert a.phone == a2.phone and b.phone is None  # +86 138-0013-8000 is 13800138000
    assert a.ip == a2.ip == b.ip and a.ip_ua == a2.ip_ua != b.ip_ua  # one network, two browsers
    assert a.disposable and not a2.disposable and not b.disposable  # a throwaway mailbox
    assert "qf_dev" not in set_cookie  # set once, kept for years
    expected = hash_signals(workspace, RawSignals(device=device, ip="203.0.113.7", user_agent=agent["user-agent"],
                                                  phone="13800138000"))
    assert (a.device, a.ip, a.ip_ua, a.phone) == (expected.device, expected.ip, expected.ip_ua, expected.phone)


def test_addresses_are_compared_the_way_networks_hand_them_out(workspace: Workspace) -> None:
    def ip(address: str) -> str | None:
        return hash_signals(workspace, RawSignals(ip=address)).ip

    assert ip("2001:db8:1:2::1") == ip("2001:db8:1:2:aaaa::9")  # one phone's rotating IPv6 privacy addresses
    assert ip("2001:db8:1:2::1") != ip("2001:db8:1:3::1")
    assert ip("::ffff:203.0.113.7") == ip("203.0.113.7") != ip("203.0.113.8")
    assert ip("not an address") is None and ip("") is None


def test_forwarded_for_counts_only_behind_a_trusted_proxy(workspace: Workspace, live_server: Any) -> None:
    setup_community(workspace)
    workspace.settings.trust_proxy = True
    found = []
    for address in ("198.51.100.1", "198.51.100.2"):
        with httpx.Client(base_url=live_server.url) as client:
            member = gate_pass(workspace, client, headers={"x-forwarded-for": address})
            cookie = next(c for c in client.cookies.jar if c.name == "qf_dev")
        assert cookie.has_nonstandard_attr("HttpOnly")
        found.append(stored_signals(workspace, member).ip)
    assert found[0] != found[1]  # two clients behind one proxy

    def request(peer: str, forwarded: str | None) -> Request:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return Request({"type": "http", "method": "POST", "path": "/j/x", "headers": headers, "client": (peer, 5)})

    # Without a trusted proxy the peer is the client: a header sent straight from the internet is ignored;
    # the old trust_proxy switch trusts every peer and hop, so the header's first address counts.
    untrusted, trust_all = Settings(), Settings(trust_proxy=True)
    assert client_ip(request("10.1.2.3", "1.2.3.4, 10.0.0.9"), untrusted) == "10.1.2.3"
    assert client_ip(request("10.1.2.3", "1.2.3.4, 10.0.0.9"), trust_all) == "1.2.3.4"
    assert client_ip(request("10.1.2.3", None), trust_all) == "10.1.2.3"
    # trusted_proxies: the nearest hop that is not one of ours is the client, whatever the client wrote before it
    behind = Settings(trusted_proxies=["10.0.0.0/8"])
    assert client_ip(request("10.1.2.3", "6.6.6.6, 1.2.3.4, 10.0.0.9"), behind) == "1.2.3.4"
    assert client_ip(request("192.0.2.1", "1.2.3.4"), behind) == "192.0.2.1"


# --- scoring on both databases ------------------------------------------------------------------------

def joined(ws: Workspace, member: str, referrer: str | None, at: datetime) -> None:
    result = ingest_batch(ws.engine, [{"event_id": f"j-{member}", "type": "joined", "ts": at.isoformat() + "Z",
                                       "member_id": member, "referrer_id": referrer, "campaign": "c"}])
    assert not result.errors, result.errors


def act(ws: Workspace, member: str, kind: str, at: datetime, order: str | None = None) -> None:
    item: dict[str, Any] = {"event_id": f"{kind}-{member}-{at:%H%M%S}", "type": kind, "ts": at.isoformat() + "Z",
                            "member_id": member}
    if order:
        item |= {"amount": "99", "properties": {"order_id": order}}
    assert not ingest_batch(ws.engine, [item]).errors


def signals(ws: Workspace, member: str, **raw: str) -> None:
    with ws.engine.begin() as conn:
        record_join_signals(conn, member, hash_signals(ws, RawSignals(**raw)), T0)


def build_world(ws: Workspace) -> dict[str, int]:
    """Referrals of every kind, as referrals rows made by the rewards engine from joined events."""
    from qunflow.services.rewards import process_events

    ws.clock = Clock(T0)
    apply_playbooks(ws, [S3])  # with a program, the engine records each invitee's first order
    signals(ws, "a", device="dev-a", ip="1.1.1.1", user_agent="UA-a", phone="13900000001")
    plan = [("h1", "a", 0, dict(device="dev-h1", ip="1.1.1.1", user_agent="UA-h1")),  # a's coworker: same IP
            ("self", "a", 60, dict(device="dev-a", ip="2.2.2.2", user_agent="UA-x")),
            ("f1", "farmer", 120, dict(device="farm")), ("f2", "farmer", 240, dict(device="farm")),
            ("q", "a", 300, dict(device="dev-q", email="q@mailinator.com")),
            ("coupon", "z", 400, dict(device="dev-c")),
            ("r2", "r1", 500, {}), ("r1", "r2", 501, {})]
    for member, inviter, minutes, raw in plan:
        if raw:
            signals(ws, member, **raw)
        joined(ws, member, inviter, T0 + timedelta(minutes=minutes))
    for member in ("h1", "self", "f1", "f2", "coupon", "r1", "r2"):
        act(ws, member, "message", T0 + timedelta(hours=12))
    act(ws, "h1", "order", T0 + timedelta(days=1), order="o-h1")
    act(ws, "coupon", "order", T0 + timedelta(minutes=403), order="o-c")  # 3 minutes after joining
    process_events(ws)
    with ws.engine.begin() as conn:
        owned, _ = ledger.issue(conn, member_id="z", name="inviter's", value=Decimal(20), valid_days=30,
                                cause="test:z", now=T0, actor="test")
        ledger.change(conn, owned.code, "redeem", now=T0 + timedelta(minutes=403), actor="shop",
                      order_ref="o-c", redeemed_by="coupon")
        return {row.invitee_id: row.id for row in conn.execute(select(referrals))}


def test_rescore_stores_levels_and_reasons(any_workspace: Workspace) -> None:
    ws = any_workspace
    ids = build_world(ws)
    now = T0 + timedelta(days=8)
    with ws.engine.begin() as conn:
        levels = rescore(conn, sorted(ids.values()), now)
    with ws.engine.connect() as conn:
        stored = {r.invitee_id: r for r in conn.execute(select(referrals))}
    codes = {m: {x["code"] for x in r.fraud_reasons} for m, r in stored.items()}
    assert codes == {"h1": {"shared_ip"}, "self": {"self_referral"}, "f1": {"shared_device"},
                     "f2": {"shared_device"}, "q": {"disposable", "never_active"},
                     "coupon": {"fast_conversion", "inviter_coupon"}, "r1": {"ring"}, "r2": {"ring"}}
    assert {m: r.fraud_level for m, r in stored.items()} == {
        "h1": "low", "self": "high", "f1": "high", "f2": "high", "q": "high", "coupon": "high", "r1": "high",
        "r2": "high"}
    assert levels == {ids[m]: r.fraud_level for m, r in stored.items()}
    assert {r.scored_at for r in stored.values()} == {now}
    assert all(isinstance(x["detail"], str) and x["detail"] for r in stored.values() for x in r.fraud_reasons)
    # Scoring earlier: q is not yet inactive for long enough; nothing is stored by score_referrals.
    with ws.engine.connect() as conn:
        early = score_referrals(conn, [ids["q"]], T0 + timedelta(days=1))
    assert early[ids["q"]].codes == {"disposable"} and early[ids["q"]].level == "medium"


@contextmanager
def counted(ws: Workspace) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(ws.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(ws.engine, "before_cursor_execute", count)


def test_rescore_takes_a_fixed_number_of_queries_however_many_referrals(workspace: Workspace) -> None:
    ws = workspace
    ids = build_world(ws)
    for n in range(40):  # a chain of forty: m0 -> m1 -> ... -> m40 (the ring check walks up it)
        joined(ws, f"m{n + 1}", f"m{n}", T0 + timedelta(hours=n))
    from qunflow.services.rewards import process_events

    process_events(ws)
    with ws.engine.connect() as conn:
        every = list(conn.execute(select(referrals.c.id)).scalars())
    runs = []
    for chosen in ([ids["h1"]], every):
        with counted(ws) as statements, ws.engine.begin() as conn:
            rescore(conn, chosen, T0 + timedelta(days=8))
        runs.append(len(statements))
    assert len(every) > 45 and runs[1] <= runs[0] + 1  # set-based: not one query per referral
