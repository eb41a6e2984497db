"""The notifier: every outbound webhook (staff alerts, the weekly report, the CRM sync) goes through `post`.

Staff alerts are queued in the state database in the transaction that made the inbox alert, posted
off the message path, retried with backoff and finally left as `failed` with the last error. A
webhook's URL often carries a bot token in its path or query: only its host ever reaches a message.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, select, update

from qunflow.store.plain import insert_if_new
from qunflow.store.tables import staff_alerts

if TYPE_CHECKING:
    from qunflow.workspace import Workspace

log = logging.getLogger("qunflow.notifier")
ALERT_TIMEOUT = 5.0  # seconds for one webhook call; it runs off the message path
ALERT_LEASE = timedelta(seconds=60)  # a post interrupted mid-call is tried again after this
ALERT_ATTEMPTS = 5


def where(url: str) -> str:
    """The host of a webhook URL, without credentials, path or query (they may hold a token)."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


@dataclass(frozen=True)
class Answer:
    """What a webhook made of one post: its status (None when it did not answer), an error naming only the
    host (None when it took the post), and its Retry-After header, if any."""

    status: int | None
    error: str | None
    retry_after: str | None = None


def post(url: str, payload: dict[str, Any] | bytes, *, timeout: float = ALERT_TIMEOUT,
         headers: Mapping[str, str] | None = None) -> Answer:
    """POST `payload` (a document sent as JSON, or the exact JSON bytes a signature covers) with `headers`.
    The one outbound-webhook call: staff alerts, the weekly report and the CRM sync all come here."""
    sent = {"content-type": "application/json", **(headers or {})}
    raw = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    try:
        response = _client().post(url, content=raw, headers=sent, timeout=timeout)
    except httpx.HTTPError as exc:
        return Answer(None, f"webhook at {where(url)} did not answer: {exc.__class__.__name__}")
    if response.status_code >= 400:
        return Answer(response.status_code,
                      f"webhook at {where(url)} answered {response.status_code}: {response.text[:200]}",
                      response.headers.get("retry-after"))
    return Answer(response.status_code, None)


_shared: httpx.Client | None = None
_shared_lock = threading.Lock()


def _client() -> httpx.Client:
    """One client for every webhook post (thread-safe): a new one per call costs ~40 ms, mostly building its
    TLS context, which would cap the CRM sync at about 20 posts a second (bench/bench_sync.py)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = httpx.Client(follow_redirects=False)
        return _shared


def post_json(url: str, payload: dict[str, Any] | bytes, *, timeout: float = ALERT_TIMEOUT,
              headers: Mapping[str, str] | None = None) -> str | None:
    """POST `payload` as JSON. None when the webhook took it; else what went wrong, naming only the host."""
    return post(url, payload, timeout=timeout, headers=headers).error


def queue_staff_alert(conn: Connection, cause: str, payload: dict[str, Any], now: datetime) -> bool:
    """Queue one post to the staff webhook (once per cause) in the caller's transaction; then call
    kick_staff_alerts after the commit. Any inbox alert may use it (e.g. a playbook's notify_staff)."""
    return insert_if_new(conn, staff_alerts, {"cause": cause, "payload": payload, "status": "pending",
                                               "attempts": 0, "next_at": now, "created_at": now})





def kick_staff_alerts(ws: Workspace) -> threading.Thread:
    """Post waiting alerts on a daemon thread: the platform's webhook call never waits for staff's."""
    thread = threading.Thread(target=_post_quietly, args=(ws,), name="staff-alerts", daemon=True)
    thread.start()
    return thread


def _post_quietly(ws: Workspace) -> None:
    try:
        post_staff_alerts(ws)
    except Exception:  # recorded per alert; anything else is retried by the serve loop
        log.exception("posting staff alerts failed")


def post_staff_alerts(ws: Workspace, limit: int = 50) -> int:
    """POST due alerts to settings.staff_webhook; a failure is recorded and retried with backoff
    (30 s, 1, 2, 4 min), then left as `failed` with the last error. Returns how many were posted."""
    url = ws.settings.staff_webhook
    if not url:
        return 0
    now = ws.clock()
    a = staff_alerts.c
    with ws.engine.connect() as conn:
        due = conn.execute(select(a.id, a.status, a.next_at, a.attempts, a.payload)
                           .where(a.status.in_(("pending", "posting")), a.next_at <= now)
                           .order_by(a.next_at).limit(limit)).all()
    posted = 0
    for row in due:
        with ws.engine.begin() as conn:  # claim: another poster that got here first wins
            claimed = conn.execute(update(staff_alerts).where(a.id == row.id, a.status == row.status,
                                                              a.next_at == row.next_at)
                                   .values(status="posting", next_at=now + ALERT_LEASE)).rowcount
        if not claimed:
            continue
        error = post_json(url, row.payload)
        attempts = row.attempts + 1
        if error is None:
            values: dict[str, Any] = {"status": "sent", "sent_at": ws.clock(), "attempts": attempts,
                                      "last_error": None}
            posted += 1
        elif attempts >= ALERT_ATTEMPTS:
            values = {"status": "failed", "attempts": attempts, "last_error": error}
            log.warning("staff alert %s: gave up after %d attempts: %s", row.id, attempts, error)
        else:
            values = {"status": "pending", "attempts": attempts, "last_error": error,
                      "next_at": now + timedelta(seconds=30 * 2 ** (attempts - 1))}
        with ws.engine.begin() as conn:
            conn.execute(update(staff_alerts).where(a.id == row.id).values(**values))
    return posted
