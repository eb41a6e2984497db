"""Guardrail metrics of an experiment (issue 14): per variant over the exposed members, anchored at the first
exposure, against a reference computed by hand on a small event log (and p-values against scipy); a
guardrail that got significantly worse is flagged in the JSON, the conclusion (zh/en), the CLI and the
console page."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from scipy import stats
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services.experiments import conclusion, experiment_results
from qunflow.services.ingest import ingest_batch
from qunflow.services.playbooks import apply_playbooks
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer
from tests.integration.test_welcome_playbook import write

KEY = "xp-g"
AS_OF = date(2026, 6, 10)
GUARDS = ["retention_d1", "retention_d7", "task_completion_d1", "active_ratio_7d", "revenue_per_member",
          "invites_per_member", "k_factor"]
DOC = f"""kind: experiment
key: {KEY}
varies: welcome_dm
variants:
  - {{key: control, weight: 1}}
  - {{key: treat, weight: 1, dm: {{zh: "你好 {{{{ name }}}}", en: "Hi {{{{ name }}}}"}}}}
guardrails: [{", ".join(GUARDS)}]
"""

# (member, type, local time, extra); exposures name the variant. See the comments for what counts.
LOG: list[tuple[str, str, str, dict[str, Any]]] = [
    # control
    ("c1", "joined", "2026-03-31T10:00", {}),
    ("c1", "experiment_exposure", "2026-04-01T10:00", {"variant": "control"}),
    ("c1", "task_completed", "2026-04-01T12:00", {}),       # Day-1 task
    ("c1", "message", "2026-04-02T10:00", {}),              # D1
    ("c1", "invite_sent", "2026-04-03T10:00", {}),
    ("c1", "invite_sent", "2026-04-03T11:00", {}),
    ("c1", "message", "2026-04-08T10:00", {}),              # D7
    ("c1", "order", "2026-04-10T10:00", {"amount": 100}),   # within 30 days
    ("c1", "message", "2026-06-08T10:00", {}),              # active in the last 7 days
    ("r1", "joined", "2026-04-05T10:00", {"referrer_id": "c1"}),  # c1's referral: K-factor
    ("c2", "joined", "2026-04-05T09:00", {}),
    ("c2", "experiment_exposure", "2026-04-05T10:00", {"variant": "control"}),
    ("c2", "message", "2026-04-06T10:00", {}),              # D1
    ("c2", "left", "2026-05-01T10:00", {}),                 # not a current member: out of the active ratio
    ("c2", "order", "2026-05-20T10:00", {"amount": 50}),    # 45 days after: not counted
    ("c3", "joined", "2026-06-05T09:00", {}),
    ("c3", "experiment_exposure", "2026-06-05T10:00", {"variant": "control"}),  # not mature, no D7 yet
    ("c3", "task_completed", "2026-06-06T10:00", {}),       # Day-1 task (the next day) and D1
    ("c4", "message", "2026-04-09T10:00", {}),              # before the exposure: never counts
    ("c4", "experiment_exposure", "2026-04-10T10:00", {"variant": "control"}),  # never joined
    ("c4", "invite_sent", "2026-04-11T10:00", {}),
    ("c4", "experiment_exposure", "2026-04-12T10:00", {"variant": "treat"}),  # a second exposure: ignored
    # treat
    ("t1", "joined", "2026-03-31T10:00", {}),
    ("t1", "experiment_exposure", "2026-04-01T10:00", {"variant": "treat"}),
    ("t1", "order", "2026-04-02T10:00", {"amount": 30}),    # D1 (an order is engagement) and revenue
    ("t1", "invite_sent", "2026-04-02T11:00", {}),
    ("t1", "message", "2026-04-08T10:00", {}),              # D7
    ("t1", "order", "2026-04-20T10:00", {"amount": 20}),
    ("t1", "message", "2026-06-01T10:00", {}),              # outside the last 7 days
    ("t2", "joined", "2026-04-03T09:00", {}),
    ("t2", "task_completed", "2026-04-03T09:30", {}),       # before the exposure: not a Day-1 task
    ("t2", "experiment_exposure", "2026-04-03T10:00", {"variant": "treat"}),
    ("t2", "message", "2026-04-10T10:00", {}),              # D7
    ("t2", "order", "2026-05-10T10:00", {"amount": 80}),    # 37 days after: not counted
    ("t2", "message", "2026-06-09T10:00", {}),              # active
    ("t3", "joined", "2026-06-09T09:00", {}),
    ("t3", "experiment_exposure", "2026-06-09T10:00", {"variant": "treat"}),
    ("t3", "task_completed", "2026-06-10T10:00", {}),       # Day-1 task and D1 (on the as-of day)
    ("x1", "experiment_exposure", "2026-06-11T10:00", {"variant": "treat"}),  # after the as-of day
]

# By hand, from the comments above: (n, x) for a rate, (n, sum, sum of squares) for a mean.
EXPECTED = {
    "retention_d1": {"control": (4, 3), "treat": (3, 2)},
    "retention_d7": {"control": (3, 1), "treat": (2, 2)},
    "task_completion_d1": {"control": (4, 2), "treat": (3, 1)},
    "active_ratio_7d": {"control": (2, 2), "treat": (3, 2)},
    "revenue_per_member": {"control": (3, 100.0, 10000.0), "treat": (2, 50.0, 2500.0)},
    "invites_per_member": {"control": (3, 3.0, 5.0), "treat": (2, 1.0, 1.0)},
    "k_factor": {"control": (3, 1.0, 1.0), "treat": (2, 0.0, 0.0)},
}


def events() -> list[dict[str, Any]]:
    out = []
    for i, (member, kind, at, extra) in enumerate(LOG):
        event = {"event_id": f"g{i}", "type": kind, "ts": f"{at}:00+08:00", "member_id": member}
        if kind == "experiment_exposure":
            event["experiment"] = KEY
        out.append({**event, **extra})
    return out


def reference(metric: str) -> dict[str, Any]:
    c, v = EXPECTED[metric]["control"], EXPECTED[metric]["treat"]
    if len(c) == 2:
        p0, p1 = c[1] / c[0], v[1] / v[0]
        pooled = (c[1] + v[1]) / (c[0] + v[0])
        se_pooled = (pooled * (1 - pooled) * (1 / c[0] + 1 / v[0])) ** 0.5
        p_value = 2 * stats.norm.sf(abs(p1 - p0) / se_pooled) if se_pooled else None
        return {"value": p1, "control_value": p0, "diff": p1 - p0, "p_value": p_value}
    mean0, mean1 = c[1] / c[0], v[1] / v[0]
    sd0 = ((c[2] - c[0] * mean0 ** 2) / (c[0] - 1)) ** 0.5
    sd1 = ((v[2] - v[0] * mean1 ** 2) / (v[0] - 1)) ** 0.5
    p_value = stats.ttest_ind_from_stats(mean1, sd1, v[0], mean0, sd0, c[0], equal_var=False).pvalue \
        if sd0 or sd1 else None
    return {"value": mean1, "control_value": mean0, "diff": mean1 - mean0, "p_value": p_value}


@pytest.fixture
def loaded(any_workspace: Workspace, tmp_path: Path) -> Workspace:
    apply_playbooks(any_workspace, [write(tmp_path, "xp.yaml", DOC)])
    assert not ingest_batch(any_workspace.engine, events()).errors
    return any_workspace


def test_guardrails_equal_the_hand_computed_reference(loaded: Workspace) -> None:
    report = experiment_results(loaded, KEY, as_of=AS_OF)
    assert [v["members"] for v in report["variants"]] == [4, 3]
    assert report["guardrail_metrics"] == GUARDS
    got = {g["metric"]: g for g in report["guardrails"]}
    assert list(got) == GUARDS and all(g["variant"] == "treat" for g in report["guardrails"])
    for metric in GUARDS:
        row, want = got[metric], reference(metric)
        assert (row["control_members"], row["members"]) == (EXPECTED[metric]["control"][0],
                                                           EXPECTED[metric]["treat"][0]), metric
        for key in ("value", "control_value", "diff"):
            assert row[key] == pytest.approx(want[key], abs=1e-9), (metric, key)
        if want["p_value"] is None:
            assert row["p_value"] is None, metric
        else:
            assert row["p_value"] == pytest.approx(want["p_value"], abs=1e-9), metric
        assert row["ci_low"] <= row["diff"] <= row["ci_high"], metric
        assert row["worse"] is False, metric  # far too few members for anything to be significant
    assert report["guardrails_worse"] is False


def worse_log(n: int = 120) -> list[dict[str, Any]]:
    """D1 retention 80% in control and 40% in the variant: significantly worse."""
    out = []
    for arm, share in (("control", 0.8), ("treat", 0.4)):
        for i in range(n):
            member = f"{arm}{i}"
            out.append({"event_id": f"x-{member}", "type": "experiment_exposure", "member_id": member,
                        "experiment": KEY, "variant": arm, "ts": "2026-05-01T10:00:00+08:00"})
            if i < share * n:
                out.append({"event_id": f"m-{member}", "type": "message", "member_id": member,
                            "ts": "2026-05-02T10:00:00+08:00"})
    return out


def test_a_significantly_worse_guardrail_is_flagged_everywhere(workspace: Workspace, tmp_path: Path) -> None:
    apply_playbooks(workspace, [write(tmp_path, "xp.yaml", DOC)])
    assert not ingest_batch(workspace.engine, worse_log()).errors
    report = experiment_results(workspace, KEY, as_of=AS_OF)
    d1 = next(g for g in report["guardrails"] if g["metric"] == "retention_d1")
    assert (d1["control_value"], d1["value"], d1["worse"]) == (pytest.approx(0.8), pytest.approx(0.4), True)
    assert d1["p_value"] < 0.05 and d1["ci_high"] < 0
    assert report["guardrails_worse"] is True
    assert [g["metric"] for g in report["guardrails"] if g["worse"]] == ["retention_d1"]
    assert "retention_d1" in conclusion(report, "en") and "Guardrail warning" in conclusion(report, "en")
    assert "护栏指标警告" in conclusion(report, "zh")

    result = CliRunner().invoke(app, ["experiments", "results", KEY, "--as-of", AS_OF.isoformat(),
                                      "--workspace", str(workspace.home)])
    assert result.exit_code == 0, result.output
    assert "Guardrails" in result.output and "WORSE" in result.output
    result = CliRunner().invoke(app, ["experiments", "results", KEY, "--as-of", AS_OF.isoformat(),
                                      "--format", "json", "--workspace", str(workspace.home)])
    assert json.loads(result.stdout)["guardrails"] == json.loads(json.dumps(report["guardrails"]))

    with LiveServer(workspace) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        log_in(http, workspace, "ana", "analyst")
        page = http.get(f"/console/experiments/{KEY}", params={"lang": "en", "as_of": AS_OF.isoformat()})
        assert page.status_code == 200 and 'id="guardrails"' in page.text
        assert "significantly worse" in page.text and "Guardrail warning" in page.text
        chinese = http.get(f"/console/experiments/{KEY}", params={"lang": "zh", "as_of": AS_OF.isoformat()})
        assert "护栏指标" in chinese.text and "显著变差" in chinese.text


def test_embedded_clickhouse_gives_the_same_guardrails(tmp_path: Path) -> None:
    pytest.importorskip("chdb", reason="the ClickHouse engine test needs chdb: pip install -e '.[test]'")
    from qunflow.workspace import init_workspace

    outs = []
    for name in ("duckdb", "chdb"):
        ws = init_workspace(tmp_path / name)
        ws.settings.analytics_engine = name
        try:
            apply_playbooks(ws, [write(tmp_path, "xp.yaml", DOC)])
            assert not ingest_batch(ws.engine, events()).errors
            outs.append(experiment_results(ws, KEY, as_of=AS_OF)["guardrails"])
        finally:
            ws.close()
    assert len(outs[0]) == len(GUARDS)
    for a, b in zip(*outs, strict=True):
        assert {k: v for k, v in a.items() if not isinstance(v, float)} == \
            {k: v for k, v in b.items() if not isinstance(v, float)}
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, abs=1e-9), (a["metric"], key)
