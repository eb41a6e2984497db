"""Platform webhooks are signed with a secret of their own, made at `qunflow init` (or on first open of an
older workspace), never with a slice of the encryption key: knowing how a webhook is signed must not give
away the key that encrypts members' personal fields."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path

import httpx

from qunflow.settings import WEBHOOK_SECRET_FILE
from qunflow.workspace import Workspace, init_workspace, open_workspace
from tests.conftest import LiveServer

UPDATE = json.dumps({"kind": "no_such_kind", "at": "2026-03-01T09:00:00"}).encode()


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_init_makes_a_webhook_secret_apart_from_the_encryption_key(workspace: Workspace) -> None:
    path = workspace.home / WEBHOOK_SECRET_FILE
    secret = path.read_text().strip()
    key = workspace.settings.encryption_key().decode()
    assert len(secret) >= 32 and secret not in key and key[:32] not in secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert workspace.host.secret == secret
    assert workspace.sandbox.sign(UPDATE) == sign(secret, UPDATE)


def test_an_older_workspace_gets_one_on_first_open_and_keeps_it(tmp_path: Path) -> None:
    init_workspace(tmp_path / "old").close()
    (tmp_path / "old" / WEBHOOK_SECRET_FILE).unlink()  # as made before the webhook secret existed
    first = open_workspace(tmp_path / "old")
    made = first.host.secret
    assert (tmp_path / "old" / WEBHOOK_SECRET_FILE).read_text().strip() == made
    assert made not in first.settings.encryption_key().decode()
    first.close()
    assert open_workspace(tmp_path / "old").host.secret == made


def test_the_sandbox_webhook_takes_the_webhook_secret_and_refuses_the_key(workspace: Workspace) -> None:
    secret = (workspace.home / WEBHOOK_SECRET_FILE).read_text().strip()
    key_slice = workspace.settings.encryption_key().decode()[:32]  # what signed webhooks before
    with LiveServer(workspace) as server:
        with_key = httpx.post(f"{server.url}/hooks/sandbox", content=UPDATE,
                              headers={"x-sandbox-signature": sign(key_slice, UPDATE)})
        with_secret = httpx.post(f"{server.url}/hooks/sandbox", content=UPDATE,
                                 headers={"x-sandbox-signature": sign(secret, UPDATE)})
    assert with_key.status_code == 401 and "bad signature" in with_key.json()["error"]
    assert with_secret.status_code == 400 and "unknown kind" in with_secret.json()["error"]  # signature passed
