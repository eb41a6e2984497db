"""Discord join -> welcome DM, through the Gateway, against the local fake (tests/fakes/discord_server.py).

Each join: the fake moves the invite's use count and dispatches GUILD_MEMBER_ADD over the WebSocket; hikari
hands the payload to the connector's queue; `poll_once` (what `qunflow serve` runs) attributes it by
reading the server's invites (one REST call), records the join and sends the welcome DM (open the DM
channel, post with a nonce) and the group menu. Joins come one at a time (each waits for the previous
DM), so attribution is never ambiguous and the figures are per join.
The baseline in the same run is the bare transport: a MESSAGE_CREATE dispatched by the fake until the
connector's poll returns it (Gateway + thread hand-over, no REST, no database).
Run: python bench/bench_discord.py [--joins 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--joins", type=int, default=50)
    args = parser.parse_args()
    from tests.fakes.discord_server import TOKEN, FakeDiscord
    from typer.testing import CliRunner

    from qunflow.cli.main import app
    from qunflow.connectors.base import MessagePosted
    from qunflow.services.runtime import poll_once
    from qunflow.workspace import init_workspace

    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp, FakeDiscord(bucket_limit=1000) as fake:
        ws = init_workspace(Path(tmp) / "ws")

        def cli(*words: str) -> None:
            result = runner.invoke(app, [*words, "--workspace", str(ws.home)])
            assert result.exit_code == 0, result.stdout

        guild = fake.make_guild("Newbies")
        cli("connect", "discord", "--bot-token", TOKEN, "--api-base", fake.api_base)
        cli("group", "add", "newbie-1", "--tier", "newbie", "--platform", "discord", "--external-id", guild)
        cli("channel", "add", "ads", "--kind", "ad")
        cli("entry", "add", "dc-ads", "--channel", "ads", "--platform", "discord")
        connector = ws.connector("discord")
        link = connector.create_invite(guild, "dc-ads")
        connector.start_gateway()  # type: ignore[attr-defined]
        fake.wait_identified()

        transport: list[float] = []
        speaker = fake.person("Speaker")
        for _ in range(args.joins):
            started = time.perf_counter()
            fake.say(speaker, "hello", guild)
            while not any(isinstance(u, MessagePosted) for u in connector.poll(1.0)):  # type: ignore[attr-defined]
                pass
            transport.append(time.perf_counter() - started)

        joins: list[float] = []
        for n in range(args.joins):
            person = fake.person(f"P{n}")
            started = time.perf_counter()
            fake.join(person, link.url)
            while len(fake.sent(private=True)) <= n:
                poll_once(ws, connector, 1.0)
            joins.append(time.perf_counter() - started)
        invite_reads = len(fake.calls("GET /guilds/{id}/invites"))
        connector.close()  # type: ignore[attr-defined]
        ws.close()

    table = Table(title=f"Discord, {args.joins} joins one at a time (ms)")
    for column in ("path", "p50", "p95", "max", "mean"):
        table.add_column(column)
    for name, values in (("baseline: MESSAGE_CREATE -> poll", transport),
                         ("join -> attributed -> welcome DM", joins)):
        ms = [v * 1000 for v in values]
        table.add_row(name, f"{percentile(ms, 0.5):.1f}", f"{percentile(ms, 0.95):.1f}", f"{max(ms):.1f}",
                      f"{statistics.fmean(ms):.1f}")
    Console().print(table)
    print(f"invite reads for attribution: {invite_reads} for {args.joins} joins")


if __name__ == "__main__":
    main()
