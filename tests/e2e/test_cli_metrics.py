"""`qunflow metrics`, `qunflow spend import` and `qunflow events import` as a user runs them."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC
from pathlib import Path

from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.workspace import Workspace
from tests.integration.test_metrics_exact import SCENARIO

runner = CliRunner()


def invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [*args, "--workspace", str(ws.home)])


def write_jsonl(path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_then_metrics_as_json_csv_and_table(workspace: Workspace, tmp_path: Path) -> None:
    result = invoke(workspace, "events", "import", str(write_jsonl(tmp_path / "e.jsonl", SCENARIO)))
    assert result.exit_code == 0 and "17 stored" in result.stdout
    again = invoke(workspace, "events", "import", str(tmp_path / "e.jsonl"))
    assert "0 stored, 17 already present" in again.stdout
    spend = tmp_path / "spend.csv"
    spend.write_text("channel,day,amount\nads,2026-03-03,600\nads,2026-03-20,400\noffline,2026-03-15,500\n")
    assert invoke(workspace, "spend", "import", str(spend)).exit_code == 0
    args = ["metrics", "--from", "2026-03-01", "--to", "2026-03-31", "--as-of", "2026-04-30", "--by", "channel"]
    report = json.loads(invoke(workspace, *args, "--format", "json").stdout)
    rows = {r["channel"]: r for r in report["rows"]}
    assert rows["ads"]["cost_per_join"] == 500 and rows["offline"]["cost_per_join"] is None
    table = list(csv.DictReader(io.StringIO(invoke(workspace, *args, "--format", "csv").stdout)))
    assert [r["channel"] for r in table] == ["ads", "content", "offline", "TOTAL"]
    assert table[0]["retention_d1"] == "1.0"
    text = invoke(workspace, *args).stdout
    assert "ads" in text and "TOTAL" in text


def test_events_count_by_type(workspace: Workspace, tmp_path: Path) -> None:
    invoke(workspace, "events", "import", str(write_jsonl(tmp_path / "e.jsonl", SCENARIO)))
    assert invoke(workspace, "events", "count", "--type", "joined").stdout.strip() == "5"  # m3 rejoined
    assert invoke(workspace, "events", "count").stdout.strip() == "17"


def test_csv_events_import_reports_bad_lines_and_exits_2(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("event_id,type,ts,member_id,amount,properties\n"
                    "o1,order,2026-03-01T10:00:00+08:00,m1,99.5,\"{\"\"sku\"\": \"\"A\"\"}\"\n"
                    "o2,order,2026-03-01T10:00:00,m1,1,\n"
                    "o3,order,2026-03-01T10:00:00Z,,1,\n")
    result = invoke(workspace, "events", "import", str(path))
    assert result.exit_code == 2
    assert "line 3" in result.stdout and "no UTC offset" in result.stdout and "line 4" in result.stdout
    assert invoke(workspace, "events", "count").stdout.strip() == "1"


def test_bad_spend_file_stores_nothing(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "spend.csv"
    path.write_text("channel,day,amount\nads,2026-03-03,600\nads,2026-13-01,5\n,2026-03-01,-1\n")
    result = invoke(workspace, "spend", "import", str(path))
    assert result.exit_code == 2 and "line 3" in result.stderr and "line 4" in result.stderr
    report = json.loads(invoke(workspace, "metrics", "--from", "2026-03-01", "--to", "2026-03-31",
                               "--format", "json").stdout)
    assert report["total"]["spend"] == 0


def test_bad_metric_options_exit_2(workspace: Workspace) -> None:
    assert invoke(workspace, "metrics", "--by", "city").exit_code == 2
    assert invoke(workspace, "metrics", "--from", "2026-02-30").exit_code == 2
    assert invoke(workspace, "metrics", "--format", "xml").exit_code == 2
    assert invoke(workspace, "events", "import", "missing.csv").exit_code == 2
    no_experiment = invoke(workspace, "metrics", "--by", "variant")
    assert no_experiment.exit_code == 2 and "need an experiment" in no_experiment.output


def test_metrics_per_variant_from_the_cli(workspace: Workspace, tmp_path: Path) -> None:
    from tests.integration.test_experiments import EVENTS, EXP

    assert invoke(workspace, "events", "import", str(write_jsonl(tmp_path / "e.jsonl", EVENTS))).exit_code == 0
    result = invoke(workspace, "metrics", "--from", "2026-03-01", "--to", "2026-03-07", "--as-of", "2026-04-15",
                    "--by", "variant", "--experiment", EXP, "--variant", "B", "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [(row["variant"], row["cohort_size"]) for row in body["rows"]] == [("B", 2)]


def test_parquet_import_stores_the_same_events_as_jsonl(workspace: Workspace, tmp_path: Path) -> None:
    from datetime import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "event_id": ["p1", "p2", "p3"], "type": ["joined", "order", "message"],
        "ts": pa.array([datetime(2026, 3, 1, 2, 0, tzinfo=UTC)] * 2 + [None],
                       type=pa.timestamp("us", tz="UTC")),
        "member_id": ["m1", "m1", "m1"], "amount": [None, 99.5, None],
        "properties": ['{"tier": "core"}', None, None]})
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    result = invoke(workspace, "events", "import", str(path))
    assert result.exit_code == 2 and "line 3" in result.stdout  # row 3 has no ts
    assert invoke(workspace, "events", "count").stdout.strip() == "2"
    report = json.loads(invoke(workspace, "metrics", "--from", "2026-03-01", "--to", "2026-03-01",
                               "--as-of", "2026-03-01", "--by", "tier", "--format", "json").stdout)
    assert report["rows"][0]["tier"] == "core" and report["total"]["converted"] == 1
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    assert invoke(workspace, "events", "import", str(tmp_path / "broken.parquet")).exit_code == 2


def test_exports_for_bi_tools(workspace: Workspace, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    invoke(workspace, "events", "import", str(write_jsonl(tmp_path / "e.jsonl", SCENARIO)))
    members = tmp_path / "members.parquet"
    assert invoke(workspace, "export", "members", "--out", str(members)).exit_code == 0
    table = pq.read_table(members).to_pylist()
    by_id = {row["member_id"]: row for row in table}
    assert set(by_id) == {"m1", "m2", "m3", "m4"}
    assert (by_id["m3"]["channel"], by_id["m3"]["current_group"], by_id["m3"]["has_left"]) == ("content", "g2", False)
    assert by_id["m4"]["has_left"] is True and by_id["m2"]["conversions"] == 2
    out = tmp_path / "metrics.csv"
    result = invoke(workspace, "metrics", "--from", "2026-03-01", "--to", "2026-03-31", "--as-of", "2026-04-30",
                    "--by", "channel", "--format", "json", "--out", str(out))
    assert result.exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["channel"] for r in rows] == ["ads", "content", "TOTAL"] and rows[0]["retention_d1"] == "1.0"
    assert invoke(workspace, "export", "members", "--out", str(tmp_path / "m.xlsx")).exit_code == 2


def test_spend_from_excel_with_per_row_errors(workspace: Workspace, tmp_path: Path) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Channel", "Day", "Amount", "Currency"])
    sheet.append(["ads", datetime(2026, 3, 3), 600, "CNY"])
    sheet.append(["ads", "2026-03-20", 400.5, None])
    path = tmp_path / "spend.xlsx"
    book.save(path)
    assert invoke(workspace, "spend", "import", str(path)).exit_code == 0
    sheet.append(["ads", "someday", "x", None])
    book.save(path)
    result = invoke(workspace, "spend", "import", str(path))
    assert result.exit_code == 2 and "line 4" in result.stderr
    report = json.loads(invoke(workspace, "metrics", "--from", "2026-03-01", "--to", "2026-03-31",
                               "--format", "json").stdout)
    assert report["total"]["spend"] == 1000.5
    (tmp_path / "bad.xlsx").write_bytes(b"nope")
    assert invoke(workspace, "spend", "import", str(tmp_path / "bad.xlsx")).exit_code == 2
    (tmp_path / "spend.txt").write_text("channel,day,amount\n")
    wrong_kind = invoke(workspace, "spend", "import", str(tmp_path / "spend.txt"))
    assert wrong_kind.exit_code == 2 and ".csv or .xlsx" in wrong_kind.stderr
