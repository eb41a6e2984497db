"""The connector contract: one set of tests over every registered platform, the sandbox included.

Each runs against the platform's local stand-in (tests/contract/harness.py). A new platform registers
itself (connectors/registry.py) and adds a harness; until it does, the first test fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qunflow.connectors.base import (
    Capabilities,
    ContactAdded,
    Fix,
    JoinRequested,
    MemberJoined,
    SendResult,
    Update,
    fix_text,
)
from qunflow.connectors.registry import platforms
from qunflow.errors import InvalidInput, Unauthorized
from tests.contract.harness import HARNESSES, Harness, harness_for

ARRIVALS = (JoinRequested, MemberJoined, ContactAdded)
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_registered_platform_has_a_harness() -> None:
    assert set(platforms()) == set(HARNESSES)


@pytest.fixture(params=sorted(platforms()))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with harness_for(request.param, tmp_path) as made:
        yield made


def arrivals(h: Harness) -> list[Update]:
    return [u for u in h.updates() if isinstance(u, ARRIVALS)]


def test_capabilities_are_coherent(harness: Harness) -> None:
    caps = harness.connector.capabilities
    assert isinstance(caps, Capabilities) and caps == platforms()[harness.platform].capabilities
    assert caps.invite_label_max >= 8
    if caps.dm_policy in ("join_request_window", "callback_window"):
        assert caps.dm_window_seconds and caps.dm_window_seconds > 0
    if caps.dm_policy == "join_request_window":
        assert caps.join_requests


def test_a_forged_call_is_refused(harness: Harness) -> None:
    forged = harness.forged()
    with pytest.raises(Unauthorized) as refused:
        harness.connector.receive(forged.method, forged.query, forged.headers, forged.body)
    assert CJK.search(refused.value.text("zh")) and refused.value.text("zh") != str(refused.value)  # issue 10


def test_a_label_longer_than_the_platform_carries_is_refused(harness: Harness) -> None:
    too_long = "x" * (harness.connector.capabilities.invite_label_max + 1)
    with pytest.raises(InvalidInput) as refused:
        harness.connector.create_invite(harness.group(), too_long)
    assert CJK.search(refused.value.text("zh")) and refused.value.text("zh") != str(refused.value)


def test_an_arrival_through_a_tracked_invite_comes_back_with_its_label_and_a_stable_key(harness: Harness) -> None:
    caps = harness.connector.capabilities
    label = "entry-" + "x" * (caps.invite_label_max - 6)  # the longest label the platform carries
    link = harness.connector.create_invite(harness.group(), label, join_request=caps.join_requests)
    person = harness.person("Alice")
    harness.arrive(person, link)
    [arrival] = [u for u in arrivals(harness) if u.user_id == person]  # type: ignore[attr-defined]
    assert arrival.invite_label == label and arrival.platform == harness.platform  # type: ignore[attr-defined]
    assert arrivals(harness)[-1].key == arrival.key  # the same call received again: the same key


def test_the_new_member_can_be_welcomed_within_the_platforms_window(harness: Harness) -> None:
    caps = harness.connector.capabilities
    link = harness.connector.create_invite(harness.group(), "welcome-me", join_request=caps.join_requests)
    person = harness.person("Bob")
    harness.arrive(person, link)
    [arrival] = [u for u in arrivals(harness) if u.user_id == person]  # type: ignore[attr-defined]
    sent = harness.connector.send_direct(person, "欢迎 Bob", context=arrival.dm_context)  # type: ignore[attr-defined]
    assert isinstance(sent, SendResult) and sent.message_id
    assert harness.direct_messages(person) == ["欢迎 Bob"]


def test_check_group_says_what_to_fix(harness: Harness) -> None:
    assert harness.connector.check_group(harness.group()) == []
    problems = harness.connector.check_group(harness.broken_group())
    assert problems and all(isinstance(p, str) and len(p) > 10 for p in problems)
    # each fix also in Chinese (`group add` shows them in the terminal's language), the English left as it was
    assert all(isinstance(p, Fix) and CJK.search(fix_text(p, "zh")) and fix_text(p, "en") == p for p in problems)


def test_an_invite_carries_the_expiry_the_platform_enforces_or_none(harness: Harness) -> None:
    caps = harness.connector.capabilities
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
    link = harness.connector.create_invite(harness.group(), "expiring", join_request=caps.join_requests,
                                           expires_at=until)
    if caps.expiring_invites:
        assert link.expires_at == until
        assert hasattr(harness.connector, "invite_lifetime")  # the ExpiresInvites port
    else:
        assert link.expires_at is None  # qunflow never counts on an expiry the platform does not enforce


def test_a_platform_that_removes_members_can_take_out_one_who_arrived(harness: Harness) -> None:
    caps = harness.connector.capabilities
    if not caps.removes_members:  # tier moves then ask staff to (services/tier_moves.py)
        assert not hasattr(harness.connector, "remove_member")
        return
    group = harness.group()
    link = harness.connector.create_invite(group, "moving-on", join_request=caps.join_requests)
    person = harness.person("Carol")
    harness.arrive(person, link)
    if any(isinstance(u, JoinRequested) and u.user_id == person for u in harness.updates()):
        harness.connector.approve_join(group, person)
    harness.connector.remove_member(group, person)  # the RemovesMembers port
