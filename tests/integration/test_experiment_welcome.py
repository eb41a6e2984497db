"""`kind: experiment` on the S1 welcome DM: applied and versioned, sticky variants, one exposure per member,
results against the document's weights, stop without re-bucketing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from qunflow.domain.experiments import assign
from qunflow.errors import InvalidInput
from qunflow.services.experiments import experiment_results
from qunflow.services.playbooks import apply_playbooks
from qunflow.store.tables import events
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import setup_community
from tests.integration.test_welcome_playbook import NEWBIE_FORM, dm_text, join, sent_event, write

DOC = """kind: experiment
key: welcome-copy
title: {zh: 欢迎语 A/B, en: Welcome copy A/B}
varies: welcome_dm
variants:
  - {key: control, weight: 1}
  - key: short
    weight: 1
    dm: {zh: "{{ name }},欢迎!先签到:{{ profile_link }}", en: "{{ name }}, welcome! Check in first: {{ profile_link }}"}
primary_metric: conversion_rate
guardrails: [retention_d7]
"""


def exposures(ws: Workspace) -> list[tuple[str, str, str]]:
    with ws.engine.connect() as conn:
        return sorted((r.member_id, r.experiment, r.variant) for r in conn.execute(
            select(events.c.member_id, events.c.experiment, events.c.variant)
            .where(events.c.type == "experiment_exposure")))


def test_members_get_their_sticky_variant_and_one_exposure(any_workspace: Workspace, tmp_path: Path) -> None:
    ws = any_workspace
    setup_community(ws)
    [change] = apply_playbooks(ws, [write(tmp_path, "xp.yaml", DOC)])
    assert (change.kind, change.key, change.status, change.version) == ("experiment", "welcome-copy", "new", 1)
    assert [c.status for c in apply_playbooks(ws, [write(tmp_path, "xp.yaml", DOC)])] == ["unchanged"]
    plan = [("control", 1.0), ("short", 1.0)]
    seen = {}
    for i in range(30):  # member ids are random: join until both arms are seen (all in one: 2 in 2**29)
        if len(seen) >= 4 and set(seen.values()) == {"control", "short"}:
            break
        member = join(ws, f"v{i}", f"u{i}", NEWBIE_FORM)
        arm = assign("welcome-copy", member, plan)
        seen[member] = arm
        text = dm_text(ws, f"u{i}")
        assert ("先签到" in text) == (arm == "short"), (arm, text)
        props = sent_event(ws, member)
        assert (props["experiment"], props["experiment_variant"]) == ("welcome-copy", arm)
    assert set(seen.values()) == {"control", "short"}
    assert exposures(ws) == sorted((m, "welcome-copy", v) for m, v in seen.items())
    report = experiment_results(ws, "welcome-copy")
    assert report["control"] == "control" and [v["variant"] for v in report["variants"]] == ["control", "short"]
    assert [v["members"] for v in report["variants"]] == [list(seen.values()).count(a) for a in ("control", "short")]
    assert report["document"] is True and report["primary_metric"] == "conversion_rate"
    assert report["verdict"] in ("not_enough_data", "srm")


def test_shipping_a_winner_gives_everyone_its_text_and_stops_exposures(workspace: Workspace,
                                                                       tmp_path: Path) -> None:
    setup_community(workspace)
    apply_playbooks(workspace, [write(tmp_path, "xp.yaml", DOC + "shipped: short\n")])
    member = join(workspace, "v1", "u1", NEWBIE_FORM)
    assert "先签到" in dm_text(workspace, "u1")
    assert exposures(workspace) == []
    assert sent_event(workspace, member)["experiment_variant"] == "short"


@pytest.mark.parametrize(("text", "message"), [
    (DOC.replace("  - {key: control, weight: 1}\n", ""), "at least 2"),
    (DOC.replace("primary_metric: conversion_rate", "primary_metric: happiness"), "not a METRICS.md metric"),
    (DOC + "shipped: long\n", "shipped names no variant"),
    (DOC.replace("{{ profile_link }}\"}", "{{ nope }}\"}"), "nope"),
    (DOC.replace("{key: control, weight: 1}", "{key: control, weight: 0}"), "greater than 0"),
])
def test_a_bad_document_is_refused_with_its_line(workspace: Workspace, tmp_path: Path, text: str,
                                                 message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        apply_playbooks(workspace, [write(tmp_path, "bad.yaml", text)])
    with pytest.raises(Exception, match="no experiment"):
        experiment_results(workspace, "welcome-copy")


def test_the_demo_runs_the_welcome_experiment_and_reports_it(workspace: Workspace) -> None:
    from qunflow.sim.demo import DEMO_EXPERIMENT_KEY, Simulation

    simulation = Simulation(workspace, days=7, seed=7, automate=True)
    simulation.run(lambda _day: None)
    report = experiment_results(workspace, DEMO_EXPERIMENT_KEY, as_of=simulation.end)
    assert [v["variant"] for v in report["variants"]] == ["control", "checkin_first"]
    with workspace.engine.connect() as conn:
        exposed = conn.execute(select(events.c.member_id, events.c.variant).where(
            events.c.type == "experiment_exposure", events.c.experiment == DEMO_EXPERIMENT_KEY)).all()
    assert sum(v["members"] for v in report["variants"]) == len(exposed) > 20
    assert all(assign(DEMO_EXPERIMENT_KEY, m, [("control", 1.0), ("checkin_first", 1.0)]) == v for m, v in exposed)
    assert report["verdict"] == "not_enough_data"  # 7 days: nobody's 30-day window has closed
