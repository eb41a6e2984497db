"""Telegram and WeCom connectors end to end, against the local fake platforms: latency per person at a steady
arrival rate, queueing included, next to the fake platform's own cost measured in the same run.

Telegram: people open the entry point's join-request link (from its landing page /j/CODE) on a fixed
schedule; FakeTelegram POSTs each chat_join_request to /hooks/telegram, one update at a time and in order as
Telegram does per bot (the approvals' chat_member and service-message updates queue behind them, as they
would); qunflow sends the welcome DM to user_chat_id, then approves. Timed: arrival (when the person opened
the link) -> sendMessage arriving at the fake, and -> approveChatJoinRequest arriving at the fake.
WeCom: add_external_contact callbacks (encrypted and signed by FakeWeCom) on a fixed schedule; qunflow
answers each with send_welcome_msg. Timed: arrival -> send_welcome_msg arriving at the fake. FakeWeCom
makes a callback synchronously, so a scheduler submits each one at its due time to a pool of threads: a
slow callback holds up only its own thread, and one that waits for a free thread is late from its due
time, which counts (arrival is the due time).

qunflow runs as `qunflow serve` in a subprocess: the real deployment path (uvicorn, the web app and the
background loops a real install runs next to it: shipper and automation), in its own process and GIL, so
the fake platform, the load driver and the floor are not charged to qunflow and do not slow it down.
The floor, per platform, is the fake's own cost: the same calls made straight to the fake with httpx at the
same rate and timed the same way; for WeCom also the encrypted callback round trip to a handler (uvicorn,
also a subprocess) that only checks the signature and decrypts.
Where the time goes: the serve process times its handler's stages (a wrapper around the web hook, the
connector's receive, each inbound handler, the platform calls, SQL and commits, the background loops) and
prints the top costs, then serve's CPU seconds per 1,000 joins (little moved by other load on the machine):
the timers run in serve's parent process only, so the CPU of every serve process (the parent and, with
--workers N, its web processes) is also read from /proc around the arrivals and the drain. On PostgreSQL
a sampler (pg_locks, pg_stat_activity every 10 ms) says how much of the run the event log's lock
(store/eventlog.py) was held and how many backends waited for it. --profile adds a short cProfile run of
the handler and prints its top functions.

Run: python bench/bench_connectors.py [--platform telegram|wecom|both] [--rate 100] [--seconds 10]
     [--sqlite-synchronous full|normal] [--postgres ADMIN_URL [--workers N]] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_MS = 100.0
DRAIN_STALL = 20.0  # give up waiting for the backlog when nothing moved for this long
WECOM_THREADS = 64  # callback senders: enough for 100/s even when each callback takes ~0.5 s
console = Console(width=132)

# Runs `qunflow serve` with timers around the stages of the webhook path (and, with QF_BENCH_PROFILE, a
# cProfile of each webhook handler call), written as JSON (and a pstats file) when serve exits.
SERVE = r'''
import atexit, cProfile, json, os, pstats, resource, threading, time
from collections import defaultdict

_lock, _local = threading.Lock(), threading.local()
_stages = defaultdict(lambda: [0, 0.0, 0.0])  # name -> [calls, inclusive s, exclusive s]
_profiles = []
_cpu = []  # CPU seconds (the process's, the event loop thread's) at the first webhook call, after the last


def _cpu_seconds():
    """Called on the event loop's thread: the process's CPU seconds, and that thread's own."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, time.thread_time()


def _timed(name, fn, cpu=False):
    """Calls, inclusive and own wall time; with cpu, the thread's CPU seconds in place of the own time."""
    def timed(*args, **kwargs):
        stack = _local.__dict__.setdefault("stack", [])
        stack.append(0.0)
        start, thread_start = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = time.perf_counter() - start
            inner = stack.pop()
            if stack:
                stack[-1] += spent
            with _lock:
                row = _stages[name]
                row[0] += 1; row[1] += spent; row[2] += time.thread_time() - thread_start if cpu else spent - inner
    return timed


def _stage_of(request):
    path = request.url.path
    return "platform call " + path.rsplit("/", 2)[-1] if "/bot" in path else "platform call " + path.replace(
        "/cgi-bin/", "")


