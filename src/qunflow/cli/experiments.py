"""`qunflow experiments list|results`: A/B tests from the event log (docs/experiments.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, fail, workspace
from qunflow.domain.schedule import parse_day

experiments_app = typer.Typer(help="A/B tests: variants, conversion with intervals, SRM and data verdicts.",
                              no_args_is_help=True)
FORMATS = ("table", "json")
FormatOption = Annotated[str, typer.Option("--format", help="table or json.")]


def _check_format(value: str) -> None:
    if value not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {value!r}")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@experiments_app.command("list")
def list_(format_: FormatOption = "table", workspace_dir: WorkspaceOption = None) -> None:
    """Experiments seen in the event log, with their exposures."""
    from qunflow.services.experiments import list_experiments

    _check_format(format_)
    rows = list_experiments(workspace(workspace_dir))
    if format_ == "json":
        print(json.dumps({"experiments": rows}, ensure_ascii=False, indent=2))
        return
    table = Table("experiment", "exposures", "variants", "first exposure (UTC)", "last exposure (UTC)")
    for row in rows:
        table.add_row(row["experiment"], f"{row['exposures']:,}", str(row["variants"]),
                      row["first_exposure"] or "—", row["last_exposure"] or "—")
    console.print(table if rows else "No experiments yet: no experiment_exposure events.")


@experiments_app.command("results")
def results_(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The experiment's name.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Count events up to this day (default today).")] = None,
    format_: FormatOption = "table",
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Per variant: exposed, mature and converted members; against the control: difference with its 95%
    interval, p-value and chance to beat the control; the sample-ratio check and the data verdict."""
    from qunflow.services.experiments import experiment_results

    _check_format(format_)
    report = experiment_results(workspace(workspace_dir), name, as_of=parse_day(as_of, "--as-of"))
    if format_ == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    print_report(report)


def print_report(report: dict[str, Any], out: Console | None = None) -> None:
    from qunflow.services.experiments import conclusion

    out = out or console
    table = Table("variant", "members", "mature", "converted", "M5", "diff", "95% CI", "p", "P(beat control)",
                  title=f"{report['experiment']} as of {report['as_of']} (control: {report['control']})")
    by_variant = {c["variant"]: c for c in report["comparisons"]}
    for row in report["variants"]:
        c = by_variant.get(row["variant"])
        table.add_row(row["variant"], f"{row['members']:,}", f"{row['mature']:,}", f"{row['converted']:,}",
                      _pct(row["conversion_rate"]),
                      _pct(c["diff"]) if c else "control",
                      f"[{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]" if c else "",
                      _num(c["p_value"]) if c else "", _pct(c["chance_to_beat_control"]) if c else "")
    out.print(table)
    if report.get("guardrails"):
        from qunflow.services.experiments import format_guardrail as fg

        guard = Table("guardrail", "variant", "value", "control", "diff", "95% CI", "p", "", title="Guardrails")
        for g in report["guardrails"]:
            kind = g["kind"]
            guard.add_row(g["metric"], g["variant"], fg(g["value"], kind), fg(g["control_value"], kind),
                          fg(g["diff"], kind, signed=True),
                          f"[{fg(g['ci_low'], kind, signed=True)}, {fg(g['ci_high'], kind, signed=True)}]",
                          _num(g["p_value"]), "WORSE" if g["worse"] else "")
        out.print(guard)
    out.print(f"SRM p-value: {_num(report['srm_p_value'], 6)}"
              + (" — SAMPLE RATIO MISMATCH" if report["srm_flagged"] else ""), highlight=False)
    out.print(conclusion(report, "en"), highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")
