"""Several slicings of one period in one pass (issue 15): a metric template's single `dim` widened to one column
per slicing and grouped by GROUPING SETS, so a page that shows a period by channel, by group and by cohort week
reads the events (or facts) once, not once per slicing.

Every metric template (queries.py) names its slice value `dim` where it is computed (`{member_dim} AS dim` and
its kin), passes it on as `x.dim AS dim`, and ends in `grouping(dim) = 1 AS is_total, dim ... GROUPING SETS
((dim), ())`. `render_sets` adds `dim1`, `dim2`, ... beside it at each of those places; the output has
`is_total`/`dim`, `is_total1`/`dim1`, ...: a row belongs to the slicing whose `is_total<k>` is false, and the
row where all are true is the period's total (the same for every slicing).
"""

from __future__ import annotations

import re

from qunflow.analytics.queries import LANDING_DIMS, LANDING_FACTS_DIMS, MEMBER_DIMS, render

FINAL = re.compile(r"grouping\(((?:\w+\.)?)dim\) = 1 AS is_total, \1dim(?: AS dim)?\b")
SETS = re.compile(r"GROUPING SETS \(\(((?:\w+\.)?)dim\), \(\)\)")
PASSED_ON = re.compile(r"(?<!is_total, )\b(\w+)\.dim AS dim\b")  # not the final select's own


class NotSliceable(ValueError):
    """The template does not have the one-`dim` shape described above."""


def _suffix(k: int) -> str:
    return "" if k == 0 else str(k)


def _dims(placeholder: str, expressions: list[str]) -> str:
    """`{placeholder} AS dim, <expression 1> AS dim1, ...`: the first slicing keeps render()'s own placeholder."""
    rest = "".join(f", {text} AS dim{k}" for k, text in enumerate(expressions[1:], start=1))
    return f"{placeholder} AS dim{rest}"


def render_sets(template: str, bys: tuple[str, ...], filters: dict[str, str] | None = None) -> str:
    """The query for several slicings of one period (no experiment); raises NotSliceable for other shapes."""
    n = len(bys)
    template = template.replace("{member_dim} AS dim", _dims("{member_dim}", [MEMBER_DIMS[b] for b in bys]))
    template = template.replace("{landing_dim} AS dim", _dims("{landing_dim}", [LANDING_DIMS[b] for b in bys]))
    template = template.replace("{landing_facts_dim} AS dim", _dims("{landing_facts_dim}",
                                                                     [LANDING_FACTS_DIMS[b] for b in bys]))
    sql = render(template, bys[0], filters)

    def final(match: re.Match[str]) -> str:
        p = match.group(1)
        return ", ".join(f"grouping({p}dim{s}) = 1 AS is_total{s}, {p}dim{s} AS dim{s}" for s in map(_suffix, range(n)))

    def sets(match: re.Match[str]) -> str:
        p = match.group(1)
        return "GROUPING SETS (" + ", ".join(f"({p}dim{_suffix(k)})" for k in range(n)) + ", ())"

    sql, finals = FINAL.subn(final, sql)
    sql, grouped = SETS.subn(sets, sql)
    if finals != 1 or grouped != 1:
        raise NotSliceable("the template has no single dim grouped with its total")
    return PASSED_ON.sub(lambda m: ", ".join(f"{m.group(1)}.dim{_suffix(k)} AS dim{_suffix(k)}" for k in range(n)),
                         sql)


def split_sets(names: list[str], row: tuple[object, ...], n: int) -> tuple[int | None, object, dict[str, object]]:
    """(slicing index or None for the total, its slice value, the row's statistics) of one output row."""
    record = dict(zip(names, row, strict=True))
    totals = [bool(record.pop(f"is_total{_suffix(k)}")) for k in range(n)]
    values = [record.pop(f"dim{_suffix(k)}") for k in range(n)]
    if all(totals):
        return None, None, record
    k = totals.index(False)
    return k, values[k], record
