"""Personal referral codes and links (S3): `/r/<code>` lands on an entry point with `?ref=<member>`.

A member has one code, created on first use (10 characters from a 31-letter alphabet, about 50 bits
from `secrets`: not guessable, short enough to type). The landing entry point is the one stored with
the code, else the workspace's `referral_entry` setting, else the entry point the member joined
through, else the first entry point of a `referral` channel.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from qunflow.errors import InvalidInput, NotFound
from qunflow.services.privacy import member_link_token
from qunflow.store.tables import channels, entry_points, members, referral_codes
from qunflow.workspace import Workspace, utc_now

ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: codes are read aloud and typed
CODE_LENGTH = 10


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def _member_exists(conn: Connection, member_id: str) -> bool:
    return conn.execute(select(members.c.id).where(members.c.id == member_id)).first() is not None


def _entry_exists(conn: Connection, code: str) -> bool:
    return conn.execute(select(entry_points.c.id).where(entry_points.c.code == code)).first() is not None


def referral_code(conn: Connection, member_id: str, entry_code: str | None = None) -> str:
    """The member's referral code, created on first call (later calls return the same one).

    `entry_code` pins the landing entry point when the code is created. Raises NotFound for an
    unknown member or entry point.
    """
    existing = conn.execute(select(referral_codes.c.code)
                            .where(referral_codes.c.member_id == member_id)).scalar()
    if existing is not None:
        return str(existing)
    if not _member_exists(conn, member_id):
        raise NotFound(f"no member {member_id!r}", zh=f"没有成员 {member_id!r}")
    if entry_code is not None and not _entry_exists(conn, entry_code):
        raise NotFound(f"no entry point {entry_code!r} (see `qunflow entry list`)",
                       zh=f"找不到入口 {entry_code!r}(可用 `qunflow entry list` 查看)")
    for _attempt in range(5):
        code = new_code()
        try:
            with conn.begin_nested():  # a concurrent first call for the same member wins; we read its code
                conn.execute(insert(referral_codes).values(code=code, member_id=member_id,
                                                           entry_code=entry_code, created_at=utc_now()))
            return code
        except IntegrityError:
            raced = conn.execute(select(referral_codes.c.code)
                                 .where(referral_codes.c.member_id == member_id)).scalar()
            if raced is not None:
                return str(raced)
    raise RuntimeError("could not draw a free referral code")  # pragma: no cover - 5 collisions at 50 bits


def default_entry(ws: Workspace, conn: Connection, member_id: str) -> str:
    """The entry point a referral link lands on when its code names none."""
    setting = ws.settings.referral_entry
    if setting and _entry_exists(conn, setting):
        return setting
    own = conn.execute(select(entry_points.c.code).join(members, members.c.entry_point_id == entry_points.c.id)
                       .where(members.c.id == member_id, entry_points.c.archived_at.is_(None))).scalar()
    if own is not None:
        return str(own)
    referral_channel = conn.execute(
        select(entry_points.c.code).join(channels, channels.c.id == entry_points.c.channel_id)
        .where(channels.c.kind == "referral", entry_points.c.archived_at.is_(None))
        .order_by(entry_points.c.id).limit(1)).scalar()
    if referral_channel is not None:
        return str(referral_channel)
    raise NotFound("referral links need an entry point to land on: set `referral_entry` in qunflow.toml "
                   "or add one with `qunflow entry add CODE --channel CHANNEL` on a referral channel",
                   zh="邀请链接需要一个落地入口:请在 qunflow.toml 中设置 `referral_entry`,"
                      "或用 `qunflow entry add CODE --channel CHANNEL` 在转介绍渠道上添加一个")


@dataclass(frozen=True)
class ReferralLink:
    member_id: str
    code: str
    link: str  # {public_url}/r/{code}
    poster_url: str  # the member's own poster: {public_url}/m/{token}/poster.png


def _base(ws: Workspace) -> str:
    return ws.settings.public_url.rstrip("/")


def referral_link(ws: Workspace, member_id: str, entry_code: str | None = None) -> ReferralLink:
    """The member's code and link (created on first use), and the personal URL of their poster."""
    with ws.engine.begin() as conn:
        code = referral_code(conn, member_id, entry_code)
    token = member_link_token(ws, member_id)
    return ReferralLink(member_id, code, f"{_base(ws)}/r/{code}", f"{_base(ws)}/m/{quote(token)}/poster.png")


def landing_path(ws: Workspace, code: str) -> str:
    """Where `/r/{code}` redirects: `/j/{entry}?ref={member_id}`. NotFound for an unknown code."""
    if not code.isalnum() or len(code) > 16:
        raise NotFound("this referral link does not exist", zh="这个邀请链接不存在")
    with ws.engine.connect() as conn:
        row = conn.execute(select(referral_codes).where(referral_codes.c.code == code.lower())).first()
        if row is None:
            raise NotFound("this referral link does not exist", zh="这个邀请链接不存在")
        entry = row.entry_code if row.entry_code and _entry_exists(conn, row.entry_code) else None
        entry = entry or default_entry(ws, conn, row.member_id)
    return f"/j/{quote(entry)}?ref={quote(row.member_id)}"


def check_member(ws: Workspace, member_id: str) -> None:
    if not member_id or len(member_id) > 128:
        raise InvalidInput("a member id is 1 to 128 characters", zh="成员 ID 须为 1 到 128 个字符")
    with ws.engine.connect() as conn:
        if not _member_exists(conn, member_id):
            raise NotFound(f"no member {member_id!r}", zh=f"没有成员 {member_id!r}")
