"""Outbound sync to a CRM: what it costs a worker round when idle, how fast it queues, how fast it posts.

A workspace with N subscribed events (half of them `level_changed`, subscribed; half `message`, not) and a
loopback receiver that checks every signature. Figures: the idle round (nothing new: the price every
half-second round pays), queueing (events/s from the log into deliveries), posting (deliveries/s, signed,
claimed and recorded) against a floor: bare httpx.post calls of the same bodies to the same receiver.
Run: python bench/bench_sync.py [--events 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SECRET = "bench-secret"
ENV = "QUNFLOW_BENCH_CRM_SECRET"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    os.environ[ENV] = SECRET

    from tests.webhook import Webhook

    from qunflow.domain.sync import SyncTarget, verify
    from qunflow.services.ingest import ingest_batch
    from qunflow.services.sync import deliver, queue, sync_round
    from qunflow.workspace import init_workspace

    with tempfile.TemporaryDirectory() as tmp, Webhook() as hook:
        ws = init_workspace(Path(tmp) / "ws")
        target = SyncTarget(url=hook.url, events=["level_changed"], secret_env=ENV)
        ws.settings = ws.settings.model_copy(update={"sync": {"crm": target}})
        rows = [{"event_id": f"e-{i}", "type": "level_changed" if i % 2 else "message", "member_id": f"m_{i}",
                 "ts": "2026-03-02T09:00:00+08:00", "properties": {"from": "new", "to": "active"}}
                for i in range(args.events)]
        ingest_batch(ws.engine, rows)
        subscribed = args.events // 2

        started = time.perf_counter()
        queued = queue(ws)
        queue_s = time.perf_counter() - started
        assert queued == subscribed, queued

        started = time.perf_counter()
        sent = 0
        while sent < subscribed:
            sent += deliver(ws, limit=500, budget=60.0).sent
        post_s = time.perf_counter() - started
        assert all(verify(SECRET, h["x-qunflow-timestamp"], raw, h["x-qunflow-signature"], time.time())
                   for raw, h in zip(hook.raw, hook.headers, strict=True))

        idle_rounds = 200
        started = time.perf_counter()
        for _ in range(idle_rounds):
            sync_round(ws)
        idle_ms = (time.perf_counter() - started) / idle_rounds * 1000

        bodies = hook.raw[:subscribed]
        with httpx.Client() as client:
            started = time.perf_counter()
            for raw in bodies:
                client.post(hook.url, content=raw, headers={"content-type": "application/json"}, timeout=5.0)
            floor_s = time.perf_counter() - started
        ws.close()

    print(f"events in the log        {args.events:>10,}  (subscribed: {subscribed:,})")
    print(f"idle worker round        {idle_ms:>10.2f} ms  (cursor read + max(seq); nothing new)")
    print(f"queue                    {subscribed / queue_s:>10,.0f} events/s  ({queue_s * 1000:.0f} ms)")
    print(f"post, signed + recorded  {subscribed / post_s:>10,.0f} deliveries/s  ({post_s:.2f} s)")
    print(f"floor: one httpx.Client  {subscribed / floor_s:>10,.0f} posts/s  ({floor_s:.2f} s)")


if __name__ == "__main__":
    main()
