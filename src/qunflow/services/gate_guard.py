"""The gate's guard (issue 11): rate limits per client IP and device, a proof-of-work challenge, the coupon cap.

Rate limits are GCRA buckets (domain/ratelimit.py) in the state database, like the shared send limits
(engine/limits.py): one row per bucket, taken under a row lock on PostgreSQL, so every process of a
deployment counts together. The `limits` library was not used: it keeps its counters in memory, Redis,
Memcached or MongoDB, and a deployment of qunflow already has the state database and nothing else.
Bucket keys are keyed hashes of the IP or device (the fraud checks' hashes): no address is stored.

The challenge is ALTCHA's proof-of-work (the `altcha` library makes and checks it; the page's solver is
our own web/static/gate-pow.js): find n with sha256(salt + n) = challenge. The salt carries its expiry and
is signed with a key derived from the workspace secret; a solved challenge is spent once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from altcha import ChallengeOptionsV1, create_challenge_v1, extract_params_v1, verify_solution_v1
from sqlalchemy import Connection, delete, func, select, update

from qunflow.domain.fraud import Signals
from qunflow.domain.gate_guard import PassCheck, challenge_hints, coupon_allowed
from qunflow.domain.ratelimit import Limit, gcra
from qunflow.store.plain import insert_if_new, insert_ignore
from qunflow.store.tables import join_signals, request_limits, spent_challenges
from qunflow.workspace import Workspace

EPOCH = datetime(1970, 1, 1)
CHALLENGE_TTL = timedelta(minutes=20)  # long enough to fill in the form, short enough to be useless stored
COUPON_WINDOW = timedelta(hours=24)
PRUNE_EVERY = 500  # takes between two clean-ups of passed buckets and expired challenges, per process
_takes = itertools.count(1)


def _key(kind: str, hashed: str | None) -> str | None:
    return f"{kind}:{hashed[:40]}" if hashed else None


def take(ws: Workspace, wanted: Mapping[str, Limit], *, all_or_nothing: bool = True) -> dict[str, float]:
    """Take one call from each bucket; returns the seconds each one still asks to wait (0: taken).

    `all_or_nothing`: when any bucket is empty, none is taken (a refused request costs no other bucket)."""
    now = ws.clock()
    keys = sorted(wanted)  # one lock order for every process: no deadlocks
    if not keys:
        return {}
    with ws.engine.begin() as conn:
        insert_ignore(conn, request_limits, [{"key": key, "tat": EPOCH} for key in keys])
        query = select(request_limits.c.key, request_limits.c.tat).where(request_limits.c.key.in_(keys))
        if conn.dialect.name == "postgresql":
            query = query.order_by(request_limits.c.key).with_for_update()
        stored = dict(conn.execute(query).all())
        taken = {key: gcra(stored.get(key), now, wanted[key]) for key in keys}
        refused = any(wait > 0 for _tat, wait in taken.values())
        for key, (tat, wait) in taken.items():
            if wait == 0 and not (refused and all_or_nothing):
                conn.execute(update(request_limits).where(request_limits.c.key == key).values(tat=tat))
    if next(_takes) % PRUNE_EVERY == 0:
        prune(ws)
    return {key: wait for key, (_tat, wait) in taken.items()}


def prune(ws: Workspace) -> int:
    """Forget buckets that have refilled and challenges that have expired; returns the rows removed."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        gone = conn.execute(delete(request_limits).where(request_limits.c.tat < now)).rowcount
        gone += conn.execute(delete(spent_challenges).where(spent_challenges.c.expires_at < now)).rowcount
    return int(gone)


def check_view(ws: Workspace, ip: str | None) -> float:
    """A public page (landing, referral link, personal link) was asked for: 0, or the seconds to wait."""
    key = _key("view:ip", ip)
    if key is None:
        return 0.0
    return take(ws, {key: ws.settings.gate.ip_views})[key]


