"""A ClickHouse HTTP server for tests: the documented HTTP interface in front of chdb, in its own process.

Protocol covered (https://clickhouse.com/docs/interfaces/http), as far as clickhouse-connect uses it:
- `GET /` and `GET /ping` answer `Ok.\\n`.
- The query comes in the `query` URL parameter and/or the POST body; with both, the body follows the
  parameter after a newline. A GET may only read (else 164 READONLY).
- `INSERT ... FORMAT <name>` takes its data from what follows the statement: after the first newline, or
  after the whitespace if there is none.
- `database` (else `default`), `default_format` (else TabSeparated; a FORMAT clause wins), `query_id`
  (echoed), `param_<name>` query parameters; every other URL parameter is a setting for that query.
  Accepted and ignored: `session_id`, `session_timeout`, `session_check`, `wait_end_of_query` (the answer is
  always buffered), `client_protocol_version` (Native output stays at revision 0), `buffer_size`, `quota_key`.
- Auth: HTTP basic, `X-ClickHouse-User`/`X-ClickHouse-Key` headers or `user`/`password` parameters; no
  credentials means user `default` with an empty password. A mismatch is 516 AUTHENTICATION_FAILED.
- Answers carry `X-ClickHouse-Query-Id`, `-Timezone`, `-Server-Display-Name`, `-Summary` and, for statements
  with a result, `-Format`. With `enable_http_compression` on, the body is compressed with the first of the
  client's `Accept-Encoding` methods that is available here (gzip, deflate, zstd, lz4); a request body's
  `Content-Encoding` is decoded the same way.
- Errors: the `Code: N. DB::Exception: ...` text with `X-ClickHouse-Exception-Code`, HTTP 500 as the page
  says, refined as the server does (401 missing password, 403 bad credentials or read-only, 400 syntax and
  bad settings, 404 unknown database/table).
Not covered: sessions (one chdb session serves every request), multipart external data, progress headers,
the `compress`/`decompress` native block compression, HTTPS, cancelling queries.

Run `python tests/clickhouse_http.py --data DIR [--port 0] [--user default]`, password in the
CLICKHOUSE_TEST_PASSWORD variable; it prints `port N` once listening. `ClickHouseHTTPServer` does that
from a test: chdb allows one session per process and the test process may hold its own.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

HTTP_ONLY = {"query", "database", "default_format", "user", "password", "query_id", "session_id",
             "session_timeout", "session_check", "wait_end_of_query", "client_protocol_version", "buffer_size",
             "quota_key", "compress", "decompress"}
READING = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"}
INSERT_FORMAT = re.compile(rb"\A\s*INSERT\s+INTO\s[^;]*?\bFORMAT\s+(\w+)", re.IGNORECASE | re.DOTALL)
FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*\Z", re.IGNORECASE)
ERROR_CODE = re.compile(r"Code: (\d+)\.")
STATUS = {194: 401, 192: 403, 193: 403, 516: 403, 164: 403, 62: 400, 36: 400, 115: 400, 81: 404, 60: 404}
CONTENT_TYPES = {"TabSeparated": "text/tab-separated-values; charset=UTF-8", "TSV": "text/tab-separated-values",
                 "JSON": "application/json; charset=UTF-8", "JSONCompact": "application/json; charset=UTF-8",
                 "CSV": "text/csv; charset=UTF-8"}


def _codecs() -> dict[str, tuple[Any, Any]]:
    """Content-Encoding name -> (compress, decompress), for the methods importable here."""
    codecs: dict[str, tuple[Any, Any]] = {"gzip": (gzip.compress, gzip.decompress),
                                          "deflate": (zlib.compress, zlib.decompress)}
    try:
        from backports import zstd  # type: ignore[import-not-found]

        codecs["zstd"] = (zstd.compress, zstd.decompress)
    except ImportError:
        pass
    try:
        import lz4.frame  # type: ignore[import-not-found]

        codecs["lz4"] = (lz4.frame.compress, lz4.frame.decompress)
    except ImportError:
        pass
    return codecs


class ClickHouseError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Code: {code}. DB::Exception: {message}")
        self.code = code


class Backend:
    """One chdb session; requests take turns on it, each with its own database and settings."""

    def __init__(self, data: Path, user: str, password: str) -> None:
        from chdb import session

        self.session = session.Session(str(data))
        self.user, self.password = user, password
        self.spool = data.with_name(data.name + "-incoming")  # INSERT data, one file per request
        self.spool.mkdir(exist_ok=True)
        self.lock = threading.Lock()
        rows = self.session.query("SELECT name, value FROM system.settings", "JSONCompact").bytes()
        self.defaults: dict[str, str] = dict(json.loads(rows)["data"])
        about = self.session.query("SELECT timezone(), version()", "TabSeparated").bytes().decode()
        self.timezone, self.version = about.strip().split("\t")

    def run(self, sql: bytes, *, database: str, settings: dict[str, str], params: dict[str, str],
            fmt: str | None) -> tuple[bytes, dict[str, str]]:
        """Execute one statement; INSERT data, if any, follows the statement in `sql`."""
        spill: Path | None = None
        insert = INSERT_FORMAT.match(sql)
        if insert:
            rest = sql[insert.end():]
            gap = len(rest) - len(rest.lstrip(b" \t\r\n"))
            newline = rest.find(b"\n", 0, gap)
            spill = self.spool / f"insert-{uuid.uuid4().hex}"
            spill.write_bytes(rest[newline + 1:] if newline >= 0 else rest[gap:])
            head = re.sub(r"FORMAT\s+\Z", "", sql[:insert.start(1)].decode(), flags=re.IGNORECASE)
            text = f"{head} FROM INFILE '{spill}' FORMAT {insert.group(1).decode()}"
        else:
            text = sql.decode()
        with self.lock:
            try:
                self._query(f"USE {database}")
                for name, value in settings.items():
                    self._query(f"SET {name} = {_quote(value)}")
                result = self._query(text, fmt or "TabSeparated", params)
                return result.bytes(), {
                    "read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read()),
                    "written_rows": str(result.rows_written()), "written_bytes": str(result.bytes_written()),
                    "total_rows_to_read": "0", "elapsed_ns": str(int(result.elapsed() * 1e9))}
            finally:
                for name in settings:
                    if name in self.defaults:
                        self._query(f"SET {name} = {_quote(self.defaults[name])}")
                self._query("USE default")
                if spill:
                    spill.unlink(missing_ok=True)

    def _query(self, text: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None) -> Any:
        try:
            return self.session.query(text, fmt, params=params or None)
        except Exception as exc:
            found = ERROR_CODE.search(str(exc))
            raise ClickHouseError(int(found.group(1)) if found else 1002,
                                  str(exc).split("DB::Exception: ", 1)[-1]) from exc


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    backend: Backend
    codecs = _codecs()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle(read_only=True)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(read_only=False)

    def _handle(self, *, read_only: bool) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._body()
        if url.path not in ("/", "/ping"):
            self._send(404, b"There is no handle " + url.path.encode() + b"\n", {})
            return
        if url.path == "/ping" or (read_only and "query" not in params):
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        query_id = params.get("query_id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self.backend.timezone,
                   "X-ClickHouse-Server-Display-Name": "qunflow-test"}
        try:
            self._authenticate(params)
            query = params.get("query", "")
            sql = (query.encode() + b"\n" if query else b"") + body
            if not sql.strip():
                raise ClickHouseError(62, "Empty query. (SYNTAX_ERROR)")
            keyword = re.match(rb"\s*\(*\s*(\w+)", sql)
            statement = keyword.group(1).decode().upper() if keyword else ""
            if read_only and statement not in READING:
                raise ClickHouseError(164, "Cannot execute query in readonly mode. For queries over HTTP, "
                                           "method POST is required. (READONLY)")
            fmt = None
            if statement in READING:
                clause = FORMAT_CLAUSE.search(sql.decode(errors="replace"))
                fmt = clause.group(1) if clause else params.get("default_format") or "TabSeparated"
                headers["X-ClickHouse-Format"] = fmt
                headers["Content-Type"] = CONTENT_TYPES.get(fmt, "application/octet-stream")
            settings = {k: v for k, v in params.items() if k not in HTTP_ONLY and not k.startswith("param_")}
            result, summary = self.backend.run(
                sql, database=params.get("database") or "default", settings=settings, fmt=fmt,
                params={k[len("param_"):]: v for k, v in params.items() if k.startswith("param_")})
        except ClickHouseError as exc:
            headers["X-ClickHouse-Exception-Code"] = str(exc.code)
            headers["Content-Type"] = "text/plain; charset=UTF-8"
            self._send(STATUS.get(exc.code, 500), f"{exc} (version {self.backend.version})\n".encode(), headers)
            return
        headers["X-ClickHouse-Summary"] = json.dumps(summary)
        enabled = params.get("enable_http_compression", self.backend.defaults.get("enable_http_compression"))
        if enabled == "1":
            wanted = [m.strip() for m in self.headers.get("Accept-Encoding", "").split(",")]
            method = next((m for m in wanted if m in self.codecs), None)
            if method:
                result = self.codecs[method][0](result)
                headers["Content-Encoding"] = method
        self._send(200, result, headers)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            body = b"".join(parts)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding")
        if encoding and encoding in self.codecs:
            body = self.codecs[encoding][1](body)
        return bytes(body)

    def _authenticate(self, params: dict[str, str]) -> None:
        user, password = params.get("user"), params.get("password")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        if self.headers.get("X-ClickHouse-User"):
            user, password = self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        user, password = user or "default", password or ""
        if (user, password) != (self.backend.user, self.backend.password):
            if user == self.backend.user and not password:
                raise ClickHouseError(194, f"{user}: Password required for user {user}. (REQUIRED_PASSWORD)")
            raise ClickHouseError(516, f"{user}: Authentication failed: password is incorrect, or there is no "
                                       "user with such name. (AUTHENTICATION_FAILED)")

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(data: Path, port: int, user: str, password: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    Handler.backend = Backend(data, user, password)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


class ClickHouseHTTPServer:
    """The server above in a child process on a free loopback port."""

    def __init__(self, data: Path, user: str = "default", password: str = "secret") -> None:
        self.data, self.user, self.password = data, user, password
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def url(self, database: str = "qunflow", password: str | None = None, user: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"http://{user or self.user}:{secret}@127.0.0.1:{self.port}/{database}"

    def fresh_url(self) -> str:
        """The URL of a database no other test uses (qunflow creates it)."""
        return self.url(database=f"qf_{uuid.uuid4().hex[:12]}")

    def start(self) -> ClickHouseHTTPServer:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--data", str(self.data), "--user", self.user],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
            env={**os.environ, "CLICKHOUSE_TEST_PASSWORD": self.password})
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("port "):
            self.stop()
            raise RuntimeError(f"the ClickHouse test server did not start: {line!r}")
        self.port = int(line.split()[1])
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as answer:
                    if answer.read() == b"Ok.\n":
                        return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process:
            for stream in (self.process.stdout, self.process.stderr):
                if stream:
                    stream.close()

    def __enter__(self) -> ClickHouseHTTPServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="ClickHouse HTTP interface backed by chdb (tests only)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="default")
    arguments = parser.parse_args()
    serve(arguments.data, arguments.port, arguments.user, os.environ.get("CLICKHOUSE_TEST_PASSWORD", ""))
