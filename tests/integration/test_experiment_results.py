"""`qunflow experiments results NAME --as-of D --format json` on imported events, against a reference
computed here from the raw events with scipy (the contract of issue 14, section 1)."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from scipy import integrate, stats
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.services.experiments import experiment_results
from qunflow.services.ingest import ingest_batch
from qunflow.services.tokens import create_token
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer

runner = CliRunner()
ZONE = ZoneInfo("Asia/Shanghai")
AS_OF = date(2026, 5, 20)
CUTOFF = datetime.combine(AS_OF + timedelta(days=1), time(0), ZONE).astimezone(UTC)
EXP = "welcome-copy"


def cli(ws: Workspace, *args: str) -> Any:
    return runner.invoke(app, [*args, "--workspace", str(ws.home)])


def build_events(seed: int, rates: dict[str, float], shares: dict[str, float], n: int) -> list[dict[str, Any]]:
    """Members exposed over ~70 days (some after the as-of day); orders around their exposure, some before
    it, some 30+ days after, some after the as-of day; a few members exposed twice (the first counts)."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 10, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    names, weights = list(shares), list(shares.values())
    for i in range(n):
        member = f"m{i}"
        variant = rng.choices(names, weights)[0]
        exposed = start + timedelta(seconds=rng.randrange(72 * 86400))
        events.append({"event_id": f"x{i}", "type": "experiment_exposure", "ts": exposed.isoformat(),
                       "member_id": member, "experiment": EXP, "variant": variant})
        if rng.random() < 0.05:  # a later exposure to another variant changes nothing
            events.append({"event_id": f"x{i}b", "type": "experiment_exposure",
                           "ts": (exposed + timedelta(days=2)).isoformat(), "member_id": member,
                           "experiment": EXP, "variant": rng.choice(names)})
        if rng.random() < rates[variant]:
            delay = timedelta(seconds=rng.randrange(35 * 86400))  # some land 30+ days after: not conversions
            events.append({"event_id": f"o{i}", "type": "order", "ts": (exposed + delay).isoformat(),
                           "member_id": member, "amount": rng.randrange(10, 300)})
        if rng.random() < 0.1:  # an order before the exposure never counts
            events.append({"event_id": f"p{i}", "type": "order", "ts": (exposed - timedelta(hours=3)).isoformat(),
                           "member_id": member, "amount": 50})
    events.append({"event_id": "other", "type": "experiment_exposure", "ts": start.isoformat(),
                   "member_id": "m0", "experiment": "price-test", "variant": "A"})
    return events


