"""One harness per registered platform for the connector contract suite: a connector pointed at the
platform's local stand-in, and the means to make people act on it. The platform's calls to qunflow are
caught raw (method, query, headers, body), exactly as /hooks/<platform> would receive them."""

from __future__ import annotations

import importlib
import pkgutil
import secrets
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from qunflow.connectors.base import Connector, Host, InviteLink, Update


@dataclass(frozen=True)
class RawCall:
    method: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Catcher:
    """An HTTP server on loopback that answers 200 and keeps every call (a platform's webhook target)."""

    calls: list[RawCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def _catch(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = urlsplit(self.path)
                catcher.calls.append(RawCall(self.command, dict(parse_qsl(parts.query)),
                                             {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = _catch  # noqa: N815 - http.server's API

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Harness:
    platform: str
    connector: Connector
    calls: Callable[[], list[RawCall]]

    def group(self) -> str: ...

    def broken_group(self) -> str:
        """A chat the bot cannot run (not an admin, not the company's group)."""
        ...

    def person(self, name: str) -> str: ...

    def arrive(self, user_id: str, link: InviteLink) -> None:
        """The person opens the link (scans the code); the platform then calls qunflow."""
        ...

    def direct_messages(self, user_id: str) -> list[str]: ...

    def forged(self) -> RawCall:
        """A call shaped like the platform's, with a wrong signature or secret."""
        ...

    def updates(self) -> list[Update]:
        """Every update the platform handed qunflow so far. Webhook platforms: the caught calls, received
        (each time anew, so a repeat must give the same keys). A platform that is polled (the Discord
        Gateway) overrides this with what its polls returned."""
        return [u for call in self.calls() for u in self.connector.receive(call.method, call.query, call.headers,
                                                                           call.body).updates]


def host(tmp: Path, inbound: Any = None) -> Host:
    return Host(public_url="http://127.0.0.1:9", home=tmp, clock=lambda: datetime.now(UTC).replace(tzinfo=None),
                secret=secrets.token_hex(16), inbound=inbound)


def harness_for(platform: str, tmp: Path) -> AbstractContextManager[Harness]:
    """The harness of one platform: `tests/contract/platforms/<platform>.py`'s `open_harness(tmp)`."""
    module = importlib.import_module(f"tests.contract.platforms.{platform}")
    opened: AbstractContextManager[Harness] = module.open_harness(tmp)
    return opened


# One module per platform under platforms/: adding a platform adds a file here, never an edit.
HARNESSES = tuple(sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent / "platforms")])))