def _install():
    import httpx
    import sqlalchemy.engine.base as sa_base
    import qunflow.analytics.shipper as shipper
    import qunflow.services.automation as automation
    import qunflow.services.inbound as inbound
    import qunflow.web.app as web_app
    import qunflow.web.hooks as hooks
    from qunflow.connectors.telegram.connector import TelegramConnector
    from qunflow.connectors.wecom.connector import WeComConnector

    handler = _timed("webhook handler (receive + dispatch, in the threadpool)", hooks.handle)
    if os.environ.get("QF_BENCH_PROFILE"):
        timed_handler = handler

        def handler(*args, **kwargs):
            profile = cProfile.Profile()
            try:
                return profile.runcall(timed_handler, *args, **kwargs)
            finally:
                with _lock:
                    _profiles.append(profile)
    hooks.handle = handler
    for cls in (TelegramConnector, WeComConnector):
        cls.receive = _timed(f"{cls.platform}: verify + parse (connector.receive)", cls.receive)
    inbound._handled_before = _timed("dispatch: seen-before check (inbound_updates)", inbound._handled_before)
    for kind, handlers in list(inbound.HANDLERS.items()):
        inbound.HANDLERS[kind] = tuple(
            _timed(f"handler {h.__module__.rsplit('.', 1)[-1]}.{h.__name__}", h) for h in handlers)
    send = httpx.Client.send

    def timed_send(self, request, **kwargs):
        return _timed(_stage_of(request), send)(self, request, **kwargs)
    httpx.Client.send = timed_send
    if hasattr(sa_base.Connection, "_commit_impl"):
        sa_base.Connection._commit_impl = _timed("SQLite commit", sa_base.Connection._commit_impl)
    if hasattr(sa_base.Connection, "_execute_context"):
        sa_base.Connection._execute_context = _timed("SQL statements", sa_base.Connection._execute_context)
    shipper.ship = _timed("background: shipper loop", shipper.ship, cpu=True)
    automation.work_once = _timed("background: automation loop", automation.work_once, cpu=True)
    make_app = web_app.create_app

    def create_app(workspace):
        app = make_app(workspace)

        async def timed_app(scope, receive, send):
            if scope["type"] != "http" or not scope["path"].startswith("/hooks/"):
                return await app(scope, receive, send)
            start = time.perf_counter()
            if not _cpu:
                _cpu.append(_cpu_seconds())

            async def sent(message):
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    with _lock:
                        row = _stages["web request /hooks (web stack, body, threadpool, handler)"]
                        row[0] += 1; row[1] += time.perf_counter() - start
                        _cpu[1:] = [_cpu_seconds()]
            return await app(scope, receive, sent)
        return timed_app
    web_app.create_app = create_app


def _dump():
    with open(os.environ["QF_BENCH_STAGES"], "w") as out:
        cpu = {"serve CPU": [0, _cpu[-1][0] - _cpu[0][0], 0.0],
               "event loop thread CPU": [0, _cpu[-1][1] - _cpu[0][1], 0.0]} if len(_cpu) > 1 else {}
        json.dump({**_stages, **cpu}, out)
    if _profiles:
        stats = pstats.Stats(_profiles[0])
        for profile in _profiles[1:]:
            stats.add(profile)
        stats.dump_stats(os.environ["QF_BENCH_PROFILE"])


