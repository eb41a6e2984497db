"""Member search and the member page at scale (issue 13): p50/p99 of qunflow's calls next to a floor, the
same lookups in plain SQL on the same SQLite file, in the same run.

Data: --members members, each with a shop id (member_keys external_id), a phone hash (member_keys phone), a
Chinese name in the name index (member_name_keys: the keyed hashes of its parts, as services/privacy
writes them), a `joined`, two `message` and an `order` event; one sealed profile is shared by all (sealing a
million is slow and changes nothing read here). Searches: by external id, by phone number, by the two-character
given name (hundreds of members share each: the newest 20 are shown), and the member page.
Run: python bench/bench_members.py [--members 1000000] [--queries 300]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BATCH = 50_000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def phone_of(k: int) -> str:
    return f"139{k:08d}"


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建文斌宇浩凯"


def given_of(k: int) -> str:
    return GIVEN[k % len(GIVEN)] + GIVEN[(k // len(GIVEN)) % len(GIVEN)]


def name_of(k: int) -> str:
    return SURNAMES[(k // len(GIVEN) ** 2) % len(SURNAMES)] + given_of(k)


def populate(ws: Any, count: int) -> None:
    from functools import cache

    from sqlalchemy import insert

    from qunflow.domain.privacy import name_fragments
    from qunflow.services.fraud import phone_key
    from qunflow.services.privacy import name_key, seal
    from qunflow.store.tables import events, groups, member_keys, member_name_keys, members

    keyed = cache(lambda part: name_key(ws, part))

    now = datetime(2026, 1, 1)
    profile = seal(ws, {"name": "王小明"})
    with ws.engine.begin() as conn:
        group_id = conn.execute(insert(groups).values(
            key="g1", name="g1", platform="sandbox", external_id="chat-1", tier="newbie", capacity=10**7,
            member_count=0, active=True, created_at=now)).inserted_primary_key[0]
    for start in range(0, count, BATCH):
        ids = range(start, min(count, start + BATCH))
        with ws.engine.begin() as conn:
            conn.execute(insert(members), [{"id": f"m_{k:016x}", "profile": profile, "tier": "newbie", "locale": "zh",
                                            "group_id": group_id, "created_at": now, "joined_at": now} for k in ids])
            conn.execute(insert(member_keys), [
                row for k in ids for row in (
                    {"kind": "external_id", "key": f"shop-{k}", "member_id": f"m_{k:016x}", "linked_at": now,
                     "source": "bench"},
                    {"kind": "phone", "key": phone_key(ws, phone_of(k)), "member_id": f"m_{k:016x}",
                     "linked_at": now, "source": "bench"})])
            conn.execute(insert(member_name_keys), [{"member_id": f"m_{k:016x}", "key": keyed(part)}
                                                    for k in ids for part in name_fragments(name_of(k))])
            conn.execute(insert(events), [
                {"event_id": f"{kind}-{k}", "type": kind.rstrip("12"), "ts": now + timedelta(minutes=m),
                 "member_id": f"m_{k:016x}", "channel": "xhs" if kind == "joined" else None,
                 "amount": 99 if kind == "order" else None, "received_at": now}
                for k in ids for m, kind in enumerate(("joined", "message1", "message2", "order"))])


def timed(call: Callable[[int], Any], picks: list[int]) -> tuple[list[float], list[Any]]:
    times, results = [], []
    for k in picks:
        began = time.perf_counter()
        results.append(call(k))
        times.append((time.perf_counter() - began) * 1000)
    return times, results


def run(members: int, queries: int, seed: int = 7) -> dict[str, Any]:
    """The measurements as {name: {"ours": (p50, p99), "floor": (p50, p99)}}, checking both find the same."""
    from qunflow.services.fraud import phone_key
    from qunflow.services.member_records import SEARCH_LIMIT, member_record, search_members
    from qunflow.services.privacy import query_key
    from qunflow.workspace import init_workspace

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as home:
        ws = init_workspace(Path(home) / "ws")
        try:
            began = time.perf_counter()
            populate(ws, members)
            load = time.perf_counter() - began
            raw = sqlite3.connect(str(ws.engine.url.database))
            picks = [rng.randrange(members) for _ in range(queries)]
            out: dict[str, Any] = {"load_seconds": load}
            cases: list[tuple[str, Callable[[int], Any], Callable[[int], Any]]] = [
                ("search by external id",
                 lambda k: [m["member_id"] for m in search_members(ws, f"shop-{k}", limit=1)],
                 lambda k: [r[0] for r in raw.execute(
                     "SELECT member_id FROM member_keys WHERE kind='external_id' AND key=?", (f"shop-{k}",))]),
                ("search by phone",
                 lambda k: [m["member_id"] for m in search_members(ws, phone_of(k), limit=1)],
                 lambda k: [r[0] for r in raw.execute(
                     "SELECT member_id FROM member_keys WHERE kind='phone' AND key=?", (phone_key(ws, phone_of(k)),))]),
                ("search by given name",
                 lambda k: sorted(m["member_id"] for m in search_members(ws, given_of(k))),
                 lambda k: sorted(r[0] for r in raw.execute(
                     "SELECT member_id FROM member_name_keys WHERE key=? ORDER BY id DESC LIMIT ?",
                     (query_key(ws, given_of(k)), SEARCH_LIMIT)))),
                ("member page",
                 lambda k: sum(item.get("count", 1) for item in member_record(
                     ws, f"m_{k:016x}", with_profile=True)["timeline"]),
                 lambda k: len(raw.execute("SELECT * FROM members WHERE id=?", (f"m_{k:016x}",)).fetchall()
                               and raw.execute("SELECT * FROM events WHERE member_id=? ORDER BY seq DESC LIMIT 500",
                                               (f"m_{k:016x}",)).fetchall())),
            ]
            for name, ours, floor in cases:
                ours_times, ours_found = timed(ours, picks)
                floor_times, floor_found = timed(floor, picks)
                if ours_found != floor_found:
                    raise SystemExit(f"{name}: qunflow and the floor disagree")
                out[name] = {"ours": (percentile(ours_times, 0.5), percentile(ours_times, 0.99)),
                             "floor": (percentile(floor_times, 0.5), percentile(floor_times, 0.99))}
            raw.close()
        finally:
            ws.close()
    return out


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    results = run(args.members, args.queries)
    load = results.pop("load_seconds")
    table = Table(title=f"members: {args.members}, queries: {args.queries} (ms; data loaded in {load:.0f} s)")
    for column in ("", "qunflow p50", "qunflow p99", "floor p50", "floor p99", "p99 goal"):
        table.add_column(column)
    for name, value in results.items():
        floor = value["floor"]
        table.add_row(name, f"{value['ours'][0]:.2f}", f"{value['ours'][1]:.2f}",
                      f"{floor[0]:.3f}" if floor else "-", f"{floor[1]:.3f}" if floor else "-", "< 100")
    Console().print(table)


if __name__ == "__main__":
    main()
