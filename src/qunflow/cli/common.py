"""Shared CLI pieces: the workspace option, the console, error exit."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from qunflow.errors import QunflowError

if TYPE_CHECKING:  # the workspace (SQLAlchemy, pydantic) loads when a command runs, not for --help
    from qunflow.workspace import Workspace

# Wide tables stay readable when the output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", envvar="QUNFLOW_HOME",
                 help="Workspace folder (default: the current directory)."),
]


def workspace(path: Path | None) -> Workspace:
    """The workspace of a command; a database that cannot be opened is one line and exit code 2."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from qunflow.workspace import open_workspace

    try:
        return open_workspace(path)
    except (OperationalError, InterfaceError) as exc:
        from qunflow.settings import load_settings, resolve_home

        fail(database_failure(exc, load_settings(resolve_home(path)).db_url))
        raise  # not reached: fail exits


def writable_file(path: Path) -> None:
    """Refuse at once an output file whose folder does not exist (or is not a folder)."""
    folder = path.expanduser().parent
    if not folder.is_dir():
        fail(f"{path}: the folder {folder} does not exist; create it first or choose another output file")
    if path.is_dir():
        fail(f"{path} is a folder: give a file name")


PortOption = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on (1-65535).")]


def check_port_free(host: str, port: int) -> None:
    """Fail at once (exit 2) when the address cannot be listened on: the port is taken, or the host is not
    an address of this machine. Long work (a demo) checks this before it starts, not after."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        fail(f"cannot listen on {host}: {exc.strerror}")
        return
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no obstacle
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(f"port {port} on {host} is already in use: stop what listens there or choose another "
                     "with --port")
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def console_url(ws: Workspace, host: str, port: int) -> str:
    """Where the operator opens the console: the listening address, and public_url's when it is another."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)
    local = f"http://{shown}:{port}/console"
    public = f"{ws.settings.public_url.rstrip('/')}/console"
    from urllib.parse import urlsplit

    from qunflow.services.runtime import is_loopback

    if public == local or is_loopback(urlsplit(public).hostname or ""):
        return local
    return f"{local} (public address: {public})"


def database_failure(exc: Exception, url: str | None = None) -> str:
    """One line for a database that cannot be opened or reached, its URL (if known) without the password."""
    from sqlalchemy.engine import make_url

    from qunflow.store.db import is_busy

    if is_busy(exc):
        return "the database is busy (another qunflow process is writing): try again in a few seconds"
    text = str(getattr(exc, "orig", None) or exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    where = ""
    if url:
        try:
            where = " " + make_url(url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - an unparsable URL is reported by make_engine, not here
            where = ""
    return (f"cannot open the database{where}: {reason}. Check database_url in qunflow.toml (or "
            "QUNFLOW_DATABASE_URL) and that the database server is running")


def lazy_module(name: str) -> Any:
    """A module imported on first use: command modules name their services at the top, yet `--help` (which
    builds every command) imports neither them nor SQLAlchemy."""
    import importlib

    class Lazy:
        def __getattr__(self, attr: str) -> Any:
            return getattr(importlib.import_module(name), attr)

    return Lazy()


def cli_actor() -> str:
    """Who acts from the command line: the operating-system user running it."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "cli:unknown"


def cli_lang() -> str:
    """The terminal's language for messages: Chinese when QUNFLOW_LANG or the locale (LC_ALL, LC_MESSAGES,
    LANG, the first one set) says zh, else English."""
    for name in ("QUNFLOW_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def fail(message: str) -> None:
    """One clear line on stderr, exit code 2."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


# click's UsageError, whichever click typer runs on (newer typers vendor their own copy of click).
UsageError: type[Exception] = typer.BadParameter.__base__  # type: ignore[assignment]


def usage_error(exc: Exception) -> None:
    """A usage error (unknown command or option, missing argument, bad choice) as one line, exit 2."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        raise exc  # `qunflow events` alone shows that group's help, as click does
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    fail(getattr(exc, "format_message", exc.__str__)() + where)


class ErrorMappingGroup(TyperGroup):
    """Maps QunflowErrors and click usage errors from any command to one line on stderr and exit code 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:  # options of `qunflow` itself are parsed here, before invoke
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:
            usage_error(exc)
            return None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except QunflowError as exc:
            fail(exc.text(cli_lang()))
            return None
        except UsageError as exc:
            usage_error(exc)
            return None
        except OSError as exc:  # a file or folder qunflow was told to use cannot be read or written
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}")
            return None
        except Exception as exc:
            if _database_unreachable(exc):  # the database is unreachable, refused us, or is gone
                fail(database_failure(exc))
                return None
            raise


