"""Referral links and posters (issue 5 part 1): real workspace, real font, real HTTP, QR decoded back."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageFont
from sqlalchemy import select
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.domain.rewards import parse_programs
from qunflow.errors import NotFound
from qunflow.services import catalog
from qunflow.services.join import submit_gate
from qunflow.services.posters import COLOURS, SHIPPED_PROGRAM, NoCJKFont, find_cjk_font, make_poster
from qunflow.services.privacy import member_link_token
from qunflow.services.referrals import landing_path, referral_code, referral_link
from qunflow.services.rewards import apply_programs, process_events
from qunflow.store.tables import events, members, referral_codes, referrals, rewards
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, PHONE, invite_token, setup_community

zxingcpp = pytest.importorskip("zxingcpp", reason="decoding posters needs zxing-cpp: pip install -e '.[test]'")
NO_CJK_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
runner = CliRunner()


def _has_cjk_font() -> bool:
    try:
        return bool(find_cjk_font(""))
    except NoCJKFont:
        return False


needs_font = pytest.mark.skipif(not _has_cjk_font(), reason="drawing posters needs a CJK font: "
                                "apt-get install fonts-noto-cjk (.ci/run does)")


def member(ws: Workspace, name: str = "李雷", user: str = "u1") -> str:
    """A member who passed the gate with this name and joined the group on the sandbox."""
    ticket = submit_gate(ws, "xhs-note-1", f"v-{user}", {**FORM, "name": name})
    assert ws.sandbox.join(user, name, invite_token(ticket.invite_url)) == "joined"
    return ticket.member_id


def qr_text(png: bytes) -> list[str]:
    return [found.text for found in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def ink(image: Image.Image, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> float:
    """Share of the pixels in `box` drawn in (nearly) `colour`."""
    region = image.crop(box).convert("RGB")
    raw = region.tobytes()
    near = sum(1 for i in range(0, len(raw), 3)
               if abs(raw[i] - colour[0]) + abs(raw[i + 1] - colour[1]) + abs(raw[i + 2] - colour[2]) < 60)
    return near / (region.width * region.height)


@needs_font
def test_poster_has_chinese_copy_and_a_qr_code_of_the_members_link(workspace: Workspace) -> None:
    setup_community(workspace)
    inviter = member(workspace, "李雷")
    poster = make_poster(workspace, inviter, "zh")

    assert qr_text(poster.png) == [referral_link(workspace, inviter).link] == [poster.link]
    thumbnail = io.BytesIO()  # as a chat shows it before it is opened: still scannable
    Image.open(io.BytesIO(poster.png)).reduce(3).save(thumbnail, "PNG")
    assert qr_text(thumbnail.getvalue()) == [poster.link]
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/r/[a-z2-9]{10}", poster.link)
    # the S3 copy with the shipped program's values, and the member's name
    assert poster.copy.main == "扫码入群,领 ¥10 新人券 + 免费咨询"
    assert poster.copy.sub == "邀请 1 人再得 ¥20;邀请 3 人解锁 VIP 特权"
    assert poster.copy.inviter == "李雷 邀请你加入"
    # the font has a real glyph for every Chinese character on the poster
    face = ImageFont.truetype(poster.font.path, 40, index=poster.font.index)
    missing = face.getmask("\U0010fffd")
    for char in set(poster.copy.main + poster.copy.sub + poster.copy.inviter + poster.copy.caption):
        if not char.isspace():
            mask = face.getmask(char)
            assert mask.getbbox() is not None and bytes(mask) != bytes(missing), char
    # and it was drawn: every text line's box carries ink of its colour, the gap between blocks none
    image = Image.open(io.BytesIO(poster.png))
    assert image.size == (poster.plan.width, poster.plan.height)
    for line in poster.plan.lines:
        width = ImageFont.truetype(poster.font.path, line.size, index=poster.font.index).getlength(line.text)
        box = (line.x, line.y, line.x + round(width), line.y + round(line.size * 1.2))
        assert ink(image, box, COLOURS[line.role]) > 0.04, line
    sub_bottom = max(line.y for line in poster.plan.lines if line.role == "sub") + 60
    assert ink(image, (60, sub_bottom, 690, poster.plan.qr.y - 80), COLOURS["main"]) == 0


@needs_font
def test_english_poster_and_a_member_without_a_name(workspace: Workspace) -> None:
    setup_community(workspace)
    with workspace.engine.begin() as conn:
        conn.execute(members.insert().values(id="m_walkin", tier="newbie", locale="en",
                                             created_at=workspace.clock()))
    poster = make_poster(workspace, "m_walkin")  # the member's language
    assert poster.copy.main.startswith("Scan to join, get a ¥10 new-member coupon")
    assert poster.copy.inviter is None and all(line.role != "inviter" for line in poster.plan.lines)
    assert qr_text(poster.png) == [poster.link]


@needs_font
def test_campaign_artwork_is_the_background(workspace: Workspace) -> None:
    setup_community(workspace)
    catalog.add_campaign(workspace, "spring", "xhs")
    catalog.add_entry_point(workspace, "spring-1", "xhs", gate="seed", campaign="spring")
    ticket = submit_gate(workspace, "spring-1", "v9", FORM)
    plain = Image.open(io.BytesIO(make_poster(workspace, ticket.member_id).png)).convert("RGB")
    (workspace.home / "posters").mkdir()
    Image.new("RGB", (300, 500), (20, 60, 200)).save(workspace.home / "posters" / "spring.jpg")
    art = make_poster(workspace, ticket.member_id)
    image = Image.open(io.BytesIO(art.png)).convert("RGB")
    assert sum(abs(a - b) for a, b in zip(image.getpixel((5, 5)), (20, 60, 200), strict=True)) < 30
    assert plain.getpixel((5, 5)) != image.getpixel((5, 5))
    assert qr_text(art.png) == [art.link]
    Image.effect_noise((750, 1334), 120).convert("RGB").save(workspace.home / "posters" / "spring.jpg")
    busy = make_poster(workspace, ticket.member_id)  # a busy picture: the QR code sits on its own panel
    assert qr_text(busy.png) == [busy.link]
    workspace.settings.poster_artwork = "missing.png"  # other campaigns: the setting, checked
    with pytest.raises(Exception, match="missing.png: no such file"):
        make_poster(workspace, member(workspace, "王芳", "u2"))


def test_without_a_cjk_font_posters_are_refused_with_the_install_command(workspace: Workspace) -> None:
    setup_community(workspace)
    inviter = member(workspace)
    for font, says in ((NO_CJK_FONT, "cannot draw Chinese"), ("/nowhere/font.ttf", "no such file")):
        workspace.settings.poster_font = font
        with pytest.raises(NoCJKFont, match="apt-get install fonts-noto-cjk") as caught:
            make_poster(workspace, inviter)
        assert says in str(caught.value)


def test_referral_code_is_created_once_and_unknown_members_are_refused(any_workspace: Workspace) -> None:
    ws = any_workspace
    setup_community(ws)
    inviter = member(ws)
    links: list[str] = []
    threads = [threading.Thread(target=lambda: links.append(referral_link(ws, inviter).link)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(links)) == 1 and len(links) == 6
    with ws.engine.begin() as conn:
        assert conn.execute(select(referral_codes)).all()[0].member_id == inviter
        assert referral_code(conn, inviter, "xhs-note-1") == links[0].rsplit("/", 1)[1]  # idempotent
        with pytest.raises(NotFound, match="no member"):
            referral_code(conn, "m_nobody")
    assert landing_path(ws, links[0].rsplit("/", 1)[1]) == f"/j/xhs-note-1?ref={inviter}"
    with pytest.raises(NotFound):
        landing_path(ws, "zzzzzzzzzz")


def test_code_pinned_to_an_entry_and_the_workspace_default(workspace: Workspace) -> None:
    setup_community(workspace)
    catalog.add_channel(workspace, "friends", "referral")
    catalog.add_entry_point(workspace, "friends-1", "friends", gate="seed")
    catalog.add_entry_point(workspace, "friends-2", "friends", gate="seed")
    inviter = member(workspace)
    with workspace.engine.begin() as conn:
        for member_id in ("m_imported", "m_other"):
            conn.execute(members.insert().values(id=member_id, tier="newbie", created_at=workspace.clock()))
        pinned = referral_code(conn, inviter, "friends-2")
        unpinned = referral_code(conn, "m_imported")
        with pytest.raises(NotFound, match="no entry point 'nope'"):
            referral_code(conn, "m_other", "nope")
    assert landing_path(workspace, pinned) == f"/j/friends-2?ref={inviter}"
    assert landing_path(workspace, unpinned) == "/j/friends-1?ref=m_imported"  # no own entry: referral channel
    workspace.settings.referral_entry = "xhs-note-1"
    assert landing_path(workspace, unpinned) == "/j/xhs-note-1?ref=m_imported"
    assert landing_path(workspace, pinned) == f"/j/friends-2?ref={inviter}"


# ---- over HTTP ---------------------------------------------------------------------------------------

def test_join_through_a_referral_link_carries_the_referrer(workspace: Workspace, live_server) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    workspace.settings.public_url = live_server.url
    inviter = member(workspace)
    link = referral_link(workspace, inviter).link
    with httpx.Client(headers={"accept-language": "zh-CN", **PHONE}) as client:
        hop = client.get(link)
        assert hop.status_code == 302 and hop.headers["location"] == f"/j/xhs-note-1?ref={inviter}"
        landing = client.get(link, follow_redirects=True)
        assert landing.status_code == 200 and f'action="/j/xhs-note-1?ref={inviter}"' in landing.text
        ticket = client.post(f"{live_server.url}/j/xhs-note-1?ref={inviter}", data={**FORM, "name": "韩梅梅"})
        assert ticket.status_code == 200
        invite = re.search(r'id="invite" href="([^"]+)"', ticket.text)
        assert invite
        joined = client.post(f"{live_server.url}{httpx.URL(invite.group(1)).path}", data={"name": "韩梅梅"})
        assert joined.status_code == 200
        unknown = client.get(f"{live_server.url}/r/abcdefghjk")
        unknown_en = client.get(f"{live_server.url}/r/abcdefghjk?lang=en")
    assert unknown.status_code == 404 and "链接不存在" in unknown.text
    assert unknown_en.status_code == 404 and "This link does not exist" in unknown_en.text
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.member_id, events.c.referrer_id)
                            .where(events.c.referrer_id.is_not(None)).order_by(events.c.seq)).all()
        invitee = conn.execute(select(members).where(members.c.referrer_id == inviter)).one()
    assert [r.type for r in rows] == ["landing_view", "joined"]  # the bare 302 records no visit
    assert {r.referrer_id for r in rows} == {inviter} and rows[-1].member_id == invitee.id != inviter
    # the rewards engine counts the invitee for the inviter (S3 program applied)
    with workspace.engine.begin() as conn:
        apply_programs(conn, parse_programs(SHIPPED_PROGRAM.read_text(encoding="utf-8")), workspace.clock())
    process_events(workspace)
    with workspace.engine.connect() as conn:
        referral = conn.execute(select(referrals)).one()
        granted = conn.execute(select(rewards.c.member_id, rewards.c.rule, rewards.c.value)
                               .order_by(rewards.c.id)).all()
    assert (referral.inviter_id, referral.invitee_id) == (inviter, invitee.id)
    assert [(g.member_id, g.rule, g.value) for g in granted] == [(inviter, "invite_one", 20),
                                                                 (invitee.id, "invite_one", 10)]


@needs_font
def test_poster_values_follow_the_applied_program(workspace: Workspace) -> None:
    setup_community(workspace)
    inviter = member(workspace)
    edited = SHIPPED_PROGRAM.read_text(encoding="utf-8").replace("value: 10,", "value: 15,").replace(
        "value: 20,", "value: 25,")
    with workspace.engine.begin() as conn:
        apply_programs(conn, parse_programs(edited), workspace.clock())
    poster = make_poster(workspace, inviter, "en")
    assert "¥15 new-member coupon" in poster.copy.main and "Invite 1 for ¥25 more" in poster.copy.sub


@needs_font
def test_api_gives_the_link_and_the_poster(workspace: Workspace, live_server, api_token: str) -> None:  # type: ignore[no-untyped-def]
    setup_community(workspace)
    inviter = member(workspace)
    auth = {"authorization": f"Bearer {api_token}"}
    with httpx.Client(base_url=live_server.url) as client:
        first = client.get(f"/api/v1/members/{inviter}/referral", headers=auth)
        again = client.get(f"/api/v1/members/{inviter}/referral", headers=auth)
        assert first.status_code == 200 and first.json() == again.json()
        body = first.json()
        assert body["link"] == referral_link(workspace, inviter).link and body["code"] in body["link"]
        poster = client.get(f"/api/v1/members/{inviter}/poster.png", params={"lang": "en"}, headers=auth)
        assert poster.status_code == 200 and poster.headers["content-type"] == "image/png"
        assert qr_text(poster.content) == [body["link"]]
        own = client.get(httpx.URL(body["poster_url"]).path)
        assert own.status_code == 200 and qr_text(own.content) == [body["link"]]
        assert own.content != poster.content  # the member's own language (zh) here

        assert client.get(f"/api/v1/members/{inviter}/referral").status_code == 401
        missing = client.get("/api/v1/members/m_nobody/referral", headers=auth)
        assert missing.status_code == 404 and "m_nobody" in missing.json()["error"]
        assert client.get("/api/v1/members/m_nobody/poster.png", headers=auth).status_code == 404
        bad_lang = client.get(f"/api/v1/members/{inviter}/poster.png", params={"lang": "fr"}, headers=auth)
        assert bad_lang.status_code == 422 and "lang" in bad_lang.json()["error"]
        token = member_link_token(workspace, inviter)
        forged = token[:-1] + ("1" if token.endswith("0") else "0")  # always differs from the real one
        assert client.get(f"/m/{forged}/poster.png").status_code == 401
        workspace.settings.poster_font = NO_CJK_FONT
        no_font = client.get(f"/api/v1/members/{inviter}/poster.png", headers=auth)
    assert no_font.status_code == 503 and "fonts-noto-cjk" in no_font.json()["error"]


# ---- CLI ---------------------------------------------------------------------------------------------

@needs_font
def test_cli_link_and_poster(workspace: Workspace, tmp_path: Path) -> None:
    setup_community(workspace)
    inviter = member(workspace)
    home = ["--workspace", str(workspace.home)]
    shown = runner.invoke(app, ["referrals", "link", inviter, *home])
    assert shown.exit_code == 0, shown.output
    assert referral_link(workspace, inviter).link in shown.output
    assert f"lands on /j/xhs-note-1?ref={inviter}" in shown.output
    with workspace.engine.begin() as conn:  # a member nobody knows where to send: the operator is told
        conn.execute(members.insert().values(id="m_imported", tier="newbie", created_at=workspace.clock()))
    nowhere = runner.invoke(app, ["referrals", "link", "m_imported", *home])
    assert nowhere.exit_code == 2 and "referral_entry" in nowhere.stderr
    out = tmp_path / "poster.png"
    made = runner.invoke(app, ["referrals", "poster", inviter, "--out", str(out), "--lang", "en", *home])
    assert made.exit_code == 0, made.output
    assert qr_text(out.read_bytes()) == [referral_link(workspace, inviter).link]

    unknown = runner.invoke(app, ["referrals", "link", "m_nobody", *home])
    assert unknown.exit_code == 2 and "no member 'm_nobody'" in unknown.stderr
    no_poster = runner.invoke(app, ["referrals", "poster", "m_nobody", "--out", str(out), *home])
    assert no_poster.exit_code == 2 and "no member" in no_poster.stderr
    bad_lang = runner.invoke(app, ["referrals", "poster", inviter, "--out", str(out), "--lang", "fr", *home])
    assert bad_lang.exit_code == 2 and "lang must be one of zh, en" in bad_lang.stderr
    no_font = runner.invoke(app, ["referrals", "poster", inviter, "--out", str(out), *home],
                            env={"QUNFLOW_POSTER_FONT": NO_CJK_FONT})
    assert no_font.exit_code == 2 and "apt-get install fonts-noto-cjk" in no_font.stderr
