"""The gate guard's pure rules: the client's address, automation hints, the coupon cap, the live code's spread."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qunflow.domain.gate_guard import (
    challenge_hints,
    client_address,
    coupon_allowed,
    looks_automated_agent,
    retry_header,
)
from qunflow.domain.routing import GroupSlot, choose_group
from qunflow.errors import InvalidInput
from qunflow.settings import load_settings


def test_forwarded_for_counts_only_from_trusted_proxies_and_from_the_right() -> None:
    proxies = ["10.0.0.0/8", "127.0.0.1"]
    assert client_address("203.0.113.5", "1.2.3.4", proxies) == "203.0.113.5"  # not a proxy: its header lies
    assert client_address("127.0.0.1", "1.2.3.4", proxies) == "1.2.3.4"
    # a client that writes its own header: the proxy appends the real address last, and that one counts
    assert client_address("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.9", proxies) == "198.51.100.7"
    assert client_address("127.0.0.1", None, proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", "junk", proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", "10.0.0.3", proxies) == "10.0.0.3"  # only proxies: the farthest
    assert client_address("203.0.113.5", "1.2.3.4", [], trust_any=True) == "1.2.3.4"  # the old trust_proxy
    assert client_address(None, "1.2.3.4", []) is None


@pytest.mark.parametrize("agent, automated", [
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) MicroMessenger/8.0.49", False),
    ("Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile Safari/537.36", False),
    ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/126.0 Safari/537.36", True),
    ("python-httpx/0.27.0", True), ("python-requests/2.32", True), ("curl/8.5.0", True),
    ("Go-http-client/1.1", True), ("", True), (None, True),
])
def test_headless_browsers_and_http_libraries_look_automated(agent: str | None, automated: bool) -> None:
    assert looks_automated_agent(agent) is automated


def test_challenge_hints_name_each_reason() -> None:
    phone = "Mozilla/5.0 (iPhone) MicroMessenger/8.0"
    assert challenge_hints(has_visitor_cookie=True, user_agent=phone, ip_over=False, device_over=False) == ()
    assert challenge_hints(has_visitor_cookie=False, user_agent="curl/8", ip_over=True, device_over=True) == (
        "no_cookie", "agent", "ip_rate", "device_rate")


def test_coupon_cap_counts_device_and_ip_separately() -> None:
    assert coupon_allowed(0, 0, per_device=1, per_ip=100)
    assert not coupon_allowed(1, 0, per_device=1, per_ip=100)
    assert not coupon_allowed(0, 100, per_device=1, per_ip=100)
    assert not coupon_allowed(0, 0, per_device=0, per_ip=100)  # 0: no new-member coupons through the gate


def test_retry_after_is_whole_seconds_and_never_zero() -> None:
    assert [retry_header(s) for s in (0.01, 1.0, 1.2, 119.9, 120.0)] == ["1", "1", "2", "120", "120"]


def test_gate_limits_are_read_from_the_settings_file_and_checked(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "qunflow.toml").write_text(
        '[qunflow]\ntrusted_proxies = ["10.0.0.0/8"]\n[qunflow.gate]\nip_passes = [600, 600]\n'
        "coupons_per_ip_day = 500\n", encoding="utf-8")
    settings = load_settings(tmp_path)
    assert settings.gate.ip_passes == (600, 600) and settings.gate.coupons_per_ip_day == 500
    assert settings.gate.device_passes == (5, 3600) and settings.trusted_proxies == ["10.0.0.0/8"]
    (tmp_path / "qunflow.toml").write_text('[qunflow.gate]\nip_passes = [0, 600]\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="gate.ip_passes"):
        load_settings(tmp_path)
    (tmp_path / "qunflow.toml").write_text('[qunflow]\ntrusted_proxies = ["my-proxy"]\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="not an IP address or network"):
        load_settings(tmp_path)


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 6), st.integers(0, 8)), min_size=1, max_size=6))
def test_passes_waiting_to_join_steer_the_live_code_but_never_close_a_group(raw: list) -> None:  # type: ignore[type-arg]
    groups = [GroupSlot(i, f"g{i}", "core", cap, occ, True, pending) for i, (cap, occ, pending) in enumerate(raw)]
    chosen = choose_group(groups, "core")
    with_room = [g for g in groups if g.room > 0]
    assert (chosen is None) == (not with_room)  # full only when joins fill it, whatever passes wait
    if chosen is not None:
        spare = [g for g in with_room if g.room > g.pending]
        assert chosen == (spare[0] if spare else max(with_room, key=lambda g: g.room - g.pending))
