"""Day-1 tasks are done by doing them (issue 12): profile fields saved, a ledger coupon claimed, a vote cast.
M9 counts `task_completed`, so a page view or a bare click must never record one."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from qunflow.errors import InvalidInput, NotFound
from qunflow.services import catalog
from qunflow.services.coupons import issue_manual
from qunflow.services.join import entry_invite, member_of_user, submit_gate
from qunflow.services.playbooks import apply_playbooks
from qunflow.services.privacy import unseal
from qunflow.services.tasks import (
    ProfileErrors,
    cast_vote,
    claim_coupon,
    poll_results,
    save_profile,
    task_page,
)
from qunflow.store.consents import has_consent
from qunflow.store.tables import coupons, events, members, poll_votes
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, invite_token, setup_community

WELCOME_WITH_POLL = """kind: welcome
dm: {zh: "欢迎 {{ name }} {{ profile_link }}", en: "Welcome {{ name }} {{ profile_link }}"}
menu: {zh: "欢迎 {{ names }}", en: "Welcome {{ names }}"}
day1_tasks:
  - {key: profile, title: {zh: 填写资料, en: Fill in your profile}}
  - {key: claim_coupon, title: {zh: 领取新人券, en: Claim the coupon},
     coupon: {name: newcomer, value: 15, valid_days: 3}}
  - key: vote
    title: {zh: 投票, en: Vote}
    poll:
      question: {zh: 下次分享选哪个主题?, en: Which topic next?}
      options:
        - {key: ads, label: {zh: 投放, en: Ads}}
        - {key: seo, label: {zh: 搜索优化, en: SEO}}
