"""Message templates: variables used, the apply-time check, sandboxed rendering, previews and limits."""

from __future__ import annotations

import keyword

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qunflow.domain.templates import (
    MAX_MESSAGE_CHARS,
    MAX_TEMPLATE_CHARS,
    TemplateError,
    check_template,
    pick_text,
    preview_template,
    render_template,
    template_variables,
)
from qunflow.domain.welcome import WELCOME_DM, WELCOME_MENU
from qunflow.errors import InvalidInput

COUPON = {
    "zh": "{{ name }},你的专属顾问是{{ advisor }}。\n新人券码:{{ coupon_code }}\n领取:{{ links.coupon }}",
    "en": "{{ name }}, your advisor is {{ advisor }}.\nCoupon code: {{ coupon_code }}\nClaim: {{ links.coupon }}",
}
VALUES = {"name": "王小明", "advisor": "李老师", "coupon_code": "NEW-8F3K", "links": {"coupon": "https://q.example/c/1"}}


def test_variables_of_a_bilingual_template():
    assert template_variables(COUPON) == {"name", "advisor", "coupon_code", "links"}
    assert template_variables("{% for t in tasks %}{{ loop.index }}. {{ t.title }}\n{% endfor %}") == {"tasks"}


def test_render_picks_the_language_and_does_not_escape_chat_text():
    assert render_template(COUPON, VALUES, "zh") == (
        "王小明,你的专属顾问是李老师。\n新人券码:NEW-8F3K\n领取:https://q.example/c/1")
    assert render_template(COUPON, VALUES, "en").startswith("王小明, your advisor is 李老师.")
    assert render_template("{{ name }} & <b>", {"name": "A&B <x>"}, "en") == "A&B <x> & <b>"


def test_missing_language_falls_back_to_chinese_then_english():
    assert pick_text({"zh": "中文", "en": "English"}, "fr") == "中文"
    assert pick_text({"en": "English"}, "zh") == "English"
    with pytest.raises(TemplateError, match="no text"):
        pick_text({"zh": ""}, "zh")


def test_check_names_the_unknown_variable_its_line_and_a_close_match():
    template = "你好 {{ name }}\n券码:{{ coupn_code }}\n{{ advisr }}"
    with pytest.raises(TemplateError) as caught:
        check_template(template, {"name", "coupon_code", "advisor"})
    error = caught.value
    assert (error.variable, error.line) == ("coupn_code", 2)
    assert "did you mean 'coupon_code'" in str(error)
    assert "also unknown: advisr" in str(error)
    assert isinstance(error, InvalidInput)


def test_check_of_a_bilingual_template_says_which_language_is_wrong():
    with pytest.raises(TemplateError, match=r"template \(en text, line 1\): unknown variable 'nmae'") as caught:
        check_template({"zh": "{{ name }}", "en": "{{ nmae }}"}, {"name"})
    assert caught.value.lang == "en"


def test_check_returns_the_variables_used_when_all_exist():
    assert check_template(COUPON, {"name", "advisor", "coupon_code", "links", "unused"}) == {
        "name", "advisor", "coupon_code", "links"}


def test_syntax_errors_carry_the_line():
    with pytest.raises(TemplateError) as caught:
        check_template("第一行\n第二行 {% if name %}\n第三行", {"name"})
    assert caught.value.line == 3  # where the template ended without {% endif %}
    assert "endif" in str(caught.value)
    with pytest.raises(TemplateError, match="line 2"):
        check_template("ok\n{{ name }", {"name"})


@pytest.mark.parametrize(("template", "says"), [
    ("{% set x = 1 %}{{ x }}", "{% set %}"),
    ("{{ name.upper() }}", "calls"),
    ("{{ range(10) }}", "calls"),
    ("{% include 'secret.txt' %}", "{% include %}"),
    ("{% macro m() %}x{% endmacro %}", "{% macro %}"),
    ("{{ '%999999999d' % 1 }}", "%"),
    ("{{ 9 ** 99999 }}", r"\*\*"),
    ("{{ name|center(999999999) }}", "filter 'center' is not available"),
    ("{{ name is fancy }}", "no test 'fancy'"),
    ("{{ name.__class__ }}", "private"),
    ("{% for a in xs %}{% for b in xs %}{{ b }}{% endfor %}{% endfor %}", "nest loops"),
])
def test_the_sandbox_refuses_what_chat_templates_do_not_need(template: str, says: str):
    with pytest.raises(TemplateError, match=says):
        check_template(template, {"name", "xs"})
    with pytest.raises(TemplateError):
        render_template(template, {"name": "x", "xs": [1]}, "zh")


