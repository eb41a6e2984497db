"""`qunflow poll post|results|list|close`: polls posted to a group, answered by replying with a number
(docs/polls.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from qunflow.cli.common import WorkspaceOption, cli_actor, console, fail, workspace

poll_app = typer.Typer(help="Group polls: post a question to a group; members vote by replying with a number.",
                       no_args_is_help=True)


@poll_app.command("post")
def post(group: Annotated[str, typer.Argument(metavar="GROUP", help="The group's key (qunflow group list).")],
         question: Annotated[str, typer.Option("--question", help="The question, as members will read it.")],
         option: Annotated[list[str], typer.Option("--option", help="key=label, 2 to 9 times: --option a=Saturday")],
         key: Annotated[str | None, typer.Option(help="The poll's key (default: made up, printed).")] = None,
         hours: Annotated[int, typer.Option(help="Replies count for this many hours.")] = 72,
         lang: Annotated[str, typer.Option(help="Language of the how-to-vote line: zh or en.")] = "zh",
         workspace_dir: WorkspaceOption = None) -> None:
    """Post a poll to a group through the outbox; prints the poll's key for `qunflow poll results`."""
    from qunflow.services.group_polls import post_poll

    if lang not in ("zh", "en"):
        fail(f"--lang must be zh or en, got {lang!r}")
    done = post_poll(workspace(workspace_dir), group, question, option, key=key, hours=hours, language=lang,
                     actor=cli_actor())
    state = "posted" if done["posted"] else "queued (the worker retries the post)"
    console.print(f"poll {done['key']} {state} to {done['group']}; replies count until "
                  f"{done['closes_at']:%Y-%m-%d %H:%M} UTC", highlight=False)


def _show(result: dict[str, Any]) -> None:
    state = "open" if result["open"] else "closed"
    console.print(f"{result['key']} ({result['group']}, {state}): {result['question']}", highlight=False)
    for o in result["options"]:
        share = f"{o['votes'] / result['total']:.0%}" if result["total"] else "-"
        console.print(f"  {o['number']}. {o['label']:<24} {o['votes']:>5}  {share}", highlight=False)
    console.print(f"  total {result['total']}", highlight=False)


@poll_app.command("results")
def results(key: Annotated[str, typer.Argument(metavar="POLL", help="The poll's key.")],
            output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
            workspace_dir: WorkspaceOption = None) -> None:
    """Votes per option."""
    from qunflow.services.group_polls import poll_results

    if output not in ("table", "json"):
        fail(f"--format must be table or json, got {output!r}")
    result = poll_results(workspace(workspace_dir), key)
    if output == "json":
        print(json.dumps(result, default=str, ensure_ascii=False))
        return
    _show(result)


@poll_app.command("list")
def list_polls(workspace_dir: WorkspaceOption = None) -> None:
    """Every group poll, newest first, with its votes."""
    from qunflow.services.group_polls import list_polls as polls

    for result in polls(workspace(workspace_dir)):
        _show(result)


@poll_app.command("close")
def close(key: Annotated[str, typer.Argument(metavar="POLL")], workspace_dir: WorkspaceOption = None) -> None:
    """Stop counting replies now."""
    from qunflow.services.group_polls import close_poll

    close_poll(workspace(workspace_dir), key)
    console.print(f"poll {key} closed", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(poll_app, name="poll")