"""


def completed(ws: Workspace, member_id: str) -> list[str]:
    with ws.engine.connect() as conn:
        rows = conn.execute(select(events.c.properties).where(
            events.c.type == "task_completed", events.c.member_id == member_id)).scalars().all()
    return sorted(p["task"] for p in rows)


def gated_member(ws: Workspace, user: str = "u1") -> str:
    ticket = submit_gate(ws, "xhs-note-1", f"v-{user}", FORM)
    assert ws.sandbox.join(user, "Li Lei", invite_token(ticket.invite_url)) == "joined"
    return ticket.member_id


def walk_in_member(ws: Workspace, user: str = "w1") -> str:
    """A join through an entry point without a gate: no profile yet, no profile consent."""
    catalog.add_entry_point(ws, "walk-in", "xhs", target_tier="newbie")
    _entry, _group, link = entry_invite(ws, "walk-in")
    assert ws.sandbox.join(user, "Walker", invite_token(link.url)) in ("joined", "requested")
    with ws.engine.connect() as conn:
        member_id = member_of_user(conn, "sandbox", user)
    assert member_id is not None
    return member_id


def test_profile_task_prefills_the_gate_answers_and_completes_only_when_saved(any_workspace: Workspace) -> None:
    ws = any_workspace
    setup_community(ws)
    member_id = walk_in_member(ws)
    page = task_page(ws, member_id, "profile")
    assert page.kind == "profile" and page.assigned and not page.done and page.needs_consent
    assert [f.key for f in page.fields] == ["name", "need", "interest"]
    assert completed(ws, member_id) == []  # looking at the page completes nothing

    with pytest.raises(ProfileErrors) as refused:  # no consent: nothing saved
        save_profile(ws, member_id, {"name": "Han Mei", "need": "leads", "interest": "seo"})
    assert set(refused.value.errors) == {"consent"}
    with pytest.raises(ProfileErrors) as missing:
        save_profile(ws, member_id, {"name": "Han Mei", "consent": "on"})
    assert set(missing.value.errors) == {"need", "interest"}
    assert completed(ws, member_id) == []

    assert save_profile(ws, member_id, {"name": "Han Mei", "need": "leads", "interest": "seo", "consent": "on"})
    assert completed(ws, member_id) == ["profile"]
    with ws.engine.connect() as conn:
        blob = conn.execute(select(members.c.profile).where(members.c.id == member_id)).scalar_one()
        assert has_consent(conn, member_id, "profile")
    assert b"Han Mei" not in blob and unseal(ws, blob)["need"] == "leads"  # encrypted at rest
    again = task_page(ws, member_id, "profile")
    assert again.done and again.values["name"] == "Han Mei" and not again.needs_consent
    assert not save_profile(ws, member_id, {"name": "Han", "need": "x", "interest": "y"})  # done once
    assert completed(ws, member_id) == ["profile"]


def test_gate_answers_prefill_the_profile(workspace: Workspace) -> None:
    setup_community(workspace)
    member_id = gated_member(workspace)
    page = task_page(workspace, member_id, "profile")
    assert page.values == {"name": "Li Lei", "need": "more leads", "interest": "ads"} and not page.needs_consent
    assert not page.assigned  # the gate had the name: the task was not given, so saving completes nothing
    assert not save_profile(workspace, member_id, {"name": "Li Lei", "need": "a course", "interest": "ads"})
    assert completed(workspace, member_id) == []


def test_coupon_task_shows_the_ledger_coupon_and_completes_on_claim(any_workspace: Workspace) -> None:
    ws = any_workspace
    setup_community(ws)
    member_id = gated_member(ws)
    assert task_page(ws, member_id, "claim_coupon").coupon is None
    with pytest.raises(NotFound):  # nothing issued yet: nothing to claim, nothing completed
        claim_coupon(ws, member_id)
    assert completed(ws, member_id) == []

    issued, _ = issue_manual(ws, member_id=member_id, name="welcome", value=Decimal(20), valid_days=7,
                             cause="welcome-test", actor="test")
    page = task_page(ws, member_id, "claim_coupon")
    assert page.coupon is not None and page.coupon.code == issued.code and not page.done
    claimed = claim_coupon(ws, member_id)
    assert claimed.code == issued.code and claimed.status == "sent"  # moved along the ledger
    assert completed(ws, member_id) == ["claim_coupon"]
    assert task_page(ws, member_id, "claim_coupon").coupon.code == issued.code  # type: ignore[union-attr]
    assert claim_coupon(ws, member_id).code == issued.code and completed(ws, member_id) == ["claim_coupon"]


def test_vote_task_comes_from_the_poll_and_stores_one_answer(any_workspace: Workspace, tmp_path: Path) -> None:
    ws = any_workspace
    setup_community(ws)
    path = tmp_path / "welcome.yaml"
    path.write_text(WELCOME_WITH_POLL, encoding="utf-8")
    apply_playbooks(ws, [path])
    member_id = gated_member(ws)
    page = task_page(ws, member_id, "vote")
    assert page.kind == "vote" and page.assigned and page.poll is not None and page.vote is None
    with pytest.raises(InvalidInput):
        cast_vote(ws, member_id, "vote", "tiktok")
    assert completed(ws, member_id) == []
    assert cast_vote(ws, member_id, "vote", "seo")
    assert not cast_vote(ws, member_id, "vote", "ads")  # one answer per member
    assert task_page(ws, member_id, "vote").vote == "seo" and completed(ws, member_id) == ["vote"]
    assert poll_results(ws, "vote") == {"ads": 0, "seo": 1}
    with ws.engine.connect() as conn:
        assert conn.execute(select(poll_votes.c.option).where(poll_votes.c.member_id == member_id)).scalar() == "seo"
        vote = conn.execute(select(events).where(events.c.type == "poll_vote")).one()
    assert vote.properties == {"poll": "vote", "option": "seo"}

    # the claim task with `coupon:` issues one through the ledger when none is open
    claimed = claim_coupon(ws, member_id)
    assert (claimed.name, claimed.value) == ("newcomer", Decimal(15))
    with ws.engine.connect() as conn:
        assert conn.execute(select(coupons.c.cause).where(coupons.c.code == claimed.code)).scalar() == \
            f"task:{member_id}:claim_coupon"
    assert completed(ws, member_id) == ["claim_coupon", "vote"]


def test_unknown_task_is_not_found(workspace: Workspace) -> None:
    setup_community(workspace)
    member_id = gated_member(workspace)
    with pytest.raises(NotFound):
        task_page(workspace, member_id, "no_such_task")


def test_m9_counts_members_who_did_a_task_not_those_who_opened_one(workspace: Workspace) -> None:
    from datetime import date, datetime

    from qunflow.services.metrics import metrics_report

    ws = workspace
    ws.clock = lambda: datetime(2026, 11, 2, 4, 0)  # noon in Shanghai
    setup_community(ws)
    walker = walk_in_member(ws)
    claimer = gated_member(ws, "u1")
    looker = gated_member(ws, "u2")
    save_profile(ws, walker, {"name": "Han Mei", "need": "leads", "interest": "seo", "consent": "on"})
    issue_manual(ws, member_id=claimer, name="welcome", value=Decimal(20), valid_days=7, cause="c1", actor="test")
    issue_manual(ws, member_id=looker, name="welcome", value=Decimal(20), valid_days=7, cause="c2", actor="test")
    claim_coupon(ws, claimer)
    task_page(ws, looker, "claim_coupon")  # seen, not claimed
    task_page(ws, looker, "profile")
    total = metrics_report(ws, start=date(2026, 11, 2), end=date(2026, 11, 2), as_of=date(2026, 11, 3))["total"]
    assert total["task_completion_d1"] == pytest.approx(2 / 3)
