"""The pitfall doctor: a workspace set up as the seed says has no finding; each pitfall built in is found."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.domain.doctor import SEVERITIES, costly_channels
from qunflow.services import catalog
from qunflow.services.doctor import diagnose
from qunflow.services.ingest import ingest_batch
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.services.users import add_user
from qunflow.store.tables import deliveries, groups, keyword_rule_sets, playbooks
from qunflow.workspace import Workspace

CHANNELS = ("ads", "notes", "expo")


def events_for(ws: Workspace, prefix: str, *, days_ago: int = 2, channel: str | None = "ads", order: bool = True,
               latency_ms: float = 800.0) -> list[dict]:  # type: ignore[type-arg]
    when = ws.clock() - timedelta(days=days_ago)
    out = [{"event_id": f"{prefix}-j", "type": "joined", "ts": when.isoformat() + "Z", "member_id": prefix,
            "channel": channel},
           {"event_id": f"{prefix}-w", "type": "welcome_sent", "ts": (when + timedelta(seconds=1)).isoformat() + "Z",
            "member_id": prefix, "properties": {"latency_ms": latency_ms}}]
    if order:
        out.append({"event_id": f"{prefix}-o", "type": "order", "ts": (when + timedelta(hours=5)).isoformat() + "Z",
                    "member_id": prefix, "amount": 50})
    return out


def set_up(ws: Workspace) -> None:
    """The seed's four weeks: channels with their own entry points and the welcome (1); groups in every tier
    and the content calendar (2); keyword rules, orders flowing, a console user (3); capped rewards with a
    quality reward (4)."""
    catalog.add_gate(ws, "seed")
    for tier, capacity in (("newbie", 400), ("interest", 300), ("core", 150), ("broadcast", 2000)):
        catalog.add_group(ws, f"{tier}-1", tier, capacity)
    for channel in CHANNELS:
        catalog.add_channel(ws, channel, "ad")
        catalog.add_entry_point(ws, f"{channel}-main", channel, gate="seed")
    apply_playbooks(ws, shipped_files())
    add_user(ws.engine, "lead", "owner", "a long enough password 1")
    result = ingest_batch(ws.engine, [e for i, c in enumerate(CHANNELS) for e in events_for(ws, f"m{i}", channel=c)])
    assert not result.errors, result.errors


def checks(ws: Workspace) -> dict[str, dict]:  # type: ignore[type-arg]
    return {f.check: f.as_json() for f in diagnose(ws)}


def test_a_workspace_set_up_as_the_seed_says_has_no_finding(workspace: Workspace) -> None:
    set_up(workspace)
    assert diagnose(workspace) == []


def program(tmp_path: Path, budget: str, quality: bool) -> Path:
    rules = "  - {id: one, invitees: 1, inviter: c20}\n"
    if quality:
        rules += "  - {id: first, qualify: first_order, inviter: c20}\n"
    path = tmp_path / "program.yaml"
    path.write_text(f"kind: rewards\nkey: s3_referral\n{budget}coupons:\n  c20: {{name: c, value: 20}}\n"
                    f"rules:\n{rules}")
    return path


def no_welcome(ws: Workspace, tmp_path: Path) -> None:
    with ws.engine.begin() as conn:
        conn.execute(update(playbooks).where(playbooks.c.key == "s1_welcome").values(enabled=False))


def slow_welcome(ws: Workspace, tmp_path: Path) -> None:
    ingest_batch(ws.engine, [e for i in range(5) for e in events_for(ws, f"slow{i}", latency_ms=240_000)])


def full_tier(ws: Workspace, tmp_path: Path) -> None:
    with ws.engine.begin() as conn:
        conn.execute(update(groups).where(groups.c.key == "core-1").values(member_count=140))


def gate_to_missing_tier(ws: Workspace, tmp_path: Path) -> None:
    catalog.add_entry_point(ws, "ads-vip", "ads", target_tier="core")
    catalog.archive_group(ws, "core-1")


def no_calendar(ws: Workspace, tmp_path: Path) -> None:
    with ws.engine.begin() as conn:
        conn.execute(update(playbooks).where(playbooks.c.key.like("calendar_%")).values(enabled=False))


def no_keywords(ws: Workspace, tmp_path: Path) -> None:
    with ws.engine.begin() as conn:
        conn.execute(update(keyword_rule_sets).values(enabled=False))


def marketing_without_consent(ws: Workspace, tmp_path: Path) -> None:
    with ws.engine.begin() as conn:  # what the outbox stores for a marketing DM that went out
        conn.execute(insert(deliveries).values(idempotency_key="pb:x:1", member_id="m0", platform="sandbox",
                                               target="u0", kind="playbook", status="sent", created_at=ws.clock(),
                                               sent_at=ws.clock(), private=True, marketing=True))


def costly(ws: Workspace, tmp_path: Path) -> None:
    # expo: 1 acquisition for ¥5,000 against ¥100 each for ads and notes
    spend = tmp_path / "spend.csv"
    day = (ws.clock() - timedelta(days=2)).date()
    spend.write_text(f"channel,day,amount\nads,{day},100\nnotes,{day},100\nexpo,{day},5000\n")
    assert CliRunner().invoke(app, ["spend", "import", str(spend), "--workspace", str(ws.home)]).exit_code == 0


def lopsided_experiment(ws: Workspace, tmp_path: Path) -> None:
    """700 exposures to A and 300 to B of an experiment known from events (planned: equal)."""
    when = (ws.clock() - timedelta(days=3)).isoformat() + "Z"
    rows = [{"event_id": f"x{i}", "type": "experiment_exposure", "ts": when, "member_id": f"e{i}",
             "experiment": "copy", "variant": "A" if i < 700 else "B"} for i in range(1000)]
    assert not ingest_batch(ws.engine, rows).errors


CASES: list[tuple[str, str, str, Callable[[Workspace, Path], object]]] = [
    ("P1", "channel_without_entry_point", "warning", lambda ws, _p: catalog.add_channel(ws, "wechat", "content")),
    ("P1", "joins_without_channel", "warning",
     lambda ws, _p: ingest_batch(ws.engine, events_for(ws, "lost", channel=None))),
    ("P1", "costly_channel", "info", costly),
    ("P2", "tier_without_group", "error", gate_to_missing_tier),
    ("P2", "tier_filling", "warning", full_tier),
    ("P3", "welcome_not_applied", "error", no_welcome),
    ("P3", "welcome_slow", "error", slow_welcome),
    ("P4", "tier_without_calendar", "warning", no_calendar),
    ("P5", "reward_without_budget_cap", "error", lambda ws, p: apply_playbooks(ws, [program(p, "", True)])),
    ("P5", "reward_before_order", "warning",
     lambda ws, p: apply_playbooks(ws, [program(p, "budget: {total: 500}\n", False)])),
    ("P6", "no_orders", "warning", None),  # type: ignore[list-item]  # built by its own test below
    ("P7", "no_keyword_rules", "warning", no_keywords),
    ("P8", "marketing_without_consent", "error", marketing_without_consent),
    ("P6", "experiment_srm", "error", lopsided_experiment),
]


@pytest.mark.parametrize(("pitfall", "check", "severity", "build"), [c for c in CASES if c[3] is not None],
                         ids=[c[1] for c in CASES if c[3] is not None])
def test_each_pitfall_is_found_on_a_workspace_built_to_have_it(workspace: Workspace, tmp_path: Path, pitfall: str,
                                                              check: str, severity: str,
                                                              build: Callable[[Workspace, Path], object]) -> None:
    set_up(workspace)
    build(workspace, tmp_path)
    found = checks(workspace)
    assert check in found, found
    assert found[check]["pitfall"] == pitfall and found[check]["severity"] == severity
    assert found[check]["fix"].startswith(("qunflow ", "/console", "add "))
    assert set(found) == {check}, found  # the others stay quiet


def test_no_orders_and_no_console_user_on_a_workspace_without_them(workspace: Workspace) -> None:
    catalog.add_gate(workspace, "seed")
    for tier in ("newbie", "interest", "core", "broadcast"):
        catalog.add_group(workspace, f"{tier}-1", tier, 300)
    catalog.add_channel(workspace, "ads", "ad")
    catalog.add_entry_point(workspace, "ads-main", "ads", gate="seed")
    apply_playbooks(workspace, shipped_files())
    ingest_batch(workspace.engine, events_for(workspace, "m1", days_ago=20, order=True)
                 + events_for(workspace, "m2", days_ago=3, order=False))
    found = checks(workspace)
    assert set(found) == {"no_orders", "no_console_user"}
    assert (found["no_orders"]["pitfall"], found["no_console_user"]["pitfall"]) == ("P6", "P8")


def test_an_empty_workspace_lists_the_first_steps_in_the_seeds_order(workspace: Workspace) -> None:
    findings = diagnose(workspace)
    assert [f.check for f in findings] == ["welcome_not_applied", "no_keyword_rules", "no_console_user"]
    assert [f.week for f in findings] == sorted(f.week for f in findings)


def test_the_cli_json_contract_and_table(workspace: Workspace) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["doctor", "--format", "json", "--workspace", str(workspace.home)])
    assert result.exit_code == 0, result.output
    findings = json.loads(result.stdout)["findings"]
    assert findings and all({"pitfall", "severity", "message", "fix"} <= set(f) for f in findings)
    assert all(f["severity"] in SEVERITIES and f["pitfall"] in {f"P{i}" for i in range(1, 9)} for f in findings)
    table = runner.invoke(app, ["doctor", "--workspace", str(workspace.home)]).stdout
    assert "qunflow apply --shipped" in table
    bad = runner.invoke(app, ["doctor", "--format", "xml", "--workspace", str(workspace.home)])
    assert bad.exit_code == 2 and "--format" in bad.stderr


def test_organic_channels_are_no_yardstick_for_a_costly_one() -> None:
    """Organic channels cost 0 per acquisition (nothing spent): compared with them every paid one looks costly, or
    their zeros pull the median to 0 and hide a costly one. Only paid channels are compared."""
    from qunflow.services.doctor import _costly_of

    paid = [{"channel": name, "spend": cost * 20, "converted": 20, "cost_per_acquisition": cost}
            for name, cost in (("a", 100), ("b", 120), ("c", 500))]
    organic = [{"channel": f"free{i}", "spend": 0, "converted": 5, "cost_per_acquisition": 0.0} for i in range(3)]
    assert [f.params["channel"] for f in _costly_of(paid + organic)] == ["c"]
    assert _costly_of(paid[:2] + organic) == []


def test_costly_channels_compare_with_the_median_of_the_others() -> None:
    many = 100  # acquisitions each: chance hardly moves a CPA
    assert costly_channels({"a": (100 * many, many), "b": (120 * many, many), "c": (500 * many, many)}) \
        == [("c", 500, 110)]
    assert costly_channels({"a": (100 * many, many), "b": (120 * many, many), "c": (300 * many, many)}) == []
    assert costly_channels({"a": (100, 1), "c": (5000, 1)}) == []  # one other channel is no yardstick


def test_a_few_acquisitions_more_or_less_are_chance_not_a_costly_channel() -> None:
    """Judged as if it had CHANCE_SLACK more acquisitions: 3.3x the median on one acquisition (the demo's
    ten days, where every channel has one to four) is no alarm; the same CPA over 40 acquisitions is, and so
    is ¥5,000 for one acquisition against ¥100 elsewhere."""
    others = {"a": (2_000.0, 4), "b": (1_700.0, 2)}  # CPA 500 and 850: median 675
    assert costly_channels({**others, "c": (2_250.0, 1)}) == []
    assert costly_channels({**others, "c": (90_000.0, 40)}) == [("c", 2_250.0, 675.0)]
    assert [c for c, _cpa, _median in costly_channels({"a": (100.0, 1), "b": (100.0, 1), "c": (5_000.0, 1)})] \
        == ["c"]


def test_the_checks_run_on_postgresql_too(pg_workspace: Workspace, tmp_path: Path) -> None:
    set_up(pg_workspace)
    assert diagnose(pg_workspace) == []
    marketing_without_consent(pg_workspace, tmp_path)
    no_calendar(pg_workspace, tmp_path)
    slow_welcome(pg_workspace, tmp_path)
    assert set(checks(pg_workspace)) == {"marketing_without_consent", "tier_without_calendar", "welcome_slow"}