def _database_unreachable(exc: Exception) -> bool:
    """SQLAlchemy's OperationalError or InterfaceError (only a command that loaded SQLAlchemy can raise one:
    `--help` does not load it)."""
    if "sqlalchemy" not in sys.modules:
        return False
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError)


# --- the audit log of the command line ---------------------------------------------------------------------

READS = frozenset({"list", "show", "count", "groups", "messages", "status", "dead", "budget", "programs",
                   "leaderboard", "preview", "check", "qr", "link", "poster"})  # leaf commands that change nothing
NOT_AUDITED = frozenset({"serve", "audit", "metrics", "demo", "init", "plan", "doctor"})  # the last two read only
HIDDEN_OPTIONS = frozenset({"bot_token", "secret", "callback_token", "aes_key", "webhook_secret", "password", "phone",
                            "name"})  # secrets and personal data never reach the audit log


def audit_command(root: Any, args: list[str], exit_code: int) -> None:
    """Record a command that changes something in its workspace's audit log: who (cli:OS-USER), the command,
    its arguments with secrets and personal values hidden, and how it ended. Never fails the command."""
    import os

    try:
        # The root command's own Context class: the click typer runs on (its vendored copy in newer typers), and
        # importing the standalone click as well cost every command about 40 ms.
        ctx = root.context_class(root)
        path: list[str] = []
        command, rest = root, list(args)
        while rest and hasattr(command, "get_command") and not rest[0].startswith("-"):
            sub = command.get_command(ctx, rest[0])
            if sub is None:
                return
            command, path = sub, [*path, rest.pop(0)]
        if not path or hasattr(command, "get_command") or path[0] in NOT_AUDITED or path[-1] in READS \
                or "--help" in rest:
            return
        flags = {flag: p for p in command.params if p.param_type_name == "option" for flag in p.opts}
        shown: list[str] = []
        positional: list[str] = []
        value_next: str | None = None  # the option whose value comes next: "shown" or "hidden"
        for arg in rest:
            if value_next is not None:
                shown.append("***" if value_next == "hidden" else arg)
                value_next = None
                continue
            flag, eq, _value = arg.partition("=")
            param = flags.get(flag)
            if param is not None:
                hidden = param.name in HIDDEN_OPTIONS
                shown.append(f"{flag}=***" if eq and hidden else arg)
                if not eq and not param.is_flag:
                    value_next = "hidden" if hidden else "shown"
            else:
                shown.append(arg)
                if not arg.startswith("-"):
                    positional.append(arg)
        folder = None
        for i, arg in enumerate(rest):
            if arg in ("--workspace", "-w") and i + 1 < len(rest):
                folder = rest[i + 1]
            elif arg.startswith("--workspace="):
                folder = arg.split("=", 1)[1]
        home = Path(folder or os.environ.get("QUNFLOW_HOME") or ".").expanduser()
        if not (home / "qunflow.toml").exists():
            return
        from qunflow.services.audit import record
        from qunflow.workspace import open_workspace

        ws = open_workspace(home)
        try:
            record(ws.engine, actor=cli_actor(), via="cli", action=" ".join(path),
                   target=" ".join(positional) or None,
                   outcome="ok" if exit_code == 0 else ("refused" if exit_code == 2 else "failed"),
                   detail={"args": shown, "exit": exit_code})
        finally:
            ws.close()
    except Exception:  # noqa: BLE001 - the audit of a command must not turn its success into a failure
        return
