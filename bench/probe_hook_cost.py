"""What `qunflow serve` spends on a webhook request outside the handler, measured so that other load on the
machine hardly moves it: serve's CPU seconds (user + system, from /proc) per 1,000 requests over a loopback
keep-alive connection, one request after another.

In the same run, against one workspace with Telegram connected in webhook mode:
- `hook, duplicate`: POST /hooks/telegram with an update it handled before (same update_id): the whole web
  path (uvicorn, the middlewares, the route, the body, the thread hand-off) around the cheapest handler call;
- `handler alone`: that same call to services.inbound.receive in this process (time.thread_time), so the web
  path's own cost is the difference;
- `hook, bad secret`: the 401 path;
- `GET /healthz`: the app's smallest route;
- `uvicorn floor`: a bare ASGI app answering 200 under uvicorn with the same access log: what no app can save;
- `idle`: serve's CPU per second with no request (its background loops), charged to the same wall time.

Run: python bench/probe_hook_cost.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_connectors import cli, free_port, make_workspace, stop, wait_until  # noqa: E402

SECRET = "probe-secret"
TICKS = os.sysconf("SC_CLK_TCK")
SERVE = "from qunflow.cli.main import main; main()"
# The floor: a bare ASGI app under uvicorn with serve's own logging settings (the access log, redacted).
FLOOR = r'''
import sys, uvicorn
from qunflow.web.access_log import log_config

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b""})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info", proxy_headers=False,
            log_config=log_config())
'''
UPDATE = {"update_id": 1, "message": {"message_id": 1, "date": 1_700_000_000, "text": "hello",
                                      "chat": {"id": -100123, "type": "supergroup", "title": "Newbies"},
                                      "from": {"id": 42, "is_bot": False, "first_name": "Ann"}}}


def cpu_of(pid: int) -> float:
    """A process's CPU seconds so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextmanager
def process(args: list[str], log: Path, port: int, ready: str = "/healthz") -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is None and httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=1
                                                             ).status_code < 500, 120, args[1])
        yield proc
    finally:
        stop(proc)


def per_1000(pid: int, requests: int, call: Callable[[], httpx.Response], status: int,
             idle_per_s: float = 0.0) -> float:
    """CPU ms per request of `pid` (times 1,000: CPU s per 1,000), the idle cost over the same time taken off."""
    for _ in range(50):  # warm
        call()
    cpu, wall = cpu_of(pid), time.monotonic()
    for _ in range(requests):
        answer = call()
        assert answer.status_code == status, (answer.status_code, answer.text[:200])
    spent = cpu_of(pid) - cpu - idle_per_s * (time.monotonic() - wall)
    return spent / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    from tests.fakes.telegram_server import TOKEN, FakeTelegram

    from qunflow.services.inbound import receive
    from qunflow.workspace import open_workspace

    results: dict[str, float] = {}
    headers = {"content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET}
    body = json.dumps(UPDATE).encode()
    with tempfile.TemporaryDirectory(prefix="qunflow-hook-") as name, FakeTelegram() as fake:
        home, port = Path(name) / "ws", free_port()
        url = f"http://127.0.0.1:{port}"
        make_workspace(home, url, "full")
        cli(home, "connect", "telegram", "--bot-token", TOKEN, "--api-base", fake.api_base, "--mode", "webhook",
            "--webhook-secret", SECRET)
        with fake._lock:
            fake.webhook = None  # nothing is delivered by the fake: the probe makes the calls
        serve = ["-c", SERVE, "serve", "--port", str(port), "--workspace", str(home)]
        with process(serve, home / "serve.log", port) as proc, httpx.Client(base_url=url, timeout=10) as http:
            assert http.post("/hooks/telegram", content=body, headers=headers).status_code == 200
            time.sleep(1.0)  # the first background rounds (recovery, sandbox) are over
            before = cpu_of(proc.pid)
            time.sleep(args.idle_seconds)
            idle = (cpu_of(proc.pid) - before) / args.idle_seconds
            results["idle: serve CPU ms per second"] = idle * 1000
            results["hook, duplicate"] = per_1000(proc.pid, args.requests, lambda: http.post(
                "/hooks/telegram", content=body, headers=headers), 200, idle)
            bad = {**headers, "x-telegram-bot-api-secret-token": "wrong"}
            results["hook, bad secret (401)"] = per_1000(proc.pid, args.requests, lambda: http.post(
                "/hooks/telegram", content=body, headers=bad), 401, idle)
            results["GET /healthz"] = per_1000(proc.pid, args.requests, lambda: http.get("/healthz"), 200, idle)
        ws = open_workspace(home)
        for _ in range(50):
            receive(ws, "telegram", "POST", {}, headers, body)
        cpu = time.thread_time()
        for _ in range(args.requests):
            receive(ws, "telegram", "POST", {}, headers, body)
        results["handler alone (duplicate, in process)"] = (time.thread_time() - cpu) / args.requests * 1000
        ws.close()
        floor_port = free_port()
        with process(["-c", FLOOR, str(floor_port)], home / "floor.log", floor_port, "/") as proc, httpx.Client(
                base_url=f"http://127.0.0.1:{floor_port}", timeout=10) as http:
            results["uvicorn floor (bare ASGI app)"] = per_1000(proc.pid, args.requests, lambda: http.post(
                "/hooks/telegram", content=body, headers=headers), 200)
    results["web path around the handler (duplicate - handler alone)"] = (
        results["hook, duplicate"] - results["handler alone (duplicate, in process)"])
    for label, value in results.items():
        unit = "" if label.startswith("idle") else " CPU s per 1,000 requests"
        print(f"{label:58} {value:7.2f}{unit}")
    print(f"load average {'/'.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
