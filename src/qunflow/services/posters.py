"""Referral posters (S3) as PNG: artwork, the S3 copy in the member's language, their own QR code.

The CJK font is the `poster_font` setting (QUNFLOW_POSTER_FONT), else one fontconfig knows for
Chinese (`fc-list :lang=zh`), else a known system path; each candidate must really draw Chinese
(its glyphs differ from the font's "missing glyph" box). Without one, posters are refused with the
command that installs one, rather than drawn as boxes.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError
from sqlalchemy import select

from qunflow.domain.poster import Copy, Layout, Offer, layout, money, offer_of
from qunflow.domain.rewards import Program, parse_programs
from qunflow.errors import InvalidInput, Unavailable
from qunflow.i18n import LANGUAGES, t
from qunflow.services.privacy import unseal
from qunflow.services.referrals import check_member, referral_link
from qunflow.services.rewards import active_programs
from qunflow.store.tables import campaigns, entry_points, members
from qunflow.workspace import Workspace

SHIPPED_PROGRAM = Path(__file__).resolve().parent.parent / "playbooks" / "s3_referral_rewards.yaml"
KNOWN_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian/Ubuntu fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)
PROBE = "扫码入群领新人券邀请特权免费咨询"
ARTWORK_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
INSTALL_HINT = ("no font that can draw Chinese was found: install one (`apt-get install fonts-noto-cjk`, "
                "or fonts-wqy-microhei) or set QUNFLOW_POSTER_FONT (poster_font in qunflow.toml) to a "
                ".ttf/.otf/.ttc file")
INSTALL_HINT_ZH = ("找不到能显示中文的字体:请安装一个(`apt-get install fonts-noto-cjk` 或 fonts-wqy-microhei),"
                   "或把 QUNFLOW_POSTER_FONT(qunflow.toml 中的 poster_font)设为一个 .ttf/.otf/.ttc 文件")


class NoCJKFont(Unavailable):
    """Posters need a font with Chinese glyphs and the system has none."""


@dataclass(frozen=True)
class FontChoice:
    path: str
    index: int = 0  # the face inside a .ttc collection


def draws_chinese(font: FontChoice, text: str = PROBE) -> bool:
    """True when every character of `text` has a real glyph (not empty, not the missing-glyph box)."""
    try:
        face = ImageFont.truetype(font.path, 40, index=font.index)
    except OSError:
        return False
    missing = face.getmask("\U0010fffd")
    missing_key = (missing.size, bytes(missing))
    for char in set(text):
        mask = face.getmask(char)
        if mask.getbbox() is None or (mask.size, bytes(mask)) == missing_key:
            return False
    return True


def _fontconfig_candidates() -> list[FontChoice]:
    if shutil.which("fc-list") is None:
        return []
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "--format", "%{file}\t%{index}\t%{family}\t%{style}\n"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    ranked: list[tuple[int, FontChoice]] = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 4 or not parts[1].isdigit():
            continue
        family, style = parts[2], parts[3]
        score = ("SC" in family or "CN" in family) * 2 + ("Regular" in style) + ("Mono" not in family)
        ranked.append((-score, FontChoice(parts[0], int(parts[1]))))
    return [choice for _score, choice in sorted(ranked, key=lambda item: (item[0], item[1].path, item[1].index))]


@lru_cache(maxsize=8)
def find_cjk_font(override: str = "") -> FontChoice:
    """The font posters are drawn with. Raises NoCJKFont (with the install command) when there is none."""
    if override:
        choice = FontChoice(override)
        if not Path(override).is_file():
            raise NoCJKFont(f"poster font {override}: no such file ({INSTALL_HINT})",
                            zh=f"海报字体 {override}:文件不存在({INSTALL_HINT_ZH})")
        if not draws_chinese(choice):
            raise NoCJKFont(f"poster font {override} cannot draw Chinese ({INSTALL_HINT})",
                            zh=f"海报字体 {override} 无法显示中文({INSTALL_HINT_ZH})")
        return choice
    for choice in [*_fontconfig_candidates(), *(FontChoice(p) for p in KNOWN_FONTS if Path(p).is_file())]:
        if draws_chinese(choice):
            return choice
    raise NoCJKFont(INSTALL_HINT, zh=INSTALL_HINT_ZH)


def _font_setting(ws: Workspace) -> str:
    value = ws.settings.poster_font
    return str(ws.home / value) if value and not Path(value).is_absolute() else value


# --- what goes on the poster ------------------------------------------------------------------------

def current_offer(ws: Workspace) -> Offer:
    """The S3 values from the applied S3 program (so edits show), else from the shipped file."""
    with ws.engine.connect() as conn:
        applied = [program for _version, program in active_programs(conn)]
    chosen: Program | None = next((p for p in applied if p.key == "s3_referral"), None)
    chosen = chosen or next((p for p in applied if any(r.invitees for r in p.rules)), None)
    if chosen is None:
        chosen = parse_programs(SHIPPED_PROGRAM.read_text(encoding="utf-8"), str(SHIPPED_PROGRAM))[0].program
    return offer_of(chosen)


def poster_copy(offer: Offer, lang: str, name: str | None) -> Copy:
    main = (t("poster_main", lang, coupon=money(offer.invitee)) if offer.invitee is not None
            else t("poster_main_plain", lang))
    sub = (t("poster_sub", lang, reward=money(offer.inviter), team=offer.team_size) if offer.inviter is not None
           else t("poster_sub_plain", lang, team=offer.team_size))
    inviter = t("poster_inviter", lang, name=name.strip()[:24]) if name and name.strip() else None
    return Copy(main=main, sub=sub, inviter=inviter, caption=t("poster_caption", lang))


def _member(ws: Workspace, member_id: str) -> tuple[str | None, str | None, str]:
    """The member's display name (from the gate), their campaign key and locale."""
    with ws.engine.connect() as conn:
        row = conn.execute(select(members.c.profile, members.c.locale, campaigns.c.key)
                           .select_from(members.outerjoin(entry_points, entry_points.c.id == members.c.entry_point_id)
                                        .outerjoin(campaigns, campaigns.c.id == entry_points.c.campaign_id))
                           .where(members.c.id == member_id)).one()
    name = unseal(ws, row.profile).get("name")
    return (str(name) if name else None), row.key, row.locale or "zh"


