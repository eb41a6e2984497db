"""The fraud checks as pure functions: each reason fires when it should and stays quiet when it should not,
reasons combine into levels, and a shared IP alone never raises the level."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qunflow.domain.fraud import (
    SEVERITY,
    Circle,
    FraudRules,
    Peer,
    ReferralFacts,
    Signals,
    burst_size,
    combine,
    email_domain,
    is_disposable_email,
    is_virtual_phone,
    normalise_phone,
    ring_of,
    rings,
    score,
)
from qunflow.errors import InvalidInput
from qunflow.i18n import TEXTS
from qunflow.services.fraud import reason_text, rules_from_settings
from qunflow.settings import load_settings

T0 = datetime(2026, 3, 2, 2, 0)
RULES = FraudRules()


def facts(**changes: object) -> ReferralFacts:
    """An honest referral: own device, IP and phone, active, ordered two days later, alone with its inviter."""
    base = ReferralFacts(
        referral_id=1, inviter_id="a", invitee_id="b", joined_at=T0, now=T0 + timedelta(days=8),
        qualified_at=T0 + timedelta(days=2),
        inviter=Signals(device="dev-a", ip="ip-a", ip_ua="ipua-a", phone="ph-a"),
        invitee=Signals(device="dev-b", ip="ip-b", ip_ua="ipua-b", phone="ph-b"),
        peers=(Peer("c", T0 + timedelta(hours=5), Signals(device="dev-c", ip="ip-c", ip_ua="ipua-c", phone="ph-c")),),
        active=True)
    return replace(base, **changes)  # type: ignore[arg-type]


def peer(member: str, minutes: float = 300, **signals: str) -> Peer:
    return Peer(member, T0 + timedelta(minutes=minutes), Signals(**signals))  # type: ignore[arg-type]


def test_an_honest_referral_is_low_with_no_reasons() -> None:
    result = score(facts())
    assert (result.level, result.reasons) == ("low", [])


@pytest.mark.parametrize(("changes", "match"), [
    ({"invitee_id": "a"}, "member"),
    ({"invitee": Signals(device="dev-a", ip="ip-b", ip_ua="ipua-b", phone="ph-b")}, "device"),
    ({"invitee": Signals(device="dev-b", ip="ip-b", ip_ua="ipua-b", phone="ph-a")}, "phone"),
])
def test_self_referral_by_member_device_or_phone_is_high(changes: dict[str, object], match: str) -> None:
    result = score(facts(**changes))
    assert result.level == "high" and "self_referral" in result.codes
    assert [r["match"] for r in result.reasons if r["code"] == "self_referral"] == [match]


def test_device_farm_shares_one_device_among_invitees() -> None:
    farm = facts(invitee=Signals(device="farm"), peers=(peer("c", device="farm"), peer("d", 600, device="farm")))
    result = score(farm)
    assert result.level == "high" and result.codes == {"shared_device"}
    assert result.reasons[0]["count"] == 2
    assert "shared_device" not in score(facts(invitee=Signals(device="farm"), peers=(peer("c", device="x"),))).codes


def test_shared_phone_among_invitees_is_high() -> None:
    result = score(facts(invitee=Signals(phone="p1"), peers=(peer("c", phone="p1"),)))
    assert result.level == "high" and result.codes == {"shared_phone"}
    assert score(facts(invitee=Signals(phone="p1"), peers=(peer("c", phone="p2"),))).codes == set()


def test_shared_ip_and_user_agent_is_soft_with_the_inviter_or_a_peer() -> None:
    with_inviter = score(facts(invitee=Signals(ip="ip-a", ip_ua="ipua-a")))
    with_peer = score(facts(invitee=Signals(ip="ip-c", ip_ua="ipua-c")))
    assert with_inviter.codes == with_peer.codes == {"shared_ip_ua"}
    assert with_inviter.level == with_peer.level == "medium"


def test_ip_alone_stays_low_however_many_share_it() -> None:
    dorm = tuple(peer(f"p{i}", 60 * i, ip="dorm", ip_ua=f"ua{i}") for i in range(1, 30))
    result = score(facts(invitee=Signals(ip="dorm", ip_ua="mine"), peers=dorm))
    assert result.level == "low" and result.codes == {"shared_ip"}
    assert result.reasons[0]["severity"] == "info" and result.reasons[0]["count"] == 29


def test_burst_fires_at_the_threshold_within_the_window_only() -> None:
    def run(count: int, spread_minutes: float) -> set[str]:
        step = spread_minutes / max(count - 1, 1)
        peers = tuple(peer(f"p{i}", i * step, device=f"d{i}") for i in range(1, count))
        return score(facts(peers=peers, joined_at=T0)).codes

    assert run(5, 9) == {"burst"}  # 5 invitees in 9 minutes: the default is 5 within 10
    assert run(4, 3) == set()  # 4 is below the threshold
    assert run(5, 40) == set()  # 5 spread over 40 minutes: no 10-minute window holds 5
    assert burst_size(T0, [T0 + timedelta(minutes=m) for m in (1, 2, 30, 31, 32, 33)], 10) == 3


def test_burst_counts_the_window_around_this_join_not_elsewhere() -> None:
    later = tuple(peer(f"p{i}", 600 + i, device=f"d{i}") for i in range(8))  # 8 joins ten hours later
    assert "burst" not in score(facts(peers=later)).codes
    assert "burst" in score(facts(peers=later, joined_at=T0 + timedelta(minutes=603))).codes


def test_fast_conversion() -> None:
    fast = score(facts(qualified_at=T0 + timedelta(minutes=4)))
    assert fast.codes == {"fast_conversion"} and fast.level == "medium" and fast.reasons[0]["minutes"] == 4.0
    assert score(facts(qualified_at=T0 + timedelta(minutes=10))).codes == set()
    assert score(facts(qualified_at=None)).codes == set()


def test_inviter_coupon_on_the_invitees_order_is_high() -> None:
    result = score(facts(inviter_coupon_used=True))
    assert result.codes == {"inviter_coupon"} and result.level == "high"


def test_never_active_only_after_the_grace_days() -> None:
    assert score(facts(active=False, now=T0 + timedelta(days=2, hours=23))).codes == set()
    late = score(facts(active=False, now=T0 + timedelta(days=3)))
    assert late.codes == {"never_active"} and late.level == "medium"
    assert score(facts(active=True, now=T0 + timedelta(days=30))).codes == set()


def test_rings_are_closed_clusters() -> None:
    edges = [("a", "b"), ("b", "a"), ("c", "d"), ("d", "e"), ("e", "c"), ("x", "y"), ("y", "z"), ("a", "x"),
             ("s", "s")]
    found = rings(edges)
    assert found["a"] == found["b"] == frozenset({"a", "b"})
    assert found["c"] == frozenset({"c", "d", "e"})
    assert "x" not in found and "s" not in found  # a chain is no ring; a self-loop is a self-referral
    assert ring_of(found, "a", "b") == frozenset({"a", "b"})
    assert ring_of(found, "a", "x") == frozenset()  # an edge out of a ring is not in it
    result = score(facts(ring=frozenset({"a", "b"})))
    assert result.codes == {"ring"} and result.level == "high" and result.reasons[0]["size"] == 2


def test_disposable_identities() -> None:
    assert is_disposable_email("bot@mailinator.com") and is_disposable_email("x@sub.mailinator.com")
    assert not is_disposable_email("li.lei@qq.com") and not is_disposable_email("not-an-email")
    assert email_domain("A@Example.COM") == "example.com" and email_domain("@x.com") is None
    assert is_virtual_phone("+86 170-1234-5678") and is_virtual_phone("17112345678")
    assert not is_virtual_phone("13800138000") and not is_virtual_phone("170")
    assert normalise_phone("+86 138-0013-8000") == normalise_phone("0086 13800138000") == "13800138000"
    assert is_virtual_phone("13800138000", FraudRules(virtual_phone_prefixes=("138",)))
    result = score(facts(invitee=Signals(device="dev-b", disposable=True)))
    assert result.codes == {"disposable"} and result.level == "medium"


def test_levels_combine_hard_soft_and_info() -> None:
    assert combine([], RULES) == "low"
    assert combine(["shared_ip"], RULES) == "low"
    assert combine(["burst"], RULES) == "medium"
    assert combine(["burst", "shared_ip"], RULES) == "medium"
    assert combine(["burst", "never_active"], RULES) == "high"
    assert combine(["burst", "burst"], RULES) == "medium"  # one reason counted once
    assert combine(["ring"], RULES) == "high"
    assert combine(["burst", "never_active"], FraudRules(soft_for_high=3)) == "medium"
    two_soft = score(facts(active=False, qualified_at=T0 + timedelta(minutes=1)))
    assert two_soft.codes == {"never_active", "fast_conversion"} and two_soft.level == "high"


def test_thresholds_are_taken_from_the_rules() -> None:
    quick = FraudRules(fast_conversion_minutes=60, inactive_days=10, burst_count=2, burst_minutes=400)
    result = score(facts(qualified_at=T0 + timedelta(minutes=30), active=False), quick)
    assert result.codes == {"fast_conversion", "burst"}  # 8 days inactive < 10; the peer 300 min away


def test_every_reason_has_texts_in_both_languages() -> None:
    keys = {f"fraud_why_{code}" for code in SEVERITY if code != "self_referral"} | {f"fraud_{c}" for c in SEVERITY}
    keys |= {f"fraud_why_self_referral_{m}" for m in ("member", "device", "phone")}
    assert all(set(TEXTS[k]) == {"zh", "en"} for k in keys)
    reason = score(facts(peers=tuple(peer(f"p{i}", i, device=f"d{i}") for i in range(1, 6)), joined_at=T0)).reasons[0]
    assert reason_text(reason, "zh") == "同一邀请人的 6 位被邀请人在 10 分钟内集中入群。"
    assert reason_text(reason, "en") == "6 invitees of the inviter joined within 10 minutes."
    assert reason_text({"code": "new_kind", "detail": "something new"}, "zh") == "something new"
    assert reason_text({"code": "burst"}, "en") == TEXTS["fraud_burst"]["en"]  # no numbers: the short name


def test_thresholds_come_from_the_settings_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qunflow.toml").write_text("[qunflow]\nfraud_burst_count = 8\nfraud_inactive_days = 5\n",
                                           encoding="utf-8")
    monkeypatch.setenv("QUNFLOW_FRAUD_BURST_MINUTES", "3")
    monkeypatch.setenv("QUNFLOW_FRAUD_VIRTUAL_PHONE_PREFIXES", '["170"]')
    monkeypatch.setenv("QUNFLOW_TRUST_PROXY", "1")
    settings = load_settings(tmp_path)
    rules = rules_from_settings(settings)
    assert (rules.burst_count, rules.burst_minutes, rules.inactive_days) == (8, 3, 5)
    assert rules.virtual_phone_prefixes == ("170",) and settings.trust_proxy
    assert "message" in rules.active_types and rules.soft_for_high == 2
    monkeypatch.setenv("QUNFLOW_FRAUD_BURST_COUNT", "1")
    with pytest.raises(InvalidInput, match="QUNFLOW_FRAUD_BURST_COUNT"):
        load_settings(tmp_path)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.sampled_from([None, "d1", "d2"]), st.sampled_from([None, "p1"]),
                          st.sampled_from([None, "x1", "x2"]), st.sampled_from([None, "ip1", "ip2"])), max_size=12),
       st.sampled_from([None, "d1"]), st.sampled_from([None, "x1"]), st.sampled_from([None, "ip1"]))
def test_a_precomputed_circle_scores_like_the_peers(others: list[tuple[int, Any, Any, Any, Any]], device: Any,
                                                   ip_ua: Any, ip: Any) -> None:
    """gather() counts an inviter's invitees once (Circle); the result is the same as comparing peer by peer."""
    peers = tuple(Peer(f"p{i}", T0 + timedelta(minutes=m), Signals(device=d, phone=p, ip_ua=x, ip=a))
                  for i, (m, d, p, x, a) in enumerate(others))
    me = Signals(device=device, ip_ua=ip_ua, ip=ip, phone="p1")
    inviter = Signals(device="dev-a", ip_ua="x2", ip="ip2")
    plain = score(facts(invitee=me, inviter=inviter, peers=peers, joined_at=T0 + timedelta(minutes=30)))
    circle = Circle.of([(T0 + timedelta(minutes=30), me), *((p.joined_at, p.signals) for p in peers)])
    counted = score(facts(invitee=me, inviter=inviter, peers=(), circle=circle, joined_at=T0 + timedelta(minutes=30)))
    assert counted == plain
    expected_devices = sum(1 for p in peers if device and p.signals and p.signals.device == device)
    assert ("shared_device" in plain.codes) == (expected_devices > 0)
