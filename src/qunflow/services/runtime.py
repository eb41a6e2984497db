"""`qunflow serve`: web, worker and shipper in one process."""

from __future__ import annotations

import gc
import logging
import os
import threading
from typing import Any

import uvicorn

from qunflow.errors import InvalidInput
from qunflow.workspace import Workspace

log = logging.getLogger("qunflow")


class BackgroundLoop:
    """Runs `step` every `interval` seconds (the first time after `first_after`) on a daemon thread until stopped."""

    def __init__(self, name: str, step: object, interval: float, first_after: float | None = None) -> None:
        self.name, self.step, self.interval = name, step, interval
        self.first_after = interval if first_after is None else first_after
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        wait = self.first_after
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                self.step()  # type: ignore[operator]
            except Exception:  # keep the loop alive; the next round retries
                log.exception("%s failed", self.name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


REPORT_CHECK_SECONDS = 60.0
SHIP_SECONDS = 30.0


def background_loops(workspace: Workspace) -> list[BackgroundLoop]:
    """The shipper keeps the analytics store within half a minute of the event log (every reader ships what is
    new before it reads, so this only keeps that first ship small; a round has fixed costs that compete with
    the webhook path for the interpreter, so it is not run more often); the automation
    worker runs triggers and due playbook steps every half second; with a report
    webhook set, the weekly report is checked every minute (and soon after start, to catch up);
    with a staff webhook set, keyword alerts that failed to post are retried every few seconds.
    The recovery sweep finishes what a crash interrupted, at once and then every minute; invite links past
    their expiry (Telegram expire_date) are revoked every minute, and seats freed since (a join hold that
    lapsed, a member who left) are offered to the waitlist every minute; engagement levels are recomputed
    hourly (their level_changed events then trigger playbooks in the automation round), followed by the pools
    and the tier rules (services/tier_moves.py; the moves they start are offered in the automation round); the sandbox
    platform delivers again the updates qunflow did not acknowledge (as a real webhook retries)."""
    from qunflow.analytics.shipper import ship
    from qunflow.engine.notifier import post_staff_alerts
    from qunflow.services.automation import work_once
    from qunflow.services.invites import EXPIRY_SWEEP_SECONDS, revoke_expired
    from qunflow.services.levels import levels_tick
    from qunflow.services.recovery import SWEEP_SECONDS, Sweeper
    from qunflow.services.report_schedule import run_scheduled_report
    from qunflow.services.waitlist import offer_seats

    loops = [BackgroundLoop("shipper", lambda: ship(workspace), SHIP_SECONDS),
             BackgroundLoop("automation", lambda: work_once(workspace, worker="serve"), 0.5),
             BackgroundLoop("recovery", Sweeper(workspace), SWEEP_SECONDS, first_after=0.0),
             BackgroundLoop("sandbox-redeliver", lambda: redeliver_sandbox(workspace), REDELIVER_SECONDS,
                            first_after=0.0),
             BackgroundLoop("invite-expiry", lambda: revoke_expired(workspace), EXPIRY_SWEEP_SECONDS,
                            first_after=5.0),
             BackgroundLoop("waitlist", lambda: offer_seats(workspace), WAITLIST_SECONDS, first_after=10.0),
             BackgroundLoop("levels", lambda: levels_tick(workspace), LEVELS_SECONDS,
                            first_after=LEVELS_FIRST_SECONDS)]
    if workspace.settings.staff_webhook:
        loops.append(BackgroundLoop("staff-alerts", lambda: post_staff_alerts(workspace), 5.0))
    if workspace.settings.report_webhook:
        loops.append(BackgroundLoop("weekly-report", lambda: run_scheduled_report(workspace),
                                    REPORT_CHECK_SECONDS, first_after=3.0))
    loops.extend(poll_loops(workspace))
    return loops


REDELIVER_SECONDS = 2.0
WAITLIST_SECONDS = 60.0  # one indexed read when nobody waits
LEVELS_SECONDS = 3600.0  # engagement levels as of today (services/levels.py): hourly, seconds at 1M members
# The first run waits out the start: a restart (a deploy) is often followed by a burst of platform calls that
# were queued meanwhile, and on SQLite the run holds the write lock for its duration.
LEVELS_FIRST_SECONDS = 300.0


def redeliver_sandbox(workspace: Workspace) -> int:
    """The sandbox platform's webhook retries, for a workspace that has a sandbox (none is made for it)."""
    if not (workspace.home / "sandbox.db").exists():
        return 0
    return workspace.sandbox.redeliver()


def poll_loops(workspace: Workspace) -> list[BackgroundLoop]:
    """Platforms connected in polling mode (no public URL needed: the laptop case) are polled for updates;
    an update is confirmed to the platform only by the next poll, after it was handled."""
    from qunflow.connectors.registry import spec_of

    loops = []
    for name in workspace.connected_platforms():
        connector = workspace.connector(name)
        if spec_of(name).polls and getattr(getattr(connector, "settings", None), "mode", "") == "polling":
            loops.append(BackgroundLoop(f"poll-{name}", lambda c=connector: poll_once(workspace, c, POLL_SECONDS),
                                        0.2, first_after=0.0))
    return loops


def poll_once(workspace: Workspace, connector: Any, timeout: float) -> int:
    """One poll, its updates handled one by one. When one fails, the connector is rewound to it, so the
    next poll does not confirm it (nor those after it) and the platform hands them over again."""
    from qunflow.services.inbound import dispatch

    updates = connector.poll(timeout)
    for item in updates:
        try:
            dispatch(workspace, [item])
        except Exception:
            if item.key is not None:
                connector.rewind(item.key)
            raise
    return len(updates)


POLL_SECONDS = 25.0  # a long poll: the platform answers at once when an update arrives


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(workspace: Workspace, host: str) -> None:
    """Serving beyond this machine needs someone who can log in: refuse to start without a user."""
    from qunflow.services.users import has_users

    if not is_loopback(host) and not has_users(workspace.engine):
        raise InvalidInput(f"refusing to serve on {host}: no console user exists yet, so nobody could log in "
                           "and the console would be open to guessing. Create an owner first: "
                           "`qunflow user add NAME --role owner`, or serve on 127.0.0.1",
                           zh=f"拒绝在 {host} 上提供服务:还没有控制台用户,无人能登录,控制台将暴露给猜测攻击。"
                              "请先创建所有者:`qunflow user add NAME --role owner`,或改在 127.0.0.1 上运行")


def check_workers(workspace: Workspace, workers: int) -> None:
    """Several web processes share one state database: SQLite lets one process write at a time, so they
    would queue on its file lock (and wait out busy timeouts) instead of working side by side."""
    if workers > 1 and workspace.engine.dialect.name == "sqlite":
        raise InvalidInput(f"--workers {workers} needs PostgreSQL (database_url): one SQLite file takes one writer "
                           "at a time, so several processes would only queue on it. Serve with one process, or "
                           "move the workspace to PostgreSQL",
                           zh=f"--workers {workers} 需要 PostgreSQL(database_url):一个 SQLite 文件同一时刻"
                              "只允许一个写入者,多个进程只会排队等它。请用一个进程运行,或把工作区迁到 PostgreSQL")


def app_from_env() -> Any:
    """The web app of the workspace in QUNFLOW_HOME: the factory each of `serve --workers N`'s processes calls."""
    from qunflow.web.app import create_app
    from qunflow.workspace import open_workspace

    app = create_app(open_workspace(os.environ["QUNFLOW_HOME"]))
    freeze_start_up()
    return app


def freeze_start_up() -> None:
    """The objects made while starting (modules, the app, SQLAlchemy's tables and compiled statements) live as
    long as the process: moved out of the garbage collector's reach, its full collections no longer walk
    them again and again while the webhook path waits (the GIL is held for a whole collection)."""
    gc.collect()
    gc.freeze()


def serve_workspace(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve the web app; the background loops (automation worker, shipper, sweeps) run in this process.

    With `workers` > 1 (PostgreSQL only) uvicorn starts that many web processes behind the one port, and
    this process only supervises them and runs the loops: the automation worker stays apart from the
    webhook path, and no loop runs twice."""
    from qunflow.web.access_log import log_config

    check_exposure(workspace, host)
    check_workers(workspace, workers)
    # proxy_headers off: X-Forwarded-For counts only from the workspace's trusted_proxies (web/guard.py)
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "info", "proxy_headers": False,
                               "log_config": log_config()}
    loops = background_loops(workspace)
    for loop in loops:
        loop.start()
    try:
        if workers > 1:
            os.environ["QUNFLOW_HOME"] = str(workspace.settings.home)  # the spawned processes open it again
            uvicorn.run("qunflow.services.runtime:app_from_env", factory=True, workers=workers, **options)
        else:
            from qunflow.web.app import create_app

            app = create_app(workspace)
            freeze_start_up()
            uvicorn.run(app, **options)
    finally:
        for loop in loops:
            loop.stop()
