"""`qunflow serve`'s access log never holds a personal-link token: the lines are there, the tokens are
`***` (a member's /m/ link opens their page, an invite or referral code names them)."""

from __future__ import annotations

from pathlib import Path

import httpx

from qunflow.web.access_log import redact
from qunflow.workspace import init_workspace
from tests.serve_process import ServeProcess

TOKENS = {"/m/Mtok7Q2sXbL9/task/profile": "/m/***/task/profile",
          "/m/Mtok7Q2sXbL9/poster.png?lang=en": "/m/***/poster.png?lang=en",
          "/sandbox/invite/Inv4Rk8ZpW": "/sandbox/invite/***",
          "/r/RefC0de55": "/r/***",
          "/j/spring?ref=m_member77&utm=x": "/j/spring?ref=***&utm=x"}


def test_personal_link_tokens_are_not_written_to_the_access_log(tmp_path: Path) -> None:
    init_workspace(tmp_path / "ws").close()
    with ServeProcess(tmp_path / "ws") as server:
        for path in TOKENS:
            httpx.get(f"{server.url}{path}")
        httpx.post(f"{server.url}/m/Mtok7Q2sXbL9/task/profile")
        server.stop()
        log = server.log()
    for secret in ("Mtok7Q2sXbL9", "Inv4Rk8ZpW", "RefC0de55", "m_member77"):
        assert secret not in log, log
    for shown in TOKENS.values():
        assert f'"GET {shown} HTTP/1.1"' in log, log  # the request is still logged, with its status
    assert '"POST /m/***/task/profile HTTP/1.1"' in log


def test_other_paths_are_logged_as_they_are() -> None:
    for path in ("/j/spring", "/console/inbox?status=open", "/api/v1/metrics?from=2026-01-01", "/mx/abc"):
        assert redact(path) == path