def reference(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The contract computed from the raw events, independently of the product's SQL."""
    known = sorted((e for e in events if datetime.fromisoformat(e["ts"]) < CUTOFF),
                   key=lambda e: datetime.fromisoformat(e["ts"]))
    first: dict[str, tuple[datetime, str]] = {}
    for e in known:
        if e["type"] == "experiment_exposure" and e["experiment"] == EXP and e["member_id"] not in first:
            first[e["member_id"]] = (datetime.fromisoformat(e["ts"]), e["variant"])
    converted: set[str] = set()
    for e in known:
        if e["type"] == "order" and e["member_id"] in first:
            ts, _ = first[e["member_id"]]
            if ts <= datetime.fromisoformat(e["ts"]) < ts + timedelta(days=30):
                converted.add(e["member_id"])
    variants = sorted({v for _, v in first.values()})
    rows = []
    for name in variants:
        members = [m for m, (_, v) in first.items() if v == name]
        mature = [m for m in members if first[m][0] + timedelta(days=30) <= CUTOFF]
        conv_mature = sum(m in converted for m in mature)
        rows.append({"variant": name, "members": len(members), "mature": len(mature),
                     "converted": sum(m in converted for m in members),
                     "conversion_rate": conv_mature / len(mature), "_x": conv_mature})
    srm = stats.chisquare([r["members"] for r in rows]).pvalue
    control = rows[0]
    comparisons = []
    for row in rows[1:]:
        n1, x1, n0, x0 = row["mature"], row["_x"], control["mature"], control["_x"]
        p1, p0, pooled = x1 / n1, x0 / n0, (x1 + x0) / (n1 + n0)
        z = (p1 - p0) / (pooled * (1 - pooled) * (1 / n1 + 1 / n0)) ** 0.5
        se = (p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0) ** 0.5
        q = stats.norm.ppf(0.975)
        b1, b0 = stats.beta(1 + x1, 1 + n1 - x1), stats.beta(1 + x0, 1 + n0 - x0)
        chance = integrate.quad(lambda p, b1=b1, b0=b0: b1.pdf(p) * b0.cdf(p), 0, 1, points=[p0, p1], limit=200)[0]
        comparisons.append({"variant": row["variant"], "metric": "conversion_rate", "diff": p1 - p0,
                            "ci_low": p1 - p0 - q * se, "ci_high": p1 - p0 + q * se,
                            "p_value": 2 * stats.norm.sf(abs(z)), "chance_to_beat_control": chance})
    return {"experiment": EXP, "as_of": AS_OF.isoformat(), "control": control["variant"], "srm_p_value": srm,
            "variants": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
            "comparisons": comparisons}


def load(ws: Workspace, tmp_path: Path, events: list[dict[str, Any]]) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = cli(ws, "events", "import", str(path))
    assert result.exit_code == 0, result.output


def results_json(ws: Workspace) -> dict[str, Any]:
    result = cli(ws, "experiments", "results", EXP, "--as-of", AS_OF.isoformat(), "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def assert_matches(got: dict[str, Any], expected: dict[str, Any]) -> None:
    for key in ("experiment", "as_of", "control"):
        assert got[key] == expected[key], key
    assert got["srm_p_value"] == pytest.approx(expected["srm_p_value"], abs=1e-6)
    assert len(got["variants"]) == len(expected["variants"])
    for row, want in zip(got["variants"], expected["variants"], strict=True):
        assert {k: row[k] for k in ("variant", "members", "mature", "converted")} == \
            {k: want[k] for k in ("variant", "members", "mature", "converted")}
        assert row["conversion_rate"] == pytest.approx(want["conversion_rate"], abs=1e-6)
    assert [c["variant"] for c in got["comparisons"]] == [c["variant"] for c in expected["comparisons"]]
    for row, want in zip(got["comparisons"], expected["comparisons"], strict=True):
        assert row["metric"] == "conversion_rate"
        for key in ("diff", "ci_low", "ci_high", "p_value"):
            assert row[key] == pytest.approx(want[key], abs=1e-6), (row["variant"], key)
        assert row["chance_to_beat_control"] == pytest.approx(want["chance_to_beat_control"], abs=0.01)


def test_two_variants_match_the_scipy_reference(workspace: Workspace, tmp_path: Path) -> None:
    events = build_events(7, {"A": 0.2, "B": 0.26}, {"A": 1, "B": 1}, 1500)
    load(workspace, tmp_path, events)
    got = results_json(workspace)
    expected = reference(events)
    assert_matches(got, expected)
    # the data and the sample-ratio checks are separate fields
    assert got["enough_data"] is True and got["srm_flagged"] is False
    assert got["verdict"] in ("winner", "no_difference", "loser")


def test_three_variants_on_postgres_match_and_a_70_30_split_is_flagged(pg_workspace: Workspace,
                                                                       tmp_path: Path) -> None:
    events = build_events(11, {"control": 0.3, "long": 0.3, "short": 0.2}, {"control": 7, "long": 2, "short": 1},
                          900)
    load(pg_workspace, tmp_path, events)
    got = results_json(pg_workspace)
    assert_matches(got, reference(events))
    assert got["srm_p_value"] < 0.001 and got["srm_flagged"] and got["verdict"] == "srm"


def test_a_small_experiment_says_not_enough_data_but_still_reports(workspace: Workspace, tmp_path: Path) -> None:
    events = build_events(3, {"A": 0.3, "B": 0.3}, {"A": 1, "B": 1}, 120)
    load(workspace, tmp_path, events)
    got = results_json(workspace)
    assert_matches(got, reference(events))
    assert got["enough_data"] is False and got["verdict"] == "not_enough_data"
    assert got["comparisons"][0]["p_value"] is not None  # statistics reported as defined whatever the size
    table = cli(workspace, "experiments", "results", EXP, "--as-of", AS_OF.isoformat())
    assert table.exit_code == 0 and "Not enough data yet" in table.stdout
    listed = json.loads(cli(workspace, "experiments", "list", "--format", "json").stdout)
    assert [row["experiment"] for row in listed["experiments"]] == ["price-test", EXP]


@pytest.mark.parametrize(("args", "message"), [
    (["results", "nope", "--as-of", "2026-05-20"], "no experiment 'nope'"),
    (["results", EXP, "--as-of", "20-05-2026"], "--as-of"),
    (["results", EXP, "--format", "xml"], "--format must be one of"),
])
def test_bad_input_is_one_line_and_exit_2(workspace: Workspace, args: list[str], message: str) -> None:
    result = cli(workspace, "experiments", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_api_gives_the_cli_json_over_http(workspace: Workspace, tmp_path: Path) -> None:
    events = build_events(5, {"A": 0.2, "B": 0.25}, {"A": 1, "B": 1}, 300)
    load(workspace, tmp_path, events)
    expected = results_json(workspace)
    reader = create_token(workspace.engine, "bi", ["metrics:read"])
    narrowed = create_token(workspace.engine, "bi-core", ["metrics:read"], groups=["core-1"])
    with LiveServer(workspace) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        def get(token: str, path: str, **params: str) -> httpx.Response:
            return http.get(path, params=params, headers={"authorization": f"Bearer {token}"})

        got = get(reader, f"/api/v1/experiments/{EXP}", as_of=AS_OF.isoformat())
        assert got.status_code == 200, got.text
        assert got.json() == expected
        assert get(reader, "/api/v1/experiments/nope", as_of=AS_OF.isoformat()).status_code == 404
        bad = get(reader, f"/api/v1/experiments/{EXP}", as_of="May 20")
        assert bad.status_code == 400 and "as_of" in bad.text
        assert get(reader, f"/api/v1/experiments/{EXP}", since="x").status_code == 400
        assert get(narrowed, f"/api/v1/experiments/{EXP}").status_code == 403
        assert http.get(f"/api/v1/experiments/{EXP}").status_code == 401


def test_the_console_page_shows_variants_intervals_verdicts_and_a_conclusion(workspace: Workspace,
                                                                             tmp_path: Path) -> None:
    events = build_events(11, {"A": 0.3, "B": 0.3}, {"A": 7, "B": 3}, 600)  # a 70/30 split: SRM
    load(workspace, tmp_path, events)
    report = results_json(workspace)
    with LiveServer(workspace) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        log_in(http, workspace, "ana", "analyst")
        listing = http.get("/console/experiments", params={"lang": "en"})
        assert listing.status_code == 200 and f"/console/experiments/{EXP}?lang=en" in listing.text
        page = http.get(f"/console/experiments/{EXP}", params={"lang": "en", "as_of": AS_OF.isoformat()})
        assert page.status_code == 200
        assert "Cannot be trusted" in page.text and "cannot be trusted" in page.text and "mismatch" in page.text
        assert f"{report['variants'][1]['members']:,}" in page.text
        chinese = http.get(f"/console/experiments/{EXP}", params={"lang": "zh", "as_of": AS_OF.isoformat()})
        assert "结果不可信" in chinese.text and "胜过对照组的概率" in chinese.text
        assert http.get("/console/experiments/nope", params={"lang": "en"}).status_code == 404
        assert http.get(f"/console/experiments/{EXP}", params={"as_of": "soon"}).status_code == 400


def test_embedded_clickhouse_gives_the_same_json(tmp_path: Path) -> None:
    pytest.importorskip("chdb", reason="the ClickHouse engine test needs chdb: pip install -e '.[test]'")
    from qunflow.workspace import init_workspace

    events = build_events(13, {"A": 0.2, "B": 0.3}, {"A": 1, "B": 1}, 400)
    outs = []
    for name in ("duckdb", "chdb"):
        ws = init_workspace(tmp_path / name)
        ws.settings.analytics_engine = name
        try:
            assert not ingest_batch(ws.engine, events).errors
            outs.append(experiment_results(ws, EXP, as_of=AS_OF))
        finally:
            ws.close()
    assert_matches(outs[1], outs[0])
    assert_matches(outs[0], reference(events))
