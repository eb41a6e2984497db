"""`qunflow plan`: the seed's funnel sum (orders/day = joins/day x task rate x order rate), typed or measured."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, fail, workspace
from qunflow.domain.plan import Funnel, number, plan
from qunflow.domain.schedule import parse_day

FORMATS = ("table", "json")
Number = Annotated[str | None, typer.Option(metavar="N")]


def _rate(value: str | None, name: str, *, rate: bool = True) -> Any:
    return None if value is None else number(value, name, rate=rate)


def plan_command(
    joins_per_day: Annotated[str | None, typer.Option(help="Joins per day now, e.g. 200.")] = None,
    task_rate: Annotated[str | None, typer.Option(help="Share of joiners doing the Day-1 task, 0-1 (0.4).")] = None,
    order_rate: Annotated[str | None, typer.Option(
        help="Share of task completers who order, 0-1 (0.1).")] = None,
    new_joins_per_day: Annotated[str | None, typer.Option(help="Scenario: joins per day.")] = None,
    new_task_rate: Annotated[str | None, typer.Option(help="Scenario: Day-1 task rate, 0-1.")] = None,
    new_order_rate: Annotated[str | None, typer.Option(help="Scenario: order rate, 0-1.")] = None,
    from_data: Annotated[bool, typer.Option(
        "--from-data", help="Use the measured rates of the last 8 weeks' joins (M9 and M5) with 95% intervals; "
                            "--new-* options then give a what-if.")] = False,
    channel: Annotated[str | None, typer.Option(help="With --from-data: only this channel's members.")] = None,
    entry_point: Annotated[str | None, typer.Option(help="With --from-data: only this entry point's.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="With --from-data: as of this day.")] = None,
    format_: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Orders per day from joins x Day-1 task rate x order rate: a baseline next to a scenario (the seed's
    200 x 40% x 10% = 8 against 200 x 60% x 12% = 14.4), or the team's measured funnel."""
    if format_ not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, got {format_!r}")
    new_joins = _rate(new_joins_per_day, "--new-joins-per-day", rate=False)
    new_task = _rate(new_task_rate, "--new-task-rate")
    new_order = _rate(new_order_rate, "--new-order-rate")
    if from_data:
        if (joins_per_day, task_rate, order_rate) != (None, None, None):
            fail("--from-data measures the baseline: give the what-if with --new-joins-per-day, --new-task-rate "
                 "or --new-order-rate instead of --joins-per-day, --task-rate, --order-rate")
        _from_data(workspace_dir, channel, entry_point, as_of, format_,
                   *(None if v is None else float(v) for v in (new_joins, new_task, new_order)))
        return
    if channel or entry_point or as_of:
        fail("--channel, --entry-point and --as-of go with --from-data")
    missing = [name for name, value in (("--joins-per-day", joins_per_day), ("--task-rate", task_rate),
                                        ("--order-rate", order_rate)) if value is None]
    if missing:
        fail(f"give {', '.join(missing)} (or --from-data to use the measured funnel)")
    baseline = Funnel(_rate(joins_per_day, "--joins-per-day", rate=False), _rate(task_rate, "--task-rate"),
                      _rate(order_rate, "--order-rate"))
    result = plan(baseline, joins_per_day=new_joins, task_rate=new_task, order_rate=new_order)
    if format_ == "json":
        print(json.dumps(result))
        return
    table = Table("", "joins/day", "task completers/day", "orders/day", title="funnel plan")
    for name in ("baseline", "scenario"):
        stages = result[name]
        table.add_row(name, *(_num(stages[key]) for key in ("joins_per_day", "task_completers_per_day",
                                                             "orders_per_day")))
    console.print(table)
    change = result["change"]
    relative = "—" if change["relative"] is None else f"{change['relative']:+.1%}"
    console.print(f"change in orders/day: {change['orders_per_day']:+g} ({relative})", highlight=False)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:,.6g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _from_data(workspace_dir: Any, channel: str | None, entry_point: str | None, as_of: str | None, format_: str,
               new_joins: float | None, new_task: float | None, new_order: float | None) -> None:
    from qunflow.services.plan import plan_from_data

    ws = workspace(workspace_dir)
    result = plan_from_data(ws, channel=channel, entry_point=entry_point, as_of=parse_day(as_of, "--as-of"),
                            joins_per_day=new_joins, task_rate=new_task, order_rate=new_order)
    if format_ == "json":
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    scope = ", ".join(f"{k} {v}" for k, v in result["filters"].items()) or "all members"
    table = Table("stage", "measured", "95% interval", "sample",
                  title=f"measured funnel: joins {result['from']} to {result['to']} ({scope})")
    m = result["measured"]
    table.add_row("joins/day", _num(m["joins_per_day"]["value"]),
                  f"{_num(m['joins_per_day']['ci_low'])} – {_num(m['joins_per_day']['ci_high'])}",
                  f"{m['joins_per_day']['n']} joins / {m['joins_per_day']['days']} days")
    for key, label in (("task_rate", "Day-1 task rate (M9)"), ("conversion_rate", "conversion (M5)")):
        stage = m[key]
        table.add_row(label, _pct(stage["value"]), f"{_pct(stage['ci_low'])} – {_pct(stage['ci_high'])}",
                      f"{stage['successes']} of {stage['n']}")
    table.add_row("order rate after task (M5 / M9)", _pct(m["order_rate"]["value"]), "", "")
    for name, block in (("orders/day", m), ("what-if orders/day", result.get("what_if"))):
        if block is not None:
            orders = block["orders_per_day"]
            table.add_row(name, _num(orders["value"]), f"{_num(orders['ci_low'])} – {_num(orders['ci_high'])}", "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
