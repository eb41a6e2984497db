"""`qunflow serve`: web, worker and shipper in one process."""

from __future__ import annotations

import logging
import threading

import uvicorn

from qunflow.workspace import Workspace

log = logging.getLogger("qunflow")


class BackgroundLoop:
    """Runs `step` every `interval` seconds on a daemon thread until stopped."""

    def __init__(self, name: str, step: object, interval: float) -> None:
        self.name, self.step, self.interval = name, step, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()  # type: ignore[operator]
            except Exception:  # keep the loop alive; the next round retries
                log.exception("%s failed", self.name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def background_loops(workspace: Workspace) -> list[BackgroundLoop]:
    """The shipper keeps the analytics store a couple of seconds behind the event log."""
    from qunflow.analytics.shipper import ship

    return [BackgroundLoop("shipper", lambda: ship(workspace), 2.0)]


def serve_workspace(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    from qunflow.web.app import create_app

    loops = background_loops(workspace)
    for loop in loops:
        loop.start()
    try:
        uvicorn.run(create_app(workspace), host=host, port=port, log_level="info")
    finally:
        for loop in loops:
            loop.stop()
