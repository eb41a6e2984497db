"""domain/sync.py: the signature a receiver checks, the payload's fields, the retry waits, the subscription's rules."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from qunflow.domain.sync import SyncTarget, body, headers, payload, retry_after, signature, verify, wait_after


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    raw = b'{"id":"e1"}'
    expected = hmac.new(b"s3cret", b"1767225600." + raw, hashlib.sha256).hexdigest()
    assert signature("s3cret", 1767225600, raw) == f"v1={expected}"
    sent = headers("s3cret", 1767225600, raw, "e1", "joined")
    assert sent == {"X-Qunflow-Signature": f"v1={expected}", "X-Qunflow-Timestamp": "1767225600",
                    "X-Qunflow-Event-Id": "e1", "X-Qunflow-Event-Type": "joined"}
    assert verify("s3cret", "1767225600", raw, sent["X-Qunflow-Signature"], now=1767225600 + 299)
    assert not verify("s3cret", "1767225600", raw, sent["X-Qunflow-Signature"], now=1767225600 + 301)  # a replay
    assert not verify("s3cret", "1767225600", raw + b" ", sent["X-Qunflow-Signature"], now=1767225600)
    assert not verify("s3cret", "soon", raw, sent["X-Qunflow-Signature"], now=1767225600)


def test_the_payload_keeps_ids_and_the_documented_fields_only() -> None:
    row = {"event_id": "o-1", "type": "order", "ts": datetime(2026, 3, 2, 1, 0), "member_id": "m_1",
           "amount": Decimal("12.5000"), "currency": "CNY", "group_key": "core-1", "channel": None,
           "visitor_id": "v-secret", "properties": {"order_id": "A-1", "name": "Li Lei", "phone": "13800138000"}}
    assert payload(row, "acme", "cust-9") == {
        "id": "o-1", "type": "order", "ts": "2026-03-02T01:00:00.000000Z", "workspace": "acme",
        "member": {"id": "m_1", "external_id": "cust-9"},
        "properties": {"amount": "12.5000", "currency": "CNY", "group": "core-1", "order_id": "A-1"}}
    consent = {"event_id": "c-1", "type": "consent_changed", "ts": datetime(2026, 3, 2), "member_id": "m_1",
               "properties": {"purpose": "marketing", "granted": False, "source": "keyword"}}
    assert payload(consent, "acme", None)["properties"] == {"purpose": "marketing", "granted": False,
                                                            "source": "keyword"}
    assert payload(consent, "acme", None)["member"] == {"id": "m_1"}
    assert body({"b": 1, "a": "群"}) == '{"a":"群","b":1}'.encode()


def test_waits_double_from_30_seconds_up_to_an_hour_and_retry_after_wins() -> None:
    assert [wait_after(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert wait_after(30) == timedelta(hours=1)
    now = datetime(2026, 3, 2, 1, 0)
    assert retry_after("120", now) == timedelta(seconds=120)
    assert retry_after("Mon, 02 Mar 2026 01:05:00 GMT", now) == timedelta(minutes=5)
    assert retry_after("99999", now) == timedelta(hours=1)
    assert retry_after("Mon, 02 Mar 2026 00:05:00 GMT", now) == timedelta(0)
    assert retry_after("soon", now) is None and retry_after(None, now) is None


def test_a_subscription_names_real_events_and_an_environment_variable() -> None:
    target = SyncTarget(url="https://crm.example.com/q", events=["member_joined", "order_attributed", "tier_moved",
                                                                 "joined"], secret_env="CRM_SECRET")
    assert target.types == ("joined", "order", "tier_moved") and target.attempts == 8 and target.backfill
    with pytest.raises(ValidationError, match="unknown event 'member_left'"):
        SyncTarget(url="https://crm.example.com/q", events=["member_left"], secret_env="CRM_SECRET")
    with pytest.raises(ValidationError, match="must name an environment variable"):
        SyncTarget(url="https://crm.example.com/q", events=["joined"], secret_env="whsec_abc123-secret!")
    with pytest.raises(ValidationError, match="http"):
        SyncTarget(url="ftp://crm.example.com/q", events=["joined"], secret_env="CRM_SECRET")
    with pytest.raises(ValidationError):
        SyncTarget(url="https://crm.example.com/q", events=[], secret_env="CRM_SECRET")
