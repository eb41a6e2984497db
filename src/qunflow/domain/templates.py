"""Message templates: which variables a template uses, the check at apply time, and sandboxed rendering.

Templates are Jinja2 text for chat (no HTML escaping), rendered in a sandbox that also keeps them small:
variables, filters from a short list, `if` and one level of `for`; no assignments, calls, includes,
macros, `%` formatting or `**`. A template may be one text or one text per language ({"zh": ..., "en": ...}).
Block tags take their line with them and one trailing newline is dropped, so YAML block text reads as written.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from qunflow.errors import InvalidInput

MAX_TEMPLATE_CHARS = 10_000
MAX_MESSAGE_CHARS = 4_096  # one Telegram text message; the longest single text the platforms we target accept

Template = str | Mapping[str, str]

FILTERS = ("abs", "capitalize", "count", "d", "default", "first", "float", "int", "join", "last", "length",
           "list", "lower", "max", "min", "reverse", "round", "sort", "string", "sum", "title", "trim",
           "truncate", "unique", "upper", "urlencode", "wordcount")
_ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.Getattr, nodes.Getitem,
    nodes.Slice, nodes.Filter, nodes.Test, nodes.If, nodes.For, nodes.CondExpr, nodes.Compare, nodes.Operand,
    nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul,
    nodes.Div, nodes.FloorDiv, nodes.Tuple, nodes.List, nodes.Dict, nodes.Pair, nodes.Keyword,
)
_WHY_NOT = {
    "Assign": "{% set %}", "AssignBlock": "{% set %}", "Mod": "% (formatting or remainder)", "Pow": "**",
    "Call": "calls such as name.upper() or range(3) (use filters: name|upper)", "Include": "{% include %}",
    "Extends": "{% extends %}", "Import": "{% import %}", "FromImport": "{% from ... import %}",
    "Macro": "{% macro %}", "CallBlock": "{% call %}", "FilterBlock": "{% filter %}", "With": "{% with %}",
    "Block": "{% block %}",
}


class TemplateError(InvalidInput):
    """A template that cannot be used; `line` (1-based) and `variable` say where, when known."""

    def __init__(self, message: str, *, line: int | None = None, variable: str | None = None,
                 lang: str | None = None) -> None:
        where = ", ".join(part for part in (f"{lang} text" if lang else "", f"line {line}" if line else "") if part)
        super().__init__(f"template ({where}): {message}" if where else f"template: {message}")
        self.line, self.variable, self.lang, self.reason = line, variable, lang, message


class _ChatSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        sizes = [len(side) for side in (left, right) if isinstance(side, str | list | tuple)]
        counts = [side for side in (left, right) if isinstance(side, int) and not isinstance(side, bool)]
        if sizes and counts and sizes[0] * max(counts[0], 0) > MAX_MESSAGE_CHARS:
            raise SecurityError(f"repeating a text makes it longer than {MAX_MESSAGE_CHARS} characters")
        return super().call_binop(context, operator, left, right)


class _PreviewUndefined(ChainableUndefined):
    """Shows a missing variable as `{{ name }}` so a preview says what the real message will fill in."""

    def __str__(self) -> str:
        return "{{ " + (self._undefined_name or "?") + " }}"


def _sandbox(undefined: type) -> SandboxedEnvironment:
    env = _ChatSandbox(autoescape=False, undefined=undefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.clear()  # no range, namespace, lipsum...: a template reads only the values it is given
    env.filters = {name: env.filters[name] for name in FILTERS}
    return env


_STRICT = _sandbox(StrictUndefined)
_PREVIEW = _sandbox(_PreviewUndefined)


@dataclass(frozen=True)
class _Parsed:
    variables: frozenset[str]
    first_line: Mapping[str, int]


def pick_text(template: Template, lang: str) -> str:
    """The template's text in `lang`, else Chinese, else English, else any language it has."""
    if isinstance(template, str):
        return template
    for choice in (lang, "zh", "en", *template):
        if template.get(choice):
            return template[choice]
    raise TemplateError("has no text in any language")


