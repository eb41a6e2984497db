"""Privacy rights end to end (issue 11, P8): the gate form over HTTP, `qunflow sandbox join`, the consent
pages, `qunflow member export|erase` in a subprocess, the API and the console on loopback, and the erasure
grep: no file of the workspace holds the erased person's name or phone number afterwards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import select

from qunflow.analytics.shipper import ship
from qunflow.services.automation import work_once
from qunflow.services.ingest import ingest_batch
from qunflow.services.join import member_of_user
from qunflow.services.privacy import unseal
from qunflow.store.consents import consents_in_force
from qunflow.store.tables import deliveries, members
from qunflow.workspace import Workspace
from tests.access import log_in
from tests.conftest import LiveServer
from tests.integration.test_join_flow import PHONE
from tests.integration.test_privacy_rights import CHAT, community

QUNFLOW = [sys.executable, "-c", "from qunflow.cli.main import main; main()"]
ERASED = ("Zhang Wei", "13800138000")


def qunflow(ws: Workspace, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "QUNFLOW_HOME"}
    return subprocess.run([*QUNFLOW, *args, "--workspace", str(ws.home)], capture_output=True, text=True,
                          input=stdin, env=env, timeout=120, check=False)


def gate(server: LiveServer, name: str, phone: str, *, marketing: bool) -> str:
    """Pass the gate through the real form; returns the sandbox invite token of the ticket page."""
    form = {"name": name, "phone": phone, "consent": "on", **({"marketing": "on"} if marketing else {})}
    with httpx.Client(base_url=server.url, headers=PHONE) as client:  # a phone's browser, not a script
        client.get("/j/xhs-1")
        page = client.post("/j/xhs-1", data=form)
    assert page.status_code == 200, page.text
    return re.search(r"/sandbox/invite/([A-Za-z0-9_-]+)", page.text).group(1)  # type: ignore[union-attr]


def files_holding(home: Path, text: str) -> list[str]:
    needle = text.encode()
    return [str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and needle in p.read_bytes()]


def member_of(ws: Workspace, user: str) -> str:
    with ws.engine.connect() as conn:
        found = member_of_user(conn, "sandbox", user)
    assert found
    return found


def test_consent_export_and_erasure_through_the_cli_and_http(workspace: Workspace, live_server: LiveServer) -> None:
    ws = workspace
    community(ws, "s2_warmup.yaml", "keyword_rules.yaml")
    # Two members through the gate form: Zhang ticks the marketing box, Li does not (it is unticked by default).
    with httpx.Client(base_url=live_server.url) as client:
        landing = client.get("/j/xhs-1").text
    assert re.search(r'<input type="checkbox" name="marketing" id="marketing"\s*>', landing)
    ws.sandbox.join("u_zhang", "Zhang Wei", gate(live_server, "Zhang Wei", "138-0013-8000", marketing=True))
    ws.sandbox.join("u_li", "Li Na", gate(live_server, "Li Na", "13900139000", marketing=False))
    zhang, li = member_of(ws, "u_zhang"), member_of(ws, "u_li")

    # A friend adds Wang straight into the group: the welcome asks for consent, marketing waits for it.
    added = qunflow(ws, "sandbox", "join", "newbie-1", "--name", "Wang Fang")
    assert added.returncode == 0, added.stderr
    wang_user = added.stdout.strip().splitlines()[-1]
    wang = member_of(ws, wang_user)
    [welcome] = [m["text"] for m in ws.sandbox.messages(dm_user_id=wang_user)]
    consent_link = re.search(r"https?://\S+/m/(\S+)/consent", welcome).group(0)  # type: ignore[union-attr]
    consent_path = consent_link.split("/m/", 1)[1]
    with httpx.Client(base_url=live_server.url) as client:
        asked = client.get(f"/m/{consent_path}?lang=en")
        assert asked.status_code == 200 and "Yes, send them" in asked.text
        with ws.engine.connect() as conn:
            assert "marketing" not in consents_in_force(conn, wang)
        done = client.post(f"/m/{consent_path}?lang=en")
        assert done.status_code == 200 and "you will get news of events and offers" in done.text
        assert client.get("/m/m_x.0000/consent").status_code == 401
    with ws.engine.connect() as conn:
        assert consents_in_force(conn, wang)["marketing"] is True

    ws.sandbox.say("u_zhang", "我要退款,电话 13800138000", CHAT)
    work_once(ws)
    with ws.engine.connect() as conn:
        statuses = dict(conn.execute(select(deliveries.c.member_id, deliveries.c.status)
                                     .where(deliveries.c.kind == "playbook")).all())
    assert statuses == {zhang: "sent", li: "skipped", wang: "sent"}
    # The unsubscribe link of Zhang's marketing DM, followed over HTTP, withdraws it (after one confirmation).
    promo = next(m["text"] for m in ws.sandbox.messages(dm_user_id="u_zhang") if "/unsubscribe" in m["text"])
    unsubscribe = "/m/" + re.search(r"/m/(\S+/unsubscribe)", promo).group(1)  # type: ignore[union-attr]
    with httpx.Client(base_url=live_server.url) as client:
        assert "确认退订" in client.get(unsubscribe + "?lang=zh").text
        assert "已退订" in client.post(unsubscribe + "?lang=zh").text
    with ws.engine.connect() as conn:
        assert consents_in_force(conn, zhang) == {"profile": True, "marketing": False}
    # A shop reports Zhang's order with the buyer's phone in its properties: it reaches the analytics store too.
    stored = ingest_batch(ws.engine, [{"event_id": "shop-o1", "type": "order", "ts": "2026-03-02T13:00:00+08:00",
                                       "member_id": zhang, "amount": "99", "properties": {
                                           "buyer": "Zhang Wei", "buyer_phone": "13800138000", "sku": "A1"}}])
    assert stored.as_json()["stored"] == 1
    ship(ws)
    metrics_before = qunflow(ws, "metrics", "--from", "2026-03-01", "--to", "2026-03-31", "--as-of", "2026-04-30",
                             "--format", "json")
    assert metrics_before.returncode == 0, metrics_before.stderr

    # Export by phone, in any spelling of it.
    exported = qunflow(ws, "member", "export", "--phone", "+86 138 0013 8000")
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    assert document["member"]["id"] == zhang and document["member"]["profile"]["name"] == "Zhang Wei"
    assert any("Zhang Wei" in (s["text"] or "") for s in document["sends"])
    assert document["platform_records"]["sandbox"][0]["messages"]
    assert qunflow(ws, "member", "export", "--phone", "13700000000").returncode == 2

    # Erase: asks first (no: nothing happens), then --yes.
    refused = qunflow(ws, "member", "erase", zhang, stdin="n\n")
    assert refused.returncode != 0 and "nothing erased" in refused.stderr
    assert member_of(ws, "u_zhang") == zhang
    for text in ERASED:  # before: the grep finds them (sandbox messages, the chat's records)
        assert files_holding(ws.home, text), text
    erased = qunflow(ws, "member", "erase", "--phone", "13800138000", "--yes")
    assert erased.returncode == 0, erased.stderr
    assert f"member {zhang} erased" in erased.stdout and "every metric M1-M9 stays the same" in erased.stdout

    # The grep: every file of the workspace (state DB and its -wal/-shm, sandbox.db, analytics, reports).
    files = [str(p.relative_to(ws.home)) for p in ws.home.rglob("*") if p.is_file()]
    assert "qunflow.db" in files and "sandbox.db" in files and "analytics.duckdb" in files
    for text in ERASED:
        assert files_holding(ws.home, text) == [], text
    assert files_holding(ws.home, "Li Na")  # the grep can find a name: the other member's is still there
    # Encrypted fields do not show in a grep: decrypt every one.
    with ws.engine.connect() as conn:
        profiles = [unseal(ws, p) for p in conn.execute(select(members.c.profile)).scalars()]
        texts = [ws.fernet.decrypt(b).decode() for b in conn.execute(
            select(deliveries.c.body).where(deliveries.c.body.is_not(None))).scalars()]
    plain = json.dumps(profiles, ensure_ascii=False) + "\n".join(texts)
    assert "Li Na" in plain and not any(text in plain for text in ERASED)

    metrics_after = qunflow(ws, "metrics", "--from", "2026-03-01", "--to", "2026-03-31", "--as-of", "2026-04-30",
                            "--format", "json")
    assert json.loads(metrics_after.stdout) == json.loads(metrics_before.stdout)
    again = qunflow(ws, "member", "export", zhang)
    assert again.returncode == 2 and "was erased on" in again.stderr


def test_member_export_and_erase_over_the_api_and_the_console(workspace: Workspace, live_server: LiveServer,
                                                               api_token: str) -> None:
    ws = workspace
    community(ws)
    ws.sandbox.join("u_li", "Li Na", gate(live_server, "Li Na", "13900139000", marketing=False))
    ws.sandbox.join("u_qi", "Qi Yue", gate(live_server, "Qi Yue", "13700137000", marketing=False))
    li, qi = member_of(ws, "u_li"), member_of(ws, "u_qi")
    auth = {"authorization": f"Bearer {api_token}"}
    with httpx.Client(base_url=live_server.url) as client:
        assert client.get(f"/api/v1/members/{li}/export").status_code == 401
        document = client.get(f"/api/v1/members/{li}/export", headers=auth).json()
        assert document["member"]["profile"]["name"] == "Li Na"
        missing = client.get("/api/v1/members/m_0000000000000000/export", headers=auth)
        assert missing.status_code == 404 and "no member" in missing.json()["error"]
        granted = client.post(f"/api/v1/members/{li}/consent", headers=auth, json={"granted": True})
        assert granted.json() == {"profile": True, "marketing": True}
        erased = client.post(f"/api/v1/members/{li}/erase", headers=auth).json()
        assert erased["member_id"] == li and erased["counts"]["identities_deleted"] == 1
        assert client.get(f"/api/v1/members/{li}/export", headers=auth).status_code == 404

        assert client.get(f"/console/members/{qi}?lang=en").status_code == 303  # to the login
        csrf = log_in(client, ws)
        page = client.get(f"/console/members/{qi}?lang=en")
        # The member record shows the profile, decrypted, to a role that may read members (issue 13).
        assert page.status_code == 200 and "Qi Yue" in page.text
        download = client.get(f"/console/members/{qi}/export")
        assert download.headers["content-disposition"] == f'attachment; filename="{qi}.json"'
        assert download.json()["member"]["profile"]["name"] == "Qi Yue"
        origin = {"origin": live_server.url}
        wrong = client.post(f"/console/members/{qi}/erase", data={"confirm": "yes", "csrf": csrf}, headers=origin)
        assert wrong.status_code == 400 and qi in wrong.json()["error"]
        assert client.post(f"/console/members/{qi}/erase", data={"confirm": qi, "csrf": csrf}).status_code == 403
        assert client.post(f"/console/members/{qi}/erase", data={"confirm": qi}, headers=origin).status_code == 403
        done = client.post(f"/console/members/{qi}/erase?lang=en", data={"confirm": qi, "csrf": csrf},
                           headers=origin)
        assert done.status_code == 200 and "personal data is erased" in done.text
    assert files_holding(ws.home, "Qi Yue") == [] and files_holding(ws.home, "Li Na") == []
