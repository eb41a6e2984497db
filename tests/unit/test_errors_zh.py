"""Every refusal a person meets through a console form, a public page or the set-up CLI carries its Chinese
text (issue 12): the raise sites of the files below are read with `ast`, so a new raise without `zh=` fails
here. The Chinese must be Chinese (a CJK character in its literal parts) and the English must stay English."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import qunflow
from qunflow.errors import Conflict, InvalidInput, NotFound
from qunflow.i18n import TEXTS
from qunflow.services import catalog, coupons
from qunflow.services.users import add_user, set_password
from qunflow.workspace import Workspace

SRC = Path(qunflow.__file__).parent
FILES = ["services/catalog.py", "services/meetups.py", "services/page_texts.py", "services/waitlist.py",
         "services/users.py", "services/tasks.py", "services/rewards.py", "services/coupons.py",
         "services/playbook_views.py", "services/report_schedule.py", "services/gates.py",
         "services/welcome_docs.py", "services/keyword_rules.py", "services/posters.py", "services/spend.py",
         "web/auth.py", "web/console_admin.py", "cli/setup.py", "domain/entry.py", "web/console_setup.py",
         "domain/metrics.py", "services/member_records.py", "services/merges.py", "services/inbox.py"]
REFUSALS = {"InvalidInput", "Conflict", "NotFound", "Forbidden"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def _calls() -> list[tuple[str, int, ast.Call]]:
    found = []
    for name in FILES:
        tree = ast.parse((SRC / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if called in REFUSALS:
                    found.append((name, node.lineno, node))
    return found


def _literal_text(node: ast.expr) -> str:
    """The literal parts of a message expression (strings, f-string pieces, concatenations)."""
    return "".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def test_the_files_still_raise_refusals() -> None:
    assert len(_calls()) > 90  # the walk finds the raise sites (a broken walk would pass the test below)


def test_every_refusal_in_the_listed_files_has_its_chinese_text() -> None:
    missing = [f"{name}:{line}" for name, line, call in _calls() if not any(k.arg == "zh" for k in call.keywords)]
    assert missing == [], f"add zh= to these raises: {missing}"


def test_every_chinese_text_is_chinese_and_differs_from_the_english() -> None:
    for name, line, call in _calls():
        zh = next(k.value for k in call.keywords if k.arg == "zh")
        english = _literal_text(call.args[0]) if call.args else ""
        if isinstance(zh, ast.Call):  # a helper builds it (users._password_zh): checked at run time below
            continue
        text = _literal_text(zh)
        assert text.strip() and CJK.search(text), f"{name}:{line}: the zh text has no Chinese: {text!r}"
        assert not CJK.search(english), f"{name}:{line}: the English message has Chinese: {english!r}"
        assert text != english


def test_the_word_maps_cover_every_value_they_are_given() -> None:
    assert set(catalog.ZH_WORDS) >= {"channel", "campaign", "gate", "group", "entry point", "entry"}
    every_status = {s for starts, end in coupons.TRANSITIONS.values() for s in (*starts, end)}
    assert every_status <= set(coupons.ZH_STATUS) and set(coupons.TRANSITIONS) <= set(coupons.ZH_ENTRY)
    for status in ("held", "review", "paid", "capped", "rejected", "reversed", "clawed_back"):
        assert CJK.search(TEXTS[f"reward_{status}"]["zh"])  # rewards' refusals name the status in these words


def test_a_refusal_speaks_chinese_or_english_on_request(workspace: Workspace) -> None:
    catalog.add_channel(workspace, "xhs", "content")
    with pytest.raises(Conflict) as taken:
        catalog.add_channel(workspace, "xhs", "ad")
    assert taken.value.text("en") == str(taken.value) == "channel 'xhs' exists already"
    assert taken.value.text("zh") == "渠道 'xhs' 已存在"
    with pytest.raises(NotFound) as missing:
        catalog.add_campaign(workspace, "spring", "nope")
    assert missing.value.text("zh") == "找不到渠道 'nope'" and str(missing.value) == "no channel 'nope'"
    catalog.add_campaign(workspace, "spring", "xhs")
    catalog.archive_campaign(workspace, "spring")
    with pytest.raises(InvalidInput) as archived:
        catalog.add_entry_point(workspace, "note-1", "xhs", campaign="spring")
    assert archived.value.text("zh") == "活动 'spring' 已归档:请选择未归档的活动"
    with pytest.raises(Conflict) as restore:
        catalog.restore(workspace, "channel", "xhs")
    assert restore.value.text("zh") == "渠道 'xhs' 未归档"


def test_password_and_role_refusals_have_chinese(workspace: Workspace) -> None:
    with pytest.raises(InvalidInput) as short:
        add_user(workspace.engine, "amy", "operator", "short")
    assert str(short.value) == "a password has at least 10 characters"
    assert short.value.text("zh") == "密码至少 10 个字符"
    with pytest.raises(InvalidInput) as role:
        add_user(workspace.engine, "amy", "boss", "a-long-enough-password")
    assert str(role.value).startswith("unknown role 'boss'") and role.value.text("zh").startswith("未知的角色 'boss'")
    with pytest.raises(InvalidInput) as long:
        set_password(workspace.engine, "amy", "x" * 1025)
    assert long.value.text("zh") == "密码最多 1024 个字符"


def test_an_unknown_coupon_is_refused_in_chinese(workspace: Workspace) -> None:
    with pytest.raises(NotFound) as missing:
        coupons.show(workspace, "AAAA2222BBBB")
    assert str(missing.value) == "no such coupon" and missing.value.text("zh") == "找不到该优惠券"