def _walk(node: nodes.Node, loops: int = 0) -> Iterator[tuple[nodes.Node, int]]:
    """Every node with the number of `for` bodies around it."""
    yield node, loops
    body = {id(child) for child in node.body} if isinstance(node, nodes.For) else set()
    for child in node.iter_child_nodes():
        yield from _walk(child, loops + 1 if id(child) in body else loops)


@lru_cache(maxsize=512)
def _parse(text: str) -> _Parsed:
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        ast = _STRICT.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "syntax error", line=exc.lineno) from None
    first_line: dict[str, int] = {}
    for node, loops in _walk(ast):
        if not isinstance(node, _ALLOWED_NODES):
            kind = type(node).__name__
            raise TemplateError(f"message templates cannot use {_WHY_NOT.get(kind, kind)}", line=node.lineno)
        if isinstance(node, nodes.For) and loops:
            raise TemplateError("message templates cannot nest loops", line=node.lineno)
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise TemplateError(f"filter {node.name!r} is not available; use one of {', '.join(FILTERS)}",
                                line=node.lineno)
        if isinstance(node, nodes.Test) and node.name not in _STRICT.tests:
            raise TemplateError(f"there is no test {node.name!r} (try: defined, none, number, string, even, odd)",
                                line=node.lineno)
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise TemplateError(f"attribute {node.attr!r} is private", line=node.lineno)
        if isinstance(node, nodes.Name) and node.ctx == "load":
            first_line.setdefault(node.name, node.lineno)
    try:
        variables = frozenset(meta.find_undeclared_variables(ast))
    except TemplateSyntaxError as exc:  # the compiler's checks (e.g. a loop variable used as a filter)
        raise TemplateError(exc.message or "syntax error", line=exc.lineno) from None
    return _Parsed(variables, {name: first_line.get(name, 1) for name in variables})


def template_variables(template: Template) -> set[str]:
    """The variables a template reads from its values (every language version)."""
    texts = [template] if isinstance(template, str) else list(template.values())
    return set().union(*(_parse(text).variables for text in texts))


def check_template(template: Template, available: Collection[str]) -> set[str]:
    """Raise TemplateError for a syntax error or a variable not in `available`; return the variables used."""
    texts = {None: template} if isinstance(template, str) else dict(template)
    used: set[str] = set()
    for lang, text in texts.items():
        try:
            parsed = _parse(text)
        except TemplateError as exc:
            raise TemplateError(exc.reason, line=exc.line, lang=lang) from None
        unknown = sorted(parsed.variables - set(available), key=lambda name: (parsed.first_line[name], name))
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, sorted(available), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(available)) or "none"
            others = f" (also unknown: {', '.join(unknown[1:])})" if unknown[1:] else ""
            raise TemplateError(f"unknown variable {name!r}{hint}{others}; available: {known}",
                                line=parsed.first_line[name], variable=name, lang=lang)
        used |= parsed.variables
    return used


@lru_cache(maxsize=512)
def _compiled(preview: bool, text: str) -> Any:
    _parse(text)
    return (_PREVIEW if preview else _STRICT).from_string(text)


def _render(preview: bool, text: str, values: Mapping[str, Any]) -> str:
    compiled = _compiled(preview, text)
    pieces: list[str] = []
    size = 0
    try:
        for piece in compiled.generate(**values):
            size += len(piece)
            if size > MAX_MESSAGE_CHARS:
                raise TemplateError(f"the message would be longer than {MAX_MESSAGE_CHARS} characters")
            pieces.append(piece)
    except UndefinedError as exc:
        raise TemplateError(f"{exc.message}: no value was given for it") from None
    except SecurityError as exc:
        raise TemplateError(str(exc)) from None
    except TemplateError:
        raise
    except Exception as exc:  # a filter or operator on the wrong kind of value (e.g. "a" - 1)
        raise TemplateError(f"cannot render: {exc}") from None
    return "".join(pieces)


def render_template(template: Template, values: Mapping[str, Any], lang: str) -> str:
    """The message in `lang`; every variable must have a value (TemplateError says which does not)."""
    return _render(False, pick_text(template, lang), values)


def preview_template(template: Template, values: Mapping[str, Any], lang: str) -> str:
    """Like render_template, but variables without a value stay visible as `{{ name }}`."""
    return _render(True, pick_text(template, lang), values)
