"""`qunflow metrics` as a user runs it: the same numbers as the service, three formats, one-line errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.domain.metrics import METRIC_KEYS
from qunflow.services.ingest import ingest_batch
from qunflow.services.metrics import metrics_report
from qunflow.workspace import Workspace
from tests.integration.test_analytics_edge_cases import COHORT

runner = CliRunner()
PERIOD = ["--from", "2026-06-01", "--to", "2026-06-30", "--as-of", "2026-07-01"]


def run(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["metrics", *args, "--workspace", str(ws.home)])


@pytest.fixture
def loaded(workspace: Workspace) -> Workspace:
    assert not ingest_batch(workspace.engine, COHORT).errors
    return workspace


def test_json_is_the_service_report(loaded: Workspace) -> None:
    result = run(loaded, *PERIOD, "--by", "group", "--format", "json")
    assert result.exit_code == 0, result.output
    expected = metrics_report(loaded, start=datetime(2026, 6, 1).date(), end=datetime(2026, 6, 30).date(),
                              as_of=datetime(2026, 7, 1).date(), by="group")
    assert json.loads(result.stdout) == expected


def test_csv_has_the_slice_then_every_metric_key_with_empty_cells_for_null(loaded: Workspace) -> None:
    result = run(loaded, *PERIOD, "--by", "channel", "--format", "csv")
    assert result.exit_code == 0
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(table[0]) == ["channel", *METRIC_KEYS]
    assert [row["channel"] for row in table] == ["ads", "content", "TOTAL"]
    content = table[1]
    assert (content["cohort_size"], content["retention_d30"], content["conversion_rate"]) == ("2", "", "")
    assert table[2]["median_seconds_to_conversion"] == "1295999.5"


def test_the_table_shows_the_rows_and_the_total(loaded: Workspace) -> None:
    result = run(loaded, *PERIOD, "--by", "cohort_week")
    assert result.exit_code == 0
    for text in ("2026-W23", "2026-W25", "2026-W27", "TOTAL", "Asia/Shanghai", "50.0%"):
        assert text in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--by", "city"], "by must be one of none, channel"),
    (["--format", "xml"], "--format must be one of table, json, csv"),
    (["--from", "2026-02-30"], "--from must be a date like 2026-01-31"),
    (["--as-of", "yesterday"], "--as-of must be a date"),
    (["--from", "2026-07-01", "--to", "2026-06-01"], "from (2026-07-01) is after to (2026-06-01)"),
])
def test_bad_input_is_one_line_and_exit_2(workspace: Workspace, args: list[str], message: str) -> None:
    result = run(workspace, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_workspace_is_one_line_and_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["metrics", "--workspace", str(tmp_path / "none")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
