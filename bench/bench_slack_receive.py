"""The Slack connector's own cost per Events API call, next to the bare v0 signature check in the same run.

`SlackConnector.receive` checks the signature and timestamp, parses the envelope and, for a DM, looks the
join code up in `slack_codes.json` (read from disk on each call, so several processes see each other's
codes). The baseline is the HMAC-SHA256 check alone on the same bodies. No network: both run in-process.

Run: python bench/bench_slack_receive.py [--events 5000] [--codes 200]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from qunflow.connectors.base import Host
from qunflow.connectors.slack.connector import SlackConnector
from qunflow.connectors.slack.settings import SlackSettings

SECRET = "0123456789abcdef0123456789abcdef"


def sign(body: bytes, stamp: str) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--codes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = SlackSettings(bot_token="xoxb-bench-0000-abcdefgh", signing_secret=SECRET,
                                 api_base="http://127.0.0.1:9/api", team_id="T0BENCH01", app_id="A0BENCH01")
        host = Host(public_url="http://127.0.0.1:9", home=Path(home),
                    clock=lambda: datetime.now(UTC).replace(tzinfo=None), secret="s")
        slack = SlackConnector(settings, host)
        for i in range(args.codes):
            slack.create_invite(f"C{i:08d}", f"code-{i}")
        stamp = str(int(time.time()))
        bodies = []
        for i in range(args.events):
            event = ({"type": "message", "channel": "D0BENCH", "user": f"U{i:08d}", "text": "hello",
                      "ts": f"{i}.000001", "channel_type": "im"} if i % 2 else
                     {"type": "member_joined_channel", "user": f"U{i:08d}", "channel": "C00000001",
                      "channel_type": "C", "team": "T0BENCH01"})
            bodies.append(json.dumps({"type": "event_callback", "event_id": f"Ev{i}", "event_time": int(stamp),
                                      "event": event}).encode())
        signed = [(body, sign(body, stamp)) for body in bodies]

        started = time.perf_counter()
        for body, headers in signed:
            expected = sign(body, headers["X-Slack-Request-Timestamp"])["X-Slack-Signature"]
            assert hmac.compare_digest(expected, headers["X-Slack-Signature"])
        baseline = (time.perf_counter() - started) / len(signed)

        started = time.perf_counter()
        for body, headers in signed:
            assert slack.receive("POST", {}, headers, body).updates
        full = (time.perf_counter() - started) / len(signed)
    print(f"events: {args.events}, codes on file: {args.codes}")
    print(f"baseline (v0 HMAC check only): {baseline * 1e6:8.1f} us/event")
    print(f"SlackConnector.receive:        {full * 1e6:8.1f} us/event ({full / baseline:.1f}x the baseline)")


if __name__ == "__main__":
    main()