def check_pass(ws: Workspace, ip: str | None, devices: list[str], *, has_visitor_cookie: bool,
               user_agent: str | None) -> PassCheck:
    """A gate form was posted: refuse it past the hard limits, or ask for the challenge when it looks automated.
    `ip` and `devices` are keyed hashes: of the client IP, and of each id cookie the request carried (the
    visitor cookie from the landing page, the device cookie from an earlier pass), each a bucket."""
    limits = ws.settings.gate
    hard = {k: limit for k, limit in [(_key("pass:ip", ip), limits.ip_passes),
                                      *((_key("pass:dev", d), limits.device_passes) for d in devices)] if k}
    waits = take(ws, hard)
    longest = max(waits.values(), default=0.0)
    if longest > 0:
        return PassCheck(retry_after=longest)
    ip_key = _key("soft:ip", ip)
    device_keys = {k for k in (_key("soft:dev", d) for d in devices) if k}
    soft = {k: limit for k, limit in [(ip_key, limits.challenge_ip_passes),
                                      *((k, limits.challenge_device_passes) for k in device_keys)] if k}
    over = take(ws, soft, all_or_nothing=False)
    hints = challenge_hints(has_visitor_cookie=has_visitor_cookie, user_agent=user_agent,
                            ip_over=over.get(ip_key or "", 0) > 0, device_over=any(over[k] > 0 for k in device_keys))
    return PassCheck(challenge=bool(hints), why=hints)


# --- the proof-of-work challenge ---------------------------------------------------------------------

def _challenge_key(ws: Workspace) -> bytes:
    return hmac.new(ws.secret, b"qunflow gate challenge v1", hashlib.sha256).digest()


def new_challenge(ws: Workspace) -> str:
    """A fresh challenge as JSON for the page's solver: algorithm, challenge, maxNumber, salt, signature."""
    expires = ws.clock().replace(tzinfo=UTC) + CHALLENGE_TTL
    challenge = create_challenge_v1(ChallengeOptionsV1(
        hmac_key=_challenge_key(ws), max_number=ws.settings.gate.challenge_difficulty,
        params={"expires": str(int(expires.timestamp()))}))
    return json.dumps(challenge.to_dict(), separators=(",", ":"))


@dataclass(frozen=True)
class Solved:
    ok: bool
    problem: str = ""  # for logs and tests: missing, invalid, expired, spent


def spend_solution(ws: Workspace, payload: str | None) -> Solved:
    """Check a solved challenge (the form's base64 payload) and spend it: each one passes one gate post."""
    if not payload:
        return Solved(False, "missing")
    try:  # anything a client sends: a list, a number where text goes, bad base64 ... is simply not a solution
        data = json.loads(base64.b64decode(payload.strip(), validate=True))
        if not isinstance(data, dict) or data.get("algorithm") != "SHA-256":
            return Solved(False, "invalid")
        ok, _error = verify_solution_v1(payload.strip(), _challenge_key(ws), check_expires=False)
        # our own clock for the expiry, not the library's (tests and the demo move time)
        stamp = int(extract_params_v1(cast(Any, data))["expires"][0])
        expires = datetime.fromtimestamp(stamp, UTC).replace(tzinfo=None)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError):
        return Solved(False, "invalid")
    if not ok:
        return Solved(False, "invalid")
    if expires < ws.clock():
        return Solved(False, "expired")
    with ws.engine.begin() as conn:
        if not insert_if_new(conn, spent_challenges, {"signature": str(data["signature"])[:128],
                                                      "expires_at": expires}):
            return Solved(False, "spent")
    return Solved(True)


# --- the new-member coupon cap -----------------------------------------------------------------------

def coupon_eligible(ws: Workspace, conn: Connection, signals: Signals, now: datetime) -> bool:
    """Whether a pass with these signals earns new-member coupons: under the cap of passes that did, in the
    last 24 hours, from its device and from its IP. Runs in the gate's transaction."""
    limits = ws.settings.gate
    since = now - COUPON_WINDOW

    def counted(column: Any, value: str | None) -> int:
        if value is None:
            return 0
        return int(conn.execute(select(func.count()).select_from(join_signals).where(
            column == value, join_signals.c.recorded_at > since, join_signals.c.coupon_eligible.is_(True)))
            .scalar_one())

    return coupon_allowed(counted(join_signals.c.device, signals.device), counted(join_signals.c.ip, signals.ip),
                          limits.coupons_per_device_day, limits.coupons_per_ip_day)


def member_coupon_eligible(conn: Connection, member_id: str) -> bool:
    """False when the member's gate pass was over the coupon cap; members who came without a gate are eligible."""
    found = conn.execute(select(join_signals.c.coupon_eligible).where(join_signals.c.member_id == member_id)).scalar()
    return found is None or bool(found)
