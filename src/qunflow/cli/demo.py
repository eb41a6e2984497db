"""`qunflow demo`: a simulated community, its headline numbers, and the console."""

from __future__ import annotations

import secrets
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from qunflow.cli.common import PortOption, check_port_free, console, console_url, fail

DEMO_MARKER = ".qunflow-demo"


def demo(
    workspace_dir: Annotated[Path, typer.Option("--workspace", "-w", help="Folder for the demo workspace.")] = Path(
        "qunflow-demo"),
    days: Annotated[int, typer.Option(help="Days of traffic to simulate (7-120).")] = 42,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same community.")] = 7,
    automate: Annotated[bool, typer.Option("--automate/--no-automate", help=(
        "Apply the shipped playbooks and referral program and run the worker every simulated hour "
        "(slower; shows warm-up sends, coupons and rewards)."))] = True,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the console afterwards.")] = True,
    host: Annotated[str, typer.Option(help="Address for the console.")] = "127.0.0.1",
    port: PortOption = 8000,
) -> None:
    """Build a demo community, simulate weeks of traffic through the real code paths, print the metrics."""
    from qunflow.domain.access import TOKEN_SCOPES
    from qunflow.services.tokens import create_token
    from qunflow.services.users import add_user
    from qunflow.sim.demo import Simulation
    from qunflow.sim.report import print_automation, print_experiment, print_headline
    from qunflow.workspace import init_workspace, open_workspace

    if not 7 <= days <= 120:
        fail("--days must be between 7 and 120")
    if serve:  # minutes of simulation must not end in "address already in use"
        check_port_free(host, port)
    home = workspace_dir.expanduser().resolve()
    if home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARKER).exists():
            fail(f"{home} exists and is not a demo workspace; choose another folder with --workspace")
        shutil.rmtree(home)
    init_workspace(home).close()
    (home / DEMO_MARKER).write_text("created by `qunflow demo`; the next demo run replaces this folder\n")
    settings_file = home / "qunflow.toml"
    text = settings_file.read_text(encoding="utf-8").replace(
        'public_url = "http://127.0.0.1:8000"', f'public_url = "http://{host}:{port}"')
    settings_file.write_text(text + '# The demo trades power-cut durability for speed (see README).\n'
                             'sqlite_synchronous = "normal"\n', encoding="utf-8")
    ws = open_workspace(home)
    simulation = Simulation(ws, days=days, seed=seed, automate=automate)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    if console.is_terminal:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("simulating days", total=days, detail="")

            def on_day(done: int) -> None:
                s = simulation.stats
                progress.update(task, completed=done, detail=f"{s.joins} joins, {s.orders} orders")

            stats = simulation.run(on_day)
    else:  # a log file or a pipe: a plain line per simulated day instead of a bar nobody sees
        stats = simulation.run(lambda done: print_day(done, days, simulation.stats))
    console.print(f"Simulated {days} days from {simulation.start} to {simulation.end}: {stats.visitors} visitors, "
                  f"{stats.gate_passes} gate passes, {stats.joins} joins, {stats.messages} group messages, "
                  f"{stats.orders} orders, {stats.invites} invites, "
                  f"{stats.no_room} on the waitlist (no room along the fallback order).")
    if automate:
        print_automation(ws, stats)
    print_headline(ws, simulation.start, simulation.end)
    if automate:  # the S1 welcome-text experiment the demo ran (docs/experiments.md)
        print_experiment(ws, simulation.end - timedelta(days=1))
    token = create_token(ws.engine, "demo", sorted(TOKEN_SCOPES))
    password = secrets.token_urlsafe(12)
    add_user(ws.engine, "demo", "owner", password)
    console.print(f"\nWorkspace: {home}\nAPI token (every scope, shown once): {token}\n"
                  f"Console login (owner, shown once): demo / {password}", highlight=False)
    if serve:
        from qunflow.services.runtime import serve_workspace

        console.print(f"Console: {console_url(ws, host, port)}   (Ctrl+C to stop)", highlight=False)
        serve_workspace(ws, host=host, port=port)


def print_day(done: int, days: int, stats: Any) -> None:
    """One progress line (flushed at once) for output that is not a terminal."""
    print(f"simulated day {done}/{days}: {stats.joins} joins, {stats.orders} orders", flush=True)


def register(app: typer.Typer) -> None:
    app.command()(demo)
