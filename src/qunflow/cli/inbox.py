"""The advisor inbox and template previews from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from qunflow.cli import automation
from qunflow.cli.common import WorkspaceOption, console, workspace

inbox_app = typer.Typer(help="The advisor inbox: follow-ups and alerts from playbooks.", no_args_is_help=True)


@inbox_app.command("list")
def list_items(all_: Annotated[bool, typer.Option("--all", help="Also items already done.")] = False,
               kind: Annotated[str | None, typer.Option(help="follow_up or alert.")] = None,
               assignee: Annotated[str | None, typer.Option(help="Only this advisor's items.")] = None,
               limit: Annotated[int, typer.Option(help="At most this many items (1-5000).")] = 100,
               offset: Annotated[int, typer.Option(help="Skip this many items first (paging).")] = 0,
               workspace_dir: WorkspaceOption = None) -> None:
    """Open follow-ups and alerts, soonest due first (times in UTC)."""
    from qunflow.services.inbox import count_inbox, list_inbox

    ws, status = workspace(workspace_dir), "all" if all_ else "open"
    rows = list_inbox(ws, status=status, kind=kind, assignee=assignee, limit=limit, offset=offset)
    total = count_inbox(ws, status=status, kind=kind, assignee=assignee)
    table = Table("id", "kind", "due (UTC)", "title", "member", "assignee", "done (UTC)")
    for row in rows:
        table.add_row(str(row["id"]), row["kind"], f"{row['due_at']:%Y-%m-%d %H:%M}" if row["due_at"] else "-",
                      row["title"], row["member_id"] or "", row["assignee"] or "",
                      f"{row['done_at']:%Y-%m-%d %H:%M}" if row["done_at"] else "")
    console.print(table)
    if not rows:
        console.print("nothing open" if not all_ else "the inbox is empty", style="dim")
    elif offset + len(rows) < total or offset:
        more = f"; next page: --offset {offset + len(rows)}" if offset + len(rows) < total else ""
        console.print(f"items {offset + 1}-{offset + len(rows)} of {total}{more}", style="dim")


@inbox_app.command("done")
def done(item_id: Annotated[int, typer.Argument(metavar="ID", help="The item's id (see `qunflow inbox list`).")],
         workspace_dir: WorkspaceOption = None) -> None:
    """Mark an item done."""
    from qunflow.services.inbox import set_done

    row = set_done(workspace(workspace_dir), item_id, True)
    console.print(f"{item_id} done: {row['title']}", highlight=False)


@inbox_app.command("undone")
def undone(item_id: Annotated[int, typer.Argument(metavar="ID", help="The item's id.")],
           workspace_dir: WorkspaceOption = None) -> None:
    """Open an item again."""
    from qunflow.services.inbox import set_done

    row = set_done(workspace(workspace_dir), item_id, False)
    console.print(f"{item_id} open again: {row['title']}", highlight=False)


@inbox_app.command("assign")
def assign(item_id: Annotated[int, typer.Argument(metavar="ID", help="The item's id.")],
           name: Annotated[str, typer.Argument(help="The advisor's name (\"\" unassigns).")],
           workspace_dir: WorkspaceOption = None) -> None:
    """Give an item to an advisor."""
    from qunflow.services.inbox import assign as assign_item

    row = assign_item(workspace(workspace_dir), item_id, name)
    console.print(f"{item_id} assigned to {row['assignee'] or 'nobody'}", highlight=False)


def preview(key: Annotated[str, typer.Argument(help="The playbook's key (see `qunflow playbooks list`).")],
            template: Annotated[str, typer.Argument(help="A template name from that playbook.")],
            lang: Annotated[str, typer.Option("--lang", help="zh or en.")] = "zh",
            workspace_dir: WorkspaceOption = None) -> None:
    """Show a template of a playbook's current version filled with sample values."""
    from qunflow.services.playbook_views import preview as render_preview

    print(render_preview(workspace(workspace_dir), key, template, lang))


def register(app: typer.Typer) -> None:
    app.add_typer(inbox_app, name="inbox")
    automation.playbook_app.command("preview")(preview)