def test_python_internals_stay_out_of_reach_at_render_time():
    with pytest.raises(TemplateError, match="unsafe"):
        render_template("{{ member['__class__'] }}", {"member": "x"}, "en")


def test_a_render_without_a_value_fails_instead_of_sending_a_blank():
    with pytest.raises(TemplateError, match="'coupon_code' is undefined"):
        render_template("券码:{{ coupon_code }}", {}, "zh")


def test_length_limits():
    with pytest.raises(TemplateError, match=f"longer than {MAX_TEMPLATE_CHARS}"):
        check_template("x" * (MAX_TEMPLATE_CHARS + 1), set())
    with pytest.raises(TemplateError, match=f"longer than {MAX_MESSAGE_CHARS}"):
        render_template("{% for x in items %}{{ x }}{% endfor %}", {"items": ["很长" * 100] * 30}, "zh")
    with pytest.raises(TemplateError, match="repeating"):
        render_template("{{ name * 100000 }}", {"name": "ab"}, "en")
    assert render_template("{{ name * 3 }}", {"name": "哈"}, "zh") == "哈哈哈"
    assert len(render_template("{{ x }}", {"x": "y" * MAX_MESSAGE_CHARS}, "en")) == MAX_MESSAGE_CHARS


def test_conditions_loops_and_filters_for_chat():
    template = ("{% if tasks %}今日任务:\n{% for t in tasks %}{{ loop.index }}. {{ t|trim }}\n{% endfor %}"
                "{% else %}今天没有任务{% endif %}{{ advisor|default('顾问') }}")
    assert render_template(template, {"tasks": [" 签到 ", "填写资料"]}, "zh") == "今日任务:\n1. 签到\n2. 填写资料\n顾问"
    assert render_template(template, {"tasks": [], "advisor": "李老师"}, "zh") == "今天没有任务李老师"


def test_a_wrong_kind_of_value_is_a_clear_error():
    with pytest.raises(TemplateError, match="cannot render"):
        render_template("{{ name - 1 }}", {"name": "x"}, "en")


def test_preview_shows_missing_variables_in_place():
    assert preview_template(COUPON, {"name": "王小明"}, "zh") == (
        "王小明,你的专属顾问是{{ advisor }}。\n新人券码:{{ coupon_code }}\n领取:{{ links }}")


def test_welcome_texts_render_through_the_shared_sandbox():
    values = {"name": "Ann", "profile_link": "https://q/p", "coupon_link": "https://q/c"}
    assert check_template(WELCOME_DM, values.keys()) == set(values)
    assert "Welcome, Ann!" in render_template(WELCOME_DM, values, "en")
    assert "欢迎 Ann, Bo 入群" in render_template(WELCOME_MENU, {"names": "Ann, Bo", "rules_link": "x"}, "zh")


IDENTIFIERS = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n not in {"true", "false", "none", "loop", "self", "True", "False",
                                                      "None", "and", "or", "not", "in", "is", "if", "else"})
PLAIN = st.text(alphabet="你好,券 abc!\n12:", max_size=6)


@given(st.lists(st.tuples(PLAIN, IDENTIFIERS), min_size=1, max_size=6), PLAIN)
def test_every_variable_written_is_found_and_each_one_is_required(parts, tail):
    template = "".join(f"{text}{{{{ {name} }}}}" for text, name in parts) + tail
    names = {name for _, name in parts}
    assert template_variables(template) == names
    assert check_template(template, names) == names
    values = {name: f"<{name}>" for name in names}
    expected = "".join(f"{t}<{n}>" for t, n in parts) + tail
    assert render_template(template, values, "zh") == expected.removesuffix("\n")  # like YAML's `|` text
    for missing in names:
        with pytest.raises(TemplateError) as caught:
            check_template(template, names - {missing})
        assert caught.value.variable == missing
