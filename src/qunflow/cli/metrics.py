"""`qunflow metrics` and `qunflow spend import`."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, err_console, fail, workspace
from qunflow.domain.metrics import DIMENSIONS, METRIC_KEYS
from qunflow.domain.schedule import parse_day

spend_app = typer.Typer(help="Spend per channel per day (for CPA).", no_args_is_help=True)
FORMATS = ("table", "json", "csv")
TABLE_COLUMNS = (("landing_visitors", "visitors"), ("join_conversion", "M1 join"), ("cohort_size", "joins"),
                 ("retention_d1", "D1"), ("retention_d7", "D7"), ("task_completion_d1", "M9 task"),
                 ("converted", "conv."), ("conversion_rate", "M5"), ("spend", "spend"),
                 ("cost_per_acquisition", "CPA"))


def _day(value: str | None, name: str) -> date | None:
    return parse_day(value, f"--{name}")


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and key not in ("spend", "cost_per_acquisition", "cost_per_join",
                                                "median_seconds_to_conversion") and "per_member" not in key:
        return f"{value:.1%}"
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)


def metrics(
    from_: Annotated[str | None, typer.Option("--from", help="First join day of the cohort (YYYY-MM-DD).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Last join day of the cohort.")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Count events and spend up to this day (default today).")] = None,
    # Plain strings checked by the service: a bad value is one clear line and exit 2, not a usage box.
    by: Annotated[str, typer.Option(help=f"Slice the rows by one of: {', '.join(DIMENSIONS)}.")] = "none",
    format_: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    channel: Annotated[str | None, typer.Option(help="Only members acquired through this channel.")] = None,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
    entry_point: Annotated[str | None, typer.Option(help="Only this entry point.")] = None,
    group: Annotated[str | None, typer.Option(help="Only members whose first group is this one.")] = None,
    tier: Annotated[str | None, typer.Option(help="Only this tier.")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="Only people exposed to this experiment, behaviour from exposure on (see --by variant).")] = None,
    variant: Annotated[str | None, typer.Option(help="Only this variant of --experiment.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the rows to FILE (.csv or .parquet).")] = None,
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Join conversion, retention, activity, conversion, LTV and CPA for a join cohort (docs/metrics.md)."""
    from qunflow.services.metrics import metrics_report

    if format_ not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {format_!r}")
    ws = workspace(workspace_dir)
    filters = {"channel": channel, "campaign": campaign, "entry_point": entry_point, "group": group, "tier": tier,
               "variant": variant}
    report = metrics_report(ws, start=_day(from_, "from"), end=_day(to, "to"), as_of=_day(as_of, "as-of"),
                            by=by, filters={k: v for k, v in filters.items() if v}, experiment=experiment)
    if out is not None:
        from qunflow.services.export import export_report

        count = export_report(report, out)
        err_console.print(f"{count} rows written to {out}")
    dim = report["by"]
    rows = [*report["rows"], {dim: "TOTAL", **report["total"]}]
    if format_ == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    elif format_ == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[dim, *METRIC_KEYS])
        writer.writeheader()
        writer.writerows(rows)
        print(buffer.getvalue(), end="")
    else:
        table = Table(title=f"joins {report['from']} to {report['to']}, as of {report['as_of']} "
                            f"({ws.settings.timezone})")
        table.add_column(dim)
        for _key, label in TABLE_COLUMNS:
            table.add_column(label, justify="right")
        for row in rows:
            table.add_row(str(row.get(dim)), *[_cell(k, row.get(k)) for k, _label in TABLE_COLUMNS])
        console.print(table)
        console.print("All metric keys: --format json. Definitions: docs/metrics.md", style="dim")


@spend_app.command("import")
def spend_import(file: Annotated[Path, typer.Argument(help="CSV or .xlsx: channel, day, amount[, currency]")],
                 workspace_dir: WorkspaceOption = None) -> None:
    """Import spend; a file with any bad row stores nothing. Re-imported days are replaced."""
    from qunflow.services.spend import import_spend

    ws = workspace(workspace_dir)
    if not file.is_file():
        fail(f"{file}: no such file")
    count = import_spend(ws, file)
    console.print(f"{count} spend rows stored")


export_app = typer.Typer(help="Exports for BI tools (CSV or Parquet).", no_args_is_help=True)


@export_app.command("members")
def export_members(out: Annotated[Path, typer.Option("--out", help="FILE.csv or FILE.parquet")],
                   workspace_dir: WorkspaceOption = None) -> None:
    """One row per member: acquisition, join, current group, conversions (no personal fields)."""
    from qunflow.services.export import export_kind
    from qunflow.services.export import export_members as run

    export_kind(out)
    count = run(workspace(workspace_dir), out)
    console.print(f"{count} members written to {out}")


def register(app: typer.Typer) -> None:
    app.command()(metrics)
    app.add_typer(spend_app, name="spend")
    app.add_typer(export_app, name="export")
