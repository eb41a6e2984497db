"""`qunflow report weekly`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from qunflow.cli.common import WorkspaceOption, console, workspace

report_app = typer.Typer(help="Reports: the weekly report as HTML or PDF, and its schedule.", no_args_is_help=True)


@report_app.command("weekly")
def weekly(
    out: Annotated[Path, typer.Option("--out", help="FILE.html or FILE.pdf (PDF needs Chromium).")],
    week: Annotated[str | None, typer.Option(help="ISO week like 2026-W09 (default: last complete week).")] = None,
    lang: Annotated[str, typer.Option(help="zh or en.")] = "zh",
    post: Annotated[str | None, typer.Option(help="Also POST a summary to this webhook URL.")] = None,
    workspace_dir: WorkspaceOption = None,
) -> None:
    """Write the weekly report (joins of one ISO week, measured as of today; trend vs the week before, 8 weeks
    of retention)."""
    from qunflow.errors import InvalidInput
    from qunflow.services.report import parse_week, post_summary, summary_text, weekly_board
    from qunflow.web.report import report_html, write_report

    if lang not in ("zh", "en"):
        raise InvalidInput("--lang must be zh or en", zh="--lang 须为 zh 或 en")
    if out.suffix.lower() not in (".html", ".pdf"):
        raise InvalidInput(f"{out.name}: the report is written as .html or .pdf",
                           zh=f"{out.name}:报告只能写成 .html 或 .pdf")
    ws = workspace(workspace_dir)
    today = ws.local_today()
    chosen = parse_week(week, today)
    board = weekly_board(ws, chosen, today)
    write_report(report_html(board, chosen, lang, ws.settings.timezone), out)
    console.print(f"weekly report {chosen.label} written to {out}")
    if post:
        post_summary(post, summary_text(board, chosen, lang), out.name)
        console.print(f"summary posted to {post}")


@report_app.command("status")
def status(workspace_dir: WorkspaceOption = None) -> None:
    """The weekly report schedule of `qunflow serve`: next run and the latest weeks' posts."""
    from rich.table import Table

    from qunflow.services.report_schedule import schedule_status

    info = schedule_status(workspace(workspace_dir))
    if not info.enabled:
        console.print("weekly report schedule: off (set report_webhook in qunflow.toml or QUNFLOW_REPORT_WEBHOOK)")
    else:
        console.print(f"weekly report schedule: every {info.slot}, posted to {info.webhook_host}")
        console.print(f"next run: {info.next_run:%Y-%m-%d %H:%M} local time, for {info.next_week}")
        if info.due_week not in {post["week"] for post in info.posts}:
            console.print(f"{info.due_week} is due and not posted yet: "
                          "a running `qunflow serve` posts it within a minute")
    if not info.posts:
        return
    table = Table("week", "status", "attempts", "posted at (UTC)", "next attempt (UTC)", "error")
    for post in info.posts:
        table.add_row(post["week"], post["status"], str(post["attempts"]), _when(post["posted_at"]),
                      _when(post["next_attempt_at"]) if post["status"] == "failed" else "",
                      (post["error"] or "")[:120])
    console.print(table)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M}"


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