def artwork_path(ws: Workspace, campaign: str | None) -> Path | None:
    """`posters/<campaign>.png|jpg|webp` in the workspace, else the `poster_artwork` setting, else none."""
    if campaign:
        for suffix in ARTWORK_SUFFIXES:
            candidate = ws.home / "posters" / f"{campaign}{suffix}"
            if candidate.is_file():
                return candidate
    if ws.settings.poster_artwork:
        path = Path(ws.settings.poster_artwork)
        path = path if path.is_absolute() else ws.home / path
        if not path.is_file():
            raise Unavailable(f"poster_artwork {path}: no such file (fix the setting or remove it)",
                              zh=f"poster_artwork {path}:文件不存在(请修正该设置或删除它)")
        return path
    return None


# --- drawing -----------------------------------------------------------------------------------------

COLOURS = {"inviter": (90, 90, 90), "main": (198, 40, 40), "sub": (51, 51, 51), "caption": (85, 85, 85)}


def _background(size: tuple[int, int], artwork: Path | None) -> Image.Image:
    if artwork is not None:
        try:
            with Image.open(artwork) as image:
                return ImageOps.fit(image.convert("RGB"), size)
        except (OSError, UnidentifiedImageError) as exc:
            raise Unavailable(f"poster artwork {artwork} is not an image Pillow can read: {exc}",
                              zh=f"海报底图 {artwork} 不是 Pillow 能读取的图片:{exc}") from None
    gradient = Image.linear_gradient("L").resize(size)
    return ImageOps.colorize(gradient, (255, 111, 80), (255, 196, 120))


def _qr(link: str, box: int) -> Image.Image:
    code = segno.make(link, error="m")
    modules = code.symbol_size(scale=1, border=2)[0]
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=max(1, box // modules), border=2)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def draw(copy: Copy, link: str, font: FontChoice, artwork: Path | None = None) -> tuple[bytes, Layout]:
    """The PNG, and the layout it was drawn from (tests use it to look at the text regions)."""
    faces: dict[int, ImageFont.FreeTypeFont] = {}

    def face(size: int) -> ImageFont.FreeTypeFont:
        if size not in faces:
            faces[size] = ImageFont.truetype(font.path, size, index=font.index)
        return faces[size]

    plan = layout(copy, lambda text, size: face(size).getlength(text))
    image = _background((plan.width, plan.height), artwork).convert("RGBA")
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    shade = ImageDraw.Draw(overlay)
    card = plan.card
    shade.rounded_rectangle((card.x, card.y, card.x + card.width, card.y + card.height), 28,
                            fill=(255, 255, 255, 225))
    qr = plan.qr
    shade.rounded_rectangle((qr.x - 32, qr.y - 32, qr.x + qr.width + 32, qr.y + qr.height + 84), 28,
                            fill=(255, 255, 255, 240))
    image = Image.alpha_composite(image, overlay).convert("RGB")
    pen = ImageDraw.Draw(image)
    for line in plan.lines:
        bold = 1 if line.role == "main" else 0
        pen.text((line.x, line.y), line.text, font=face(line.size), fill=COLOURS[line.role],
                 stroke_width=bold, stroke_fill=COLOURS[line.role])
    code = _qr(link, qr.width)
    image.paste(code, (qr.x + (qr.width - code.width) // 2, qr.y + (qr.height - code.height) // 2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # default zlib level: 4% bigger than optimize=True, 3x faster
    return buffer.getvalue(), plan


@dataclass(frozen=True)
class Poster:
    png: bytes
    copy: Copy
    plan: Layout
    link: str  # what the QR code says: the member's referral link
    font: FontChoice


def make_poster(ws: Workspace, member_id: str, lang: str | None = None) -> Poster:
    """The member's poster in `lang` (default: the member's language), with what it was made from."""
    if lang is not None and lang not in LANGUAGES:
        raise InvalidInput(f"lang must be one of {', '.join(LANGUAGES)}, not {lang!r}",
                           zh=f"语言须为 {'、'.join(LANGUAGES)} 之一,当前为 {lang!r}")
    check_member(ws, member_id)
    font = find_cjk_font(_font_setting(ws))
    name, campaign, locale = _member(ws, member_id)
    language = lang or (locale if locale in LANGUAGES else "zh")
    link = referral_link(ws, member_id).link
    copy = poster_copy(current_offer(ws), language, name)
    png, plan = draw(copy, link, font, artwork_path(ws, campaign))
    return Poster(png, copy, plan, link, font)


def render_poster(ws: Workspace, member_id: str, lang: str | None = None) -> bytes:
    """The member's poster as PNG bytes."""
    return make_poster(ws, member_id, lang).png
