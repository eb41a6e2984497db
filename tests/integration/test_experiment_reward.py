"""`kind: experiment` on a reward rule (issue 14, "what varies: a reward rule"): each inviter earns the face
value of their sticky variant, paid as that coupon after the hold, exposed once at the reward decision;
roles the experiment does not vary are untouched; a shipped winner pays everyone without exposures; an
experiment naming a program, rule, role or playbook step that does not exist is refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from qunflow.domain.experiments import assign
from qunflow.errors import InvalidInput
from qunflow.services.experiments import experiment_results
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.services.rewards import rewards_tick
from qunflow.store.tables import coupons, events, rewards
from qunflow.workspace import Workspace
from tests.integration.test_rewards import PROGRAM, Clock, joined, record, stamp
from tests.integration.test_welcome_playbook import write

KEY = "invite-40"
DOC = """kind: experiment
key: invite-40
varies: {reward_program: spring, rule: invite_1}
variants:
  - {key: control, weight: 1}
  - {key: forty, weight: 1, reward: {inviter: 40}}
guardrails: [invites_per_member, k_factor]
"""
PLAN = [("control", 1.0), ("forty", 1.0)]
INVITERS = [f"a{i}" for i in range(24)]


@pytest.fixture
def world(workspace: Workspace) -> tuple[Workspace, Clock]:
    clock = Clock(datetime(2026, 3, 2, 2, 0))
    workspace.clock = clock
    return workspace, clock


def apply(ws: Workspace, tmp_path: Path, experiment: str) -> None:
    program = PROGRAM.replace("budget: {per_day: 200}", "budget: {per_day: 100000}")
    apply_playbooks(ws, [write(tmp_path, "rewards.yaml", program), write(tmp_path, "xp.yaml", experiment)])


def invite_all(ws: Workspace, clock: Clock) -> None:
    for inviter in INVITERS:
        joined(ws, clock, f"{inviter}-friend", inviter)
        record(ws, {"event_id": f"msg-{inviter}", "type": "message", "ts": stamp(clock.now),
                    "member_id": f"{inviter}-friend"})
    rewards_tick(ws)


def exposures(ws: Workspace) -> list[tuple[str, str, str]]:
    with ws.engine.connect() as conn:
        return sorted((r.event_id, r.member_id, r.variant) for r in conn.execute(
            select(events.c.event_id, events.c.member_id, events.c.variant)
            .where(events.c.type == "experiment_exposure")))


def values(ws: Workspace) -> dict[tuple[str, str], Decimal]:
    with ws.engine.connect() as conn:
        return {(r.member_id, r.role): Decimal(r.value) for r in conn.execute(select(rewards))}


def test_each_inviter_earns_their_variants_value_with_one_exposure(world: tuple[Workspace, Clock],
                                                                   tmp_path: Path) -> None:
    ws, clock = world
    apply(ws, tmp_path, DOC)
    invite_all(ws, clock)
    arms = {a: assign(KEY, a, PLAN) for a in INVITERS}
    assert set(arms.values()) == {"control", "forty"}  # 24 fixed ids: both arms (checked, not by chance)
    got = values(ws)
    for inviter, arm in arms.items():
        assert got[(inviter, "inviter")] == (Decimal(40) if arm == "forty" else Decimal(20)), inviter
        assert got[(f"{inviter}-friend", "invitee")] == Decimal(10)  # the invitee's role is not varied
    assert exposures(ws) == sorted((f"xp-{KEY}-{a}", a, arm) for a, arm in arms.items())
    joined(ws, clock, f"{INVITERS[0]}-friend", INVITERS[0])  # the same join again: no new reward or exposure
    rewards_tick(ws)
    assert len(exposures(ws)) == len(INVITERS) and len(values(ws)) == 2 * len(INVITERS)

    clock.now += timedelta(days=8)
    rewards_tick(ws)
    with ws.engine.connect() as conn:
        issued = conn.execute(select(coupons).where(coupons.c.name == "邀请券")).all()
    paid = {(c.member_id, Decimal(c.value)) for c in issued}
    assert paid == {(a, Decimal(40) if arm == "forty" else Decimal(20)) for a, arm in arms.items()}

    report = experiment_results(ws, KEY, as_of=clock.now.date())
    assert report["varies"] == {"reward_program": "spring", "rule": "invite_1"}
    assert sum(v["members"] for v in report["variants"]) == len(INVITERS)
    assert [g["metric"] for g in report["guardrails"]] == ["invites_per_member", "k_factor"]


def test_a_shipped_reward_pays_everyone_the_winner_without_exposures(world: tuple[Workspace, Clock],
                                                                     tmp_path: Path) -> None:
    ws, clock = world
    apply(ws, tmp_path, DOC + "shipped: forty\n")
    invite_all(ws, clock)
    assert {v for (_, role), v in values(ws).items() if role == "inviter"} == {Decimal(40)}
    assert exposures(ws) == []


@pytest.mark.parametrize(("text", "message"), [
    (DOC.replace("rule: invite_1", "rule: invite_9"), "reward program 'spring' has no rule 'invite_9'"),
    (DOC.replace("reward_program: spring", "reward_program: autumn"), "no reward program 'autumn'"),
    (DOC.replace("{inviter: 40}", "{team: 40}"), "rule 'invite_1' rewards no team"),
    (DOC.replace("{inviter: 40}", "{inviter: 0}"), "greater than 0"),
    (DOC.replace("reward: {inviter: 40}", "text: {zh: 甲, en: A}"), "give `reward`, not `text`"),
    (DOC.replace("{reward_program: spring, rule: invite_1}", "{playbook: s2_warmup, step: day5}")
     .replace("reward: {inviter: 40}", "text: {zh: 甲, en: A}"), "'s2_warmup' has no send_dm step with id or template"),
    (DOC.replace("{reward_program: spring, rule: invite_1}", "{playbook: s2_warmup, step: day0}")
     .replace("reward: {inviter: 40}", "text: {zh: 甲, en: A}"), "no send_dm step"),  # day0 issues a coupon
])
def test_an_experiment_naming_what_does_not_exist_is_refused(world: tuple[Workspace, Clock], tmp_path: Path,
                                                             text: str, message: str) -> None:
    ws, _clock = world
    apply_playbooks(ws, shipped_files())
    with pytest.raises(InvalidInput, match=message):
        apply(ws, tmp_path, text)
    with ws.engine.connect() as conn:
        assert conn.execute(select(rewards)).first() is None
    with pytest.raises(Exception, match="no experiment"):
        experiment_results(ws, KEY)
