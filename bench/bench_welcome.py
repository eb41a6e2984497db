"""Join -> welcome DM on the sandbox: latency per join at a steady arrival rate.

Each join goes through the whole path: the platform's signed join update, attribution to the gate
pass, the `joined` event, the DM (recorded before and after the platform call), the group menu and
the Day-1 tasks. Joins arrive on a fixed schedule and are handled one after another in one process,
so "queueing included" counts from each join's arrival: when one process cannot keep up with the
rate, that column grows and shows it. The baseline in the same run is the bare platform: a DM with
nothing around it.
Run: python bench/bench_welcome.py [--rate 100] [--seconds 10] [--welcome FILE]
(--welcome applies a `kind: welcome` file first, e.g. src/qunflow/playbooks/s1_welcome.yaml: the join path
then reads the applied version instead of the built-in default.)
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
    parser.add_argument("--rate", type=float, default=100.0, help="joins per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--welcome", type=Path, help="a kind: welcome file to apply first")
    args = parser.parse_args()
    from tests.integration.test_join_flow import FORM

    from qunflow.services.join import submit_gate
    from qunflow.workspace import init_workspace

    total = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        from qunflow.services import catalog

        catalog.add_channel(ws, "ads", "ad")
        catalog.add_gate(ws, "seed")
        for n in range(max(1, total // 500 + 1)):
            catalog.add_group(ws, f"newbie-{n}", "newbie", 500)
        catalog.add_entry_point(ws, "ads-1", "ads", target_tier="newbie", gate="seed")
        if args.welcome:
            from qunflow.services.playbooks import apply_playbooks

            apply_playbooks(ws, [args.welcome])
        form = {**FORM, "stage": "learning", "experience": "no"}
        tickets = [submit_gate(ws, "ads-1", f"v{i}", form) for i in range(total)]
        world = ws.sandbox
        # Lift the sandbox's Telegram-like limits (30 msg/s per bot): this measures qunflow, not the quota.
        world.limits.bot_per_second = 1_000_000
        latencies, waited, baseline = [], [], []
        started = time.perf_counter()
        for i, ticket in enumerate(tickets):
            due = started + i / args.rate  # when this join arrives; a late start is time spent queueing
            while time.perf_counter() < due:
                time.sleep(max(0.0, due - time.perf_counter()))
            t0 = time.perf_counter()
            world.join(f"u{i}", f"Member {i}", ticket.invite_url.rsplit("/", 1)[1])
            done = time.perf_counter()
            latencies.append((done - t0) * 1000)
            waited.append((done - due) * 1000)
        elapsed = time.perf_counter() - started
        sent = world.counts()["direct_messages"]
        for i in range(total):  # the floor, after the joins so that it does not hold them up
            t1 = time.perf_counter()
            world.bot_send_dm(f"u{i}", "baseline")
            baseline.append((time.perf_counter() - t1) * 1000)
        ws.close()

    welcome = f"welcome {args.welcome.name}" if args.welcome else "built-in welcome"
    table = Table(title=f"Join -> welcome DM, {total:,} joins at {args.rate:g}/s for {elapsed:.1f} s "
                        f"(SQLite synchronous=FULL, 2 cores, {welcome})")
    for column in ("path", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    rows = (("join update -> DM sent (qunflow)", latencies),
            ("arrival -> DM sent, queueing included (qunflow)", waited), ("bare platform DM (floor)", baseline))
    for label, values in rows:
        table.add_row(label, f"{statistics.median(values):.1f}", f"{percentile(values, 0.99):.1f}",
                      f"{max(values):.1f}")
    Console(width=120).print(table)
    capacity = 1000 / statistics.mean(latencies)
    print(f"welcome DMs sent: {sent} of {total}; joins handled at {total / elapsed:.1f}/s of {args.rate:g}/s "
          f"offered; one process handles at most {capacity:.0f} joins/s (1 / mean time per join)")


if __name__ == "__main__":
    main()