_install()
atexit.register(_dump)
from qunflow.cli.main import main
main()
'''


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def pace(total: int, rate: float) -> Iterator[tuple[int, float]]:
    """(i, due) for each arrival, returning at its due time (time.monotonic())."""
    started = time.monotonic() + 0.2
    for i in range(total):
        due = started + i / rate
        while (left := due - time.monotonic()) > 0:
            time.sleep(left)
        yield i, due


def cli(home: Path, *args: str) -> str:
    from typer.testing import CliRunner

    from qunflow.cli.main import app

    result = CliRunner().invoke(app, [*args, "--workspace", str(home)])
    out = result.stdout + (result.stderr if result.stderr_bytes else "")
    if result.exit_code != 0:
        raise RuntimeError(f"qunflow {' '.join(args[:2])} failed: {out.strip()}")
    return out


@contextmanager
def state_database(admin_url: str | None) -> Iterator[None]:
    """With --postgres: a fresh PostgreSQL database for one run (QUNFLOW_DATABASE_URL, which `qunflow serve`
    inherits), dropped afterwards. Without: the workspace's SQLite file."""
    if admin_url is None:
        yield
        return
    from sqlalchemy import create_engine, text

    from qunflow.store.db import normalise_url

    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"qf_bench_{os.getpid()}_{int(time.time())}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    os.environ["QUNFLOW_DATABASE_URL"] = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield
    finally:
        os.environ.pop("QUNFLOW_DATABASE_URL", None)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_workspace(home: Path, url: str, synchronous: str) -> None:
    from qunflow.workspace import init_workspace

    init_workspace(home).close()
    settings = home / "qunflow.toml"
    text = settings.read_text().replace('public_url = "http://127.0.0.1:8000"', f'public_url = "{url}"')
    # qunflow's own send limits lifted like the fake's: Telegram allows a bot about 30 messages a second in
    # all, so 100 welcomes a second would otherwise queue behind qunflow's limiter (as they must in real
    # life); the bench measures qunflow's own cost per person.
    settings.write_text(text + f'sqlite_synchronous = "{synchronous}"\n\n'
                        "[qunflow.rate_limits.telegram]\nbot = [100000, 1]\nuser = [100000, 1]\n")


@dataclass
class Served:
    """`qunflow serve` in a subprocess, with the stage timers (and the profiler when asked)."""

    home: Path
    port: int
    profile: Path | None = None
    workers: int = 1
    stages: dict[str, list[float]] = field(default_factory=dict)
    pid: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def running(self) -> Iterator[Served]:
        env = {**os.environ, "QF_BENCH_STAGES": str(self.home / "stages.json")}
        if self.profile:
            env["QF_BENCH_PROFILE"] = str(self.profile)
        with open(self.home / "serve.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", SERVE, "serve", "--port", str(self.port), "--workspace", str(self.home),
                 "--workers", str(self.workers)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.pid = process.pid
        try:
            wait_until(lambda: process.poll() is None and httpx.get(f"{self.url}/healthz", timeout=1).is_success,
                       120, "qunflow serve")  # several web processes at load 13 took 42 s to start
            yield self
        finally:
            stop(process)
            stages = self.home / "stages.json"
            self.stages = json.loads(stages.read_text()) if stages.exists() else {}
            if process.returncode not in (0, -signal.SIGINT):
                console.print(f"[yellow]qunflow serve exited {process.returncode}; last lines of its log:")
                console.print((self.home / "serve.log").read_text(errors="replace")[-2000:])


def process_cpu(root: int) -> dict[int, float]:
    """CPU seconds (user + system) of `root` and every process below it, by pid, from /proc (Linux)."""
    parents, cpu, _names = _processes()
    tree, grown = {root}, True
    while grown:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        grown = bool(below)
        tree |= below
    return {pid: cpu[pid] for pid in tree if pid in cpu}


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every process named postgres on this machine (the server and its backends, from /proc), by
    pid: what the state database costs, when nothing else uses the server."""
    _parents, cpu, names = _processes()
    return {pid: seconds for pid, seconds in cpu.items() if names.get(pid) == "postgres"}


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """The CPU seconds the processes alive at `after` spent since `before` (a process started since: all of its).
    One that ended between the two readings takes its seconds with it: not counted, rather than subtracted."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _processes() -> tuple[dict[int, int], dict[int, float], dict[int, str]]:
    """Every process's parent, CPU seconds (user + system) and name, by pid, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    names: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                head, tail = stat.read().rsplit(b")", 1)  # the command's name may hold spaces
            fields = tail.split()
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
            names[pid] = head.split(b"(", 1)[1].decode(errors="replace")
    return parents, cpu, names


class LockSampler:
    """How the event log's lock (store/eventlog.py EVENT_LOCK_KEY) is used in one PostgreSQL database: every
    `interval` s, whether a backend holds it and how many wait for it (sampled, so roughly)."""

    QUERY = ("SELECT count(*) FILTER (WHERE l.granted), count(*) FILTER (WHERE NOT l.granted) FROM pg_locks l "
             "JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = %s "
             "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s")

    def __init__(self, url: str, interval: float = 0.01) -> None:
        self.url, self.interval = url, interval
        self.samples = self.held = self.waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)

    def _run(self) -> None:
        import psycopg

        from qunflow.store.eventlog import EVENT_LOCK_KEY

        with psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            name = conn.info.dbname
            while not self._stop.wait(self.interval):
                held, waiting = conn.execute(self.QUERY, (name, EVENT_LOCK_KEY)).fetchone() or (0, 0)
                self.samples += 1
                self.held += bool(held)
                self.waiting += waiting

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@contextmanager
def measured(served: Served, postgres: bool) -> Iterator[dict[str, float]]:
    """While the block runs (the arrivals and the drain): the CPU seconds of serve's parent and of its web
    processes, from /proc; on PostgreSQL also the event lock's share of the time held and the mean number of
    backends waiting for it. Filled in when the block ends."""
    usage: dict[str, float] = {}
    before, started = process_cpu(served.pid), time.monotonic()
    database_before, own_before = postgres_cpu(), _own_cpu()
    with ExitStack() as stack:
        sampler = stack.enter_context(LockSampler(os.environ["QUNFLOW_DATABASE_URL"])) if postgres else None
        yield usage
    after, wall = process_cpu(served.pid), time.monotonic() - started
    if postgres:  # the lock sampler's backend included: one short query every 10 ms
        usage["PostgreSQL CPU s"] = cpu_since(database_before, postgres_cpu())
    usage["bench CPU s"] = _own_cpu() - own_before
    spent = {pid: seconds - before.get(pid, 0.0) for pid, seconds in after.items()}
    usage["parent CPU s"] = spent.pop(served.pid, float("nan"))
    usage["web processes CPU s"] = sum(spent.values())
    usage["web processes"] = len(spent)
    usage["wall s"] = wall
    if sampler is not None and sampler.samples:
        usage["event lock held share"] = sampler.held / sampler.samples
        usage["event lock waiters mean"] = sampler.waiting / sampler.samples


def _own_cpu() -> float:
    """This process's CPU seconds: the fake platform's threads, the arrivals' driver and the samplers."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly; the timers are written at exit
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class Result:
    platform: str
    total: int
    rows: list[tuple[str, list[float], list[float] | None]]  # label, ms per person, floor ms (for the ratio)
    lines: list[str]
    stages: dict[str, list[float]]
    goal: list[float]  # the figures the goal is judged on
    elapsed: float
    usage: dict[str, float] = field(default_factory=dict)  # measured(): every serve process's CPU, the event lock


def drain(progress: Callable[[], int], total: int, seconds: float) -> None:
    """Wait for the backlog, bounded: until all are done, nothing moved for DRAIN_STALL s, or `seconds`."""
    deadline, last, moved = time.monotonic() + seconds, -1, time.monotonic()
    while time.monotonic() < deadline:
        done = progress()
        if done >= total:
            return
        if done != last:
            last, moved = done, time.monotonic()
        elif time.monotonic() - moved > DRAIN_STALL:
            return
        time.sleep(0.1)


# --- Telegram ---
def run_telegram(args: argparse.Namespace, tmp: Path, profile: Path | None = None,
                 seconds: float | None = None) -> Result:
    from tests.fakes.telegram_server import TOKEN, FakeTelegram, Limits

    total = int(args.rate * (seconds or args.seconds))
    # The fake's 30 msg/s per bot would answer most DMs 429 at 100/s: lifted, as bench_welcome lifts the
    # sandbox's, so this measures qunflow and not the quota (per-chat and per-group limits stay).
    limits = Limits(bot_per_second=1_000_000)
    home = tmp / ("tg-profile" if profile else "tg")
    served = Served(home, free_port(), profile, args.workers)
    with ExitStack() as stack:
        stack.enter_context(state_database(args.postgres))
        make_workspace(home, served.url, args.sqlite_synchronous)
        fake = stack.enter_context(FakeTelegram(limits=limits))
        stack.enter_context(served.running())
        chat = fake.make_group("Newbies")
        cli(home, "connect", "telegram", "--bot-token", TOKEN, "--api-base", fake.api_base, "--mode", "webhook")
        cli(home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "telegram", "--external-id", chat,
            "--capacity", str(total + 100))
        cli(home, "channel", "add", "ads", "--kind", "ad")
        cli(home, "entry", "add", "tg-ads", "--channel", "ads", "--platform", "telegram")
        page = httpx.get(f"{served.url}/j/tg-ads", timeout=10)
        link = re.search(r'id="invite" href="([^"]+)"', page.text)
        if link is None:
            raise RuntimeError(f"no invite link on /j/tg-ads ({page.status_code})")
        people = [fake.person(f"Person {i}") for i in range(total)]
        chats = {str(fake.people[int(p)].user_chat_id): i for i, p in enumerate(people)}
        index = {p: i for i, p in enumerate(people)}
        arrival, lag, refused = [0.0] * total, [], 0
        with measured(served, bool(args.postgres)) as usage:
            started = time.monotonic()
            for i, due in pace(total, args.rate):
                arrival[i] = due
                lag.append((time.monotonic() - due) * 1000)
                refused += fake.open_link(people[i], link.group(1)) != "requested"
            elapsed = time.monotonic() - started
            drain(lambda: len(fake.calls("approveChatJoinRequest")), total, 60 + 10 * (seconds or args.seconds))
        dm_at: dict[int, float] = {}
        approved_at: dict[int, float] = {}
        for method, params, at in fake.calls():
            if method == "sendMessage" and str(params.get("chat_id")) in chats:
                dm_at[chats[str(params["chat_id"])]] = at  # the last call: after a 429 the retry is the one
            elif method == "approveChatJoinRequest" and str(params.get("user_id")) in index:
                approved_at.setdefault(index[str(params["user_id"])], at)
        welcomed = len({m["user_id"] for m in fake.sent() if m["private"] and m["user_id"] in index})
        approved = len(fake.members(chat) & set(people))
        refusals = sum(1 for _m, _p, _a in fake.calls("sendMessage")) - len(fake.sent())
        backlog = len(fake.pending_updates())
    dm = [(at - arrival[i]) * 1000 for i, at in dm_at.items()]
    ok = [(at - arrival[i]) * 1000 for i, at in approved_at.items()]
    floor_dm, floor_ok = ([], []) if profile else telegram_floor(args, total, limits)
    return Result("telegram", total, [
        ("qunflow: arrival -> welcome DM (sendMessage at the fake)", dm, floor_dm),
        ("qunflow: arrival -> approval (approveChatJoinRequest at the fake)", ok, floor_ok),
        ("floor: sendMessage straight to the fake, from arrival", floor_dm, None),
        ("floor: then approveChatJoinRequest, from arrival", floor_ok, None)], [
        f"telegram: welcomed {welcomed} of {total}, approved {approved} of {total} (links refused: {refused}; "
        f"calls answered with an error: {refusals}; updates still queued at the fake: {backlog}); "
        f"driver lag max {max(lag):.1f} ms"], served.stages, dm + ok if len(ok) == total else [float("inf")],
        elapsed, usage)


def telegram_floor(args: argparse.Namespace, total: int, limits: object) -> tuple[list[float], list[float]]:
    """The same two calls per person, made straight to a fresh fake (no webhook) with one keep-alive client,
    one person after another, at the same rate: what the fake itself costs."""
    from tests.fakes.telegram_server import TOKEN, FakeTelegram

    text = "Welcome! " + "x" * 400  # about the size of qunflow's welcome
    with FakeTelegram(limits=limits) as fake, httpx.Client(base_url=f"{fake.api_base}/bot{TOKEN}",  # type: ignore[arg-type]
                                                          timeout=15) as http:
        chat = fake.make_group("Floor")
        link = http.post("/createChatInviteLink", json={"chat_id": chat, "creates_join_request": True}).json()
        people = [fake.person(f"Floor {i}") for i in range(total)]
        for person in people:  # pending requests to message and approve (no webhook: the updates stay queued)
            fake.open_link(person, link["result"]["invite_link"])
        arrival = [0.0] * total
        for i, due in pace(total, args.rate):
            arrival[i] = due
            person = fake.people[int(people[i])]
            http.post("/sendMessage", json={"chat_id": person.user_chat_id, "text": text})
            http.post("/approveChatJoinRequest", json={"chat_id": chat, "user_id": person.id})
        calls = fake.calls()
    index = {p: i for i, p in enumerate(people)}
    chats = {str(fake.people[int(p)].user_chat_id): i for i, p in enumerate(people)}
    dm = [(at - arrival[chats[str(p["chat_id"])]]) * 1000 for m, p, at in calls if m == "sendMessage"]
    ok = [(at - arrival[index[str(p["user_id"])]]) * 1000 for m, p, at in calls if m == "approveChatJoinRequest"]
    return dm, ok


# --- WeCom ---
def run_wecom(args: argparse.Namespace, tmp: Path, profile: Path | None = None,
              seconds: float | None = None) -> Result:
    from tests.fakes.wecom_server import FakeWeCom

    total = int(args.rate * (seconds or args.seconds))
    home = tmp / ("wc-profile" if profile else "wc")
    served = Served(home, free_port(), profile, args.workers)
    with ExitStack() as stack:
        stack.enter_context(state_database(args.postgres))
        make_workspace(home, served.url, args.sqlite_synchronous)
        fake = stack.enter_context(FakeWeCom(staff=("zhangsan",)))
        stack.enter_context(served.running())
        group = fake.make_group("zhangsan", "新人群")
        fake.callback_url = f"{served.url}/hooks/wecom"
        fake.callback_client = callback_client(stack)
        cli(home, "connect", "wecom", "--corp-id", fake.corp_id, "--secret", fake.secret, "--callback-token",
            fake.token, "--aes-key", fake.aes_key, "--api-base", fake.api_base)
        cli(home, "group", "add", "newbie-1", "--tier", "newbie", "--platform", "wecom", "--external-id", group)
        cli(home, "channel", "add", "ads", "--kind", "ad")
        cli(home, "entry", "add", "wc-ads", "--channel", "ads", "--platform", "wecom")
        if not httpx.get(f"{served.url}/j/wc-ads", timeout=10).is_success:
            raise RuntimeError("the landing page /j/wc-ads failed")
        [config_id] = [c for c, way in fake.state.contact_ways.items() if way["state"] == "wc-ads"]
        with measured(served, bool(args.postgres)) as usage:
            arrival, answered, errors, elapsed = callbacks(args, total, lambda i: fake.add_contact(
                f"wmBENCH{i:06d}", f"客户{i}", config_id))
            drain(lambda: len(fake.welcome_messages()), total, 30)
        users = {f"wmBENCH{i:06d}": i for i in range(total)}
        welcome_at: dict[int, float] = {}
        for call, at in fake.timed_calls("/cgi-bin/externalcontact/send_welcome_msg"):
            code = fake.state.welcome_codes.get(str((call.body or {}).get("welcome_code")), {})
            if code.get("external_userid") in users:
                welcome_at[users[code["external_userid"]]] = at
        welcomed = len([w for w in fake.welcome_messages() if w["external_userid"] in users])
        bad = [d.status for d in fake.deliveries if d.status != 200]
    welcome = [(at - arrival[i]) * 1000 for i, at in welcome_at.items()]
    floor_cb, floor_dm, floor_all = ([], [], []) if profile else wecom_floor(args, total, tmp)
    return Result("wecom", total, [
        ("qunflow: arrival -> send_welcome_msg at the fake", welcome, floor_all),
        ("qunflow: arrival -> callback answered", answered, floor_cb),
        ("floor: arrival -> callback answered by a decrypt-only handler", floor_cb, None),
        ("floor: send_welcome_msg straight to the fake (call -> arrival)", floor_dm, None),
        ("floor: arrival -> callback, then send_welcome_msg at the fake", floor_all, None)], [
        f"wecom: welcomed {welcomed} of {total} (callbacks not answered 200: {len(bad)}; "
        f"callbacks unanswered within the fake's 5 s (WeCom would retry them): {errors})"], served.stages,
        welcome if len(welcome) == total else [float("inf")], elapsed, usage)


def callback_client(stack: ExitStack) -> httpx.Client:
    """WeCom's side of the callbacks: a new connection per callback (no keep-alive assumed), without the
    ~45 ms of CPU a one-off httpx.post spends building its client."""
    limits = httpx.Limits(max_connections=WECOM_THREADS, max_keepalive_connections=0)
    return stack.enter_context(httpx.Client(timeout=5, limits=limits))


def callbacks(args: argparse.Namespace, total: int, call: Callable[[int], object]
              ) -> tuple[list[float], list[float], int, float]:
    """Run call(i) at each due time on a thread pool; arrival times, ms to each answer, how many raised."""
    arrival, answered, errors = [0.0] * total, [float("nan")] * total, [0]

    def one(i: int) -> None:
        try:
            call(i)
            answered[i] = (time.monotonic() - arrival[i]) * 1000
        except Exception:  # counted and reported; the rest go on
            errors[0] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(WECOM_THREADS, thread_name_prefix="callback") as pool:
        for i, due in pace(total, args.rate):
            arrival[i] = due
            pool.submit(one, i)
        elapsed = time.monotonic() - started  # the arrivals; the pool then waits for the last answers
    return arrival, [a for a in answered if a == a], errors[0], elapsed


def wecom_floor(args: argparse.Namespace, total: int, tmp: Path) -> tuple[list[float], list[float], list[float]]:
    """Per arrival: the encrypted add_external_contact callback to a decrypt-only handler (uvicorn in a
    subprocess, like qunflow serve), then send_welcome_msg straight to the fake with one shared client."""
    from tests.fakes.wecom_server import FakeWeCom

    port = free_port()
    with ExitStack() as stack, FakeWeCom(staff=("zhangsan",)) as fake:
        http = stack.enter_context(httpx.Client(base_url=fake.api_base, timeout=15))
        env = {**os.environ, "QF_BENCH_WECOM": json.dumps([fake.token, fake.aes_key, fake.corp_id])}
        with open(tmp / "decrypt.log", "wb") as log:
            process = subprocess.Popen([sys.executable, __file__, "--decrypt-server", str(port)], env=env,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: process.poll() is None and httpx.get(
                f"http://127.0.0.1:{port}/healthz", timeout=1).is_success, 30, "the decrypt-only handler")
            fake.callback_url = f"http://127.0.0.1:{port}/hooks/wecom"
            fake.callback_client = callback_client(stack)
            token = http.get("/cgi-bin/gettoken", params={"corpid": fake.corp_id,
                                                          "corpsecret": fake.secret}).json()["access_token"]
            way = http.post("/cgi-bin/externalcontact/add_contact_way", params={"access_token": token},
                            json={"type": 1, "scene": 2, "user": ["zhangsan"], "state": "floor"}).json()
            text = "欢迎加入！" + "x" * 300
            begun: dict[int, float] = {}

            def one(i: int) -> None:
                code = fake.add_contact(f"wmFLOOR{i:06d}", f"客户{i}", way["config_id"])
                begun[i] = time.monotonic()
                http.post("/cgi-bin/externalcontact/send_welcome_msg", params={"access_token": token},
                          json={"welcome_code": code, "text": {"content": text}})

            arrival, answered, _errors, _elapsed = callbacks(args, total, one)
            users = {f"wmFLOOR{i:06d}": i for i in range(total)}
            full, direct = [], []
            for call, at in fake.timed_calls("/cgi-bin/externalcontact/send_welcome_msg"):
                i = users[fake.state.welcome_codes[call.body["welcome_code"]]["external_userid"]]  # type: ignore[index]
                full.append((at - arrival[i]) * 1000)
                direct.append((at - begun[i]) * 1000)
        finally:
            stop(process)
    return answered, direct, full


def decrypt_server(port: int) -> None:
    """The WeCom floor's callback handler: verify the signature and decrypt, answer empty. Nothing else."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from qunflow.connectors.wecom.crypto import WeComCrypto
    from qunflow.connectors.wecom.events import envelope_encrypt

    crypto = WeComCrypto(*json.loads(os.environ["QF_BENCH_WECOM"]))

    async def hook(request: Request) -> PlainTextResponse:
        query = request.query_params
        crypto.decrypt(query["msg_signature"], query["timestamp"], query["nonce"],
                       envelope_encrypt(await request.body()))
        return PlainTextResponse("")

    async def healthz(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hooks/wecom", hook, methods=["POST"]), Route("/healthz", healthz)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --- output ---
def database(args: argparse.Namespace) -> str:
    if args.postgres:
        return f"PostgreSQL, {args.workers} web process{'es' if args.workers > 1 else ''}"
    return f"SQLite synchronous={args.sqlite_synchronous.upper()}"


def report(result: Result, args: argparse.Namespace) -> bool:
    table = Table(title=f"{result.platform}: {result.total:,} arrivals at {args.rate:g}/s over {result.elapsed:.1f} s "
                        f"(qunflow serve, {database(args)}, queueing included)")
    for column in ("path", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "p99 / floor p99"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for label, values, floor in result.rows:
        if not values:
            table.add_row(label, "0", "-", "-", "-", "-", "")
            continue
        ratio = f"{percentile(values, 0.99) / percentile(floor, 0.99):.1f}x" if floor else ""
        table.add_row(label, str(len(values)), *(f"{v:.1f}" for v in (
            percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99), max(values))), ratio)
    console.print(table)
    for line in result.lines:
        console.print(line, highlight=False, soft_wrap=True)
    p99 = percentile(result.goal, 0.99)
    met = p99 < GOAL_MS
    console.print(f"{result.platform}: goal p99 < {GOAL_MS:.0f} ms at {args.rate:g}/s, queueing included: "
                  f"{'MET' if met else 'NOT MET'} (p99 {p99:.1f} ms)", highlight=False, soft_wrap=True)
    stage_table(result)
    return met


def stage_table(result: Result, top: int = 5) -> None:
    stages = result.stages
    if not stages:
        console.print("(no stage timings: qunflow serve did not write them)")
        return
    web = stages.get("web request /hooks (web stack, body, threadpool, handler)", [0, 0.0, 0.0])
    handler = stages.get("webhook handler (receive + dispatch, in the threadpool)", [0, 0.0, 0.0])
    path = {k: v for k, v in stages.items() if not k.startswith(("background", "web request", "serve CPU",
                                                                  "event loop"))}
    if web[0]:
        # what the web layer adds around the handler (uvicorn/FastAPI, reading the body, the hand-off)
        path["web layer around the handler (web stack, body, threadpool hand-off)"] = [web[0], web[1] - handler[1],
                                                                                     web[1] - handler[1]]
    busy = sum(v[2] for v in path.values())
    table = Table(title=f"{result.platform}: where the time goes in qunflow serve (top {top} of the webhook path by "
                        f"own time; {web[0]} webhook calls, {web[1]:.2f} s in them)")
    for column in ("stage", "calls", "own ms / call", "own s total", "share", "incl. ms / call"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, (calls, inclusive, own) in sorted(path.items(), key=lambda kv: -kv[1][2])[:top]:
        table.add_row(name, str(calls), f"{own / max(calls, 1) * 1000:.2f}", f"{own:.2f}",
                      f"{own / busy:.0%}" if busy else "", f"{inclusive / max(calls, 1) * 1000:.2f}")
    console.print(table)
    background = [f"{k.split(': ', 1)[1]} {v[1]:.2f} s ({v[2]:.2f} CPU s) in {v[0]} rounds"
                  for k, v in stages.items() if k.startswith("background")]
    if background:
        console.print(f"{result.platform}: alongside, in the same process: " + "; ".join(background),
                      highlight=False, soft_wrap=True)
    console.print(cost_line(result), highlight=False, soft_wrap=True)
    if result.usage:
        console.print(usage_line(result), highlight=False, soft_wrap=True)
        console.print(machine_line(result), highlight=False, soft_wrap=True)


def cost_line(result: Result) -> str:
    """qunflow serve's work per join, little moved by other load on the machine: its CPU seconds (user +
    system, from the first webhook call to the end of the last, its background loops included) per 1,000
    joins, and the SQL statements (through SQLAlchemy) and commits it ran per join."""
    stages, total = result.stages, max(result.total, 1)
    if "serve CPU" not in stages:  # --workers N: the webhooks went to the web processes, which run no timers
        return (f"{result.platform}: serve's parent handled no webhook (its web processes did): its stage timers "
                "saw only the background loops; CPU per join from /proc on the next line")
    cpu = stages.get("serve CPU", [0, float("nan")])[1]
    loop = stages.get("event loop thread CPU", [0, float("nan")])[1]
    statements = stages.get("SQL statements", [0])[0]
    commits = stages.get("SQLite commit", [0])[0]
    return (f"{result.platform}: qunflow serve's cost per join: {cpu / total * 1000:.2f} CPU s per 1,000 joins "
            f"({cpu:.2f} s for {result.total}; {loop / total * 1000:.2f} of them on the event loop's thread: "
            f"uvicorn, the web stack, the hand-off to the hook threads), {statements / total:.1f} SQL statements "
            "through SQLAlchemy (reads on the driver's cursor not counted: bench/probe_join_cost.py counts all) and "
            f"{commits / total:.1f} commits per join")


def usage_line(result: Result) -> str:
    """Every serve process's CPU per 1,000 joins (from /proc: the web processes' too, which the stage timers do
    not see), and the event lock's use on PostgreSQL."""
    usage, total = result.usage, max(result.total, 1)
    parent, web = usage["parent CPU s"], usage["web processes CPU s"]
    line = (f"{result.platform}: every serve process, from /proc over the arrivals and the drain "
            f"({usage['wall s']:.1f} s): {(parent + web) / total * 1000:.2f} CPU s per 1,000 joins "
            f"(parent {parent / total * 1000:.2f}")
    processes = int(usage["web processes"])  # uvicorn's web processes, and its multiprocessing helper
    line += f", {processes} child processes {web / total * 1000:.2f})" if processes else ")"
    if "event lock held share" in usage:
        waiting = usage["event lock waiters mean"]
        line += (f"; event lock held {usage['event lock held share']:.0%} of the time, {waiting:.2f} backends waiting "
                 f"for it on average (about {waiting * usage['wall s'] / total * 1000:.1f} ms of waiting per join)")
    return line


def machine_line(result: Result) -> str:
    """Where the machine's CPU went per 1,000 joins: serve, the PostgreSQL server, and this bench (the fake
    platform, which in production runs elsewhere); and the cores serve and its database would need at the
    issue's 1,000 joins/s at that cost."""
    usage, total = result.usage, max(result.total, 1)
    serve = (usage["parent CPU s"] + usage["web processes CPU s"]) / total * 1000
    bench = usage["bench CPU s"] / total * 1000
    line = f"{result.platform}: CPU s per 1,000 joins on this machine: serve {serve:.2f}"
    if "PostgreSQL CPU s" in usage:
        database = usage["PostgreSQL CPU s"] / total * 1000
        line += (f", PostgreSQL {database:.2f}, this bench (fake platform and driver) {bench:.2f}; at 1,000 joins/s "
                 f"serve and PostgreSQL would keep {serve + database:.1f} cores busy")
    else:
        line += f", this bench (fake platform and driver) {bench:.2f}"
    return line


def print_profile(path: Path, platform: str, top: int = 5) -> None:
    import pstats

    if not path.exists():
        console.print(f"{platform}: no profile was written")
        return
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(tt for _cc, _nc, tt, _ct, _callers in stats.values())
    table = Table(title=f"{platform}: cProfile of the webhook handler, top {top} functions by own time "
                        f"({total:.2f} s profiled)")
    for column in ("function", "calls", "own s", "share", "cumulative s"):
        table.add_column(column, justify="left" if column == "function" else "right")
    for (file, line, name), (_cc, calls, own, cumulative, _callers) in sorted(
            stats.items(), key=lambda kv: -kv[1][2])[:top]:
        where = file if file == "~" else "/".join(Path(file).parts[-2:]) + f":{line}"
        table.add_row(f"{name} ({where})", str(calls), f"{own:.3f}", f"{own / total:.0%}", f"{cumulative:.3f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", choices=("telegram", "wecom", "both"), default="both")
    parser.add_argument("--rate", type=float, default=100.0, help="arrivals per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sqlite-synchronous", choices=("full", "normal"), default="full",
                        help="the workspace's sqlite_synchronous (a real install has full)")
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="state database on PostgreSQL: a fresh database per run, made through this URL "
                             "(e.g. postgresql://postgres@127.0.0.1:5432/test)")
    parser.add_argument("--workers", type=int, default=1,
                        help="qunflow serve --workers (PostgreSQL only): web processes behind the port")
    parser.add_argument("--profile", action="store_true",
                        help="after the measured run, a shorter run with cProfile on the webhook handler")
    parser.add_argument("--profile-seconds", type=float, default=3.0)
    parser.add_argument("--profile-top", type=int, default=5, help="functions to list from the profile")
    parser.add_argument("--decrypt-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decrypt_server:
        decrypt_server(args.decrypt_server)
        return
    platforms = ("telegram", "wecom") if args.platform == "both" else (args.platform,)
    runs = {"telegram": run_telegram, "wecom": run_wecom}
    cores = os.cpu_count()
    console.print(f"machine: {cores} cores, load average {'/'.join(f'{v:.2f}' for v in os.getloadavg())} "
                  f"(1/5/15 min) before the run", highlight=False)
    verdicts = {}
    with tempfile.TemporaryDirectory(prefix="qunflow-bench-") as name:
        tmp = Path(name)
        for platform in platforms:
            verdicts[platform] = report(runs[platform](args, tmp), args)
        if args.profile:
            for platform in platforms:
                profile = tmp / f"{platform}.prof"
                runs[platform](args, tmp, profile=profile, seconds=args.profile_seconds)
                print_profile(profile, platform, args.profile_top)
    console.print(f"load average after: {'/'.join(f'{v:.2f}' for v in os.getloadavg())}; goal p99 < "
                  f"{GOAL_MS:.0f} ms: " + ", ".join(f"{p} {'met' if ok else 'not met'}" for p, ok in verdicts.items()),
                  highlight=False)


if __name__ == "__main__":
    main()
