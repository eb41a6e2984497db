"""Gate documents, the waitlist and page texts (group rules, landing copy) from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from qunflow.cli.common import WorkspaceOption, console, workspace

gate_app = typer.Typer(help="Gates: `kind: gate` documents (fields, questions, points, routes, first order), "
                            "versioned like playbooks.", no_args_is_help=True)
waitlist_app = typer.Typer(help="The waitlist: passes with no group with room along the fallback order.",
                           no_args_is_help=True)
text_app = typer.Typer(help="Group rules and landing copy per workspace or entry point, in zh and en.",
                       no_args_is_help=True)


@gate_app.command("apply")
def gate_apply(files: Annotated[list[Path], typer.Argument(help="Gate YAML files (kind: gate).")],
               dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show the changes only.")] = False,
               workspace_dir: WorkspaceOption = None) -> None:
    """Validate gate files; store a new version of each gate whose text changed (all or nothing)."""
    from qunflow.services.gates import apply_gates

    for change in apply_gates(workspace(workspace_dir), files, dry_run=dry_run):
        console.print(f"gate {change.key}: {change.status}, version {change.version}", highlight=False)
        if change.diff:
            console.print(change.diff, markup=False, highlight=False)
    if dry_run:
        console.print("dry run: nothing was applied", style="dim")


@gate_app.command("list")
def gate_list(workspace_dir: WorkspaceOption = None) -> None:
    """Gates, their version, what they ask and how many entry points use them."""
    from qunflow.services.gates import list_gates

    table = Table("gate", "version", "fields", "questions", "routes", "first order", "entry points")
    for g in list_gates(workspace(workspace_dir)):
        table.add_row(g["key"], "-" if g["version"] is None else str(g["version"]), str(g["fields"]),
                      str(g["questions"]), str(g["routes"]), g["first_order"] or "-", str(g["entry_points"]))
    console.print(table)


@gate_app.command("show")
def gate_show(key: str, version: Annotated[int | None, typer.Option(help="An older version.")] = None,
              workspace_dir: WorkspaceOption = None) -> None:
    """Print a gate's document (the version in force, or --version N) and its versions."""
    from qunflow.services.gates import gate_view

    view = gate_view(workspace(workspace_dir), key, version)
    console.print(view.text, markup=False, highlight=False, end="")
    versions = ", ".join(f"v{v['version']} {v['applied_at']:%Y-%m-%d %H:%M} ({v['file']})" for v in view.versions)
    console.print(f"# versions: {versions or 'none (stored before gates were documents)'}", markup=False,
                  highlight=False)
    console.print(f"# entry points: {', '.join(view.entry_points) or 'none'}", markup=False, highlight=False)


@gate_app.command("diff")
def gate_diff(key: str, file: Path, workspace_dir: WorkspaceOption = None) -> None:
    """What applying FILE would change in gate KEY (nothing is stored)."""
    from qunflow.services.gates import diff_gate

    change = diff_gate(workspace(workspace_dir), key, file)
    if change.status == "unchanged":
        console.print(f"gate {key}: unchanged (version {change.version})", highlight=False)
    elif change.status == "new":
        console.print(f"gate {key}: new, would be version {change.version}", highlight=False)
    else:
        console.print(change.diff, markup=False, highlight=False, end="")


@waitlist_app.command("list")
def waitlist_list(workspace_dir: WorkspaceOption = None) -> None:
    """Counts by status and tier, and the latest people on the list (by member id)."""
    from qunflow.services.waitlist import waitlist_overview

    overview = waitlist_overview(workspace(workspace_dir))
    table = Table("status", "tier", "people")
    for row in overview["counts"]:
        table.add_row(row["status"], row["tier"], str(row["n"]))
    console.print(table)


@waitlist_app.command("offer")
def waitlist_offer(workspace_dir: WorkspaceOption = None) -> None:
    """Give free seats to the oldest waiting people now (also done when a member leaves or a group is added)."""
    from qunflow.services.waitlist import offer_seats

    console.print(f"{offer_seats(workspace(workspace_dir))} invited")


@text_app.command("set")
def text_set(key: Annotated[str, typer.Argument(help="rules, landing_title or landing_intro")],
             lang: Annotated[str, typer.Option(help="zh or en")],
             body: Annotated[str | None, typer.Option(help="The text; empty removes it.")] = None,
             file: Annotated[Path | None, typer.Option(help="Read the text from this UTF-8 file.")] = None,
             entry: Annotated[str | None, typer.Option(help="Only for this entry point.")] = None,
             workspace_dir: WorkspaceOption = None) -> None:
    """Set the group rules or the landing copy (for the workspace, or one entry point with --entry)."""
    from qunflow.cli.common import fail
    from qunflow.services.page_texts import set_text

    if file is not None:
        try:
            body = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{file}: cannot read ({exc.__class__.__name__})")
    set_text(workspace(workspace_dir), key, lang, body, entry)
    console.print(f"{key} ({lang}{', ' + entry if entry else ''}): {'saved' if body else 'removed'}")


@text_app.command("list")
def text_list(entry: Annotated[str | None, typer.Option(help="An entry point's and the workspace's.")] = None,
              workspace_dir: WorkspaceOption = None) -> None:
    """The stored texts (the built-in ones apply where none is stored)."""
    from qunflow.services.page_texts import list_texts

    table = Table("scope", "text", "lang", "body")
    for row in list_texts(workspace(workspace_dir), entry):
        table.add_row(row["scope"] or "(workspace)", row["key"], row["lang"], row["body"][:60])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(gate_app, name="gate")
    app.add_typer(waitlist_app, name="waitlist")
    app.add_typer(text_app, name="text")
