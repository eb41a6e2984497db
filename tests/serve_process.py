"""`qunflow serve` as its own process on a loopback port, as an operator runs it: its log kept in a file,
its memory readable from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.conftest import free_port

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]


class ServeProcess:
    def __init__(self, home: Path, log: Path | None = None, args: tuple[str, ...] = ()) -> None:
        self.home, self.port, self.args = home, free_port(), args
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log or home.parent / f"serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServeProcess:
        with self.log_path.open("wb") as log:
            command = [*QUNFLOW, "serve", "--port", str(self.port), "--workspace", str(self.home), *self.args]
            self.process = subprocess.Popen(command, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"qunflow serve did not start: {self.log()[-2000:]}")

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def peak_memory(self) -> int:
        """The process's peak resident memory so far (VmHWM), in bytes."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")
