"""Experiment results and the list of experiments: ship the newest events, count per variant in the
analytics store, hand the counts to domain/experiments.py (docs/experiments.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from qunflow.analytics.engines import open_engine
from qunflow.analytics.queries import EXPERIMENT_LIST, EXPERIMENT_RESULTS
from qunflow.analytics.shipper import ship
from qunflow.domain.experiments import results
from qunflow.domain.metrics import make_period
from qunflow.errors import InvalidInput, NotFound
from qunflow.workspace import Workspace

MAX_NAME = 200


def list_experiments(ws: Workspace, *, ship_first: bool = True) -> list[dict[str, Any]]:
    """Experiments seen in the event log: name, exposures, variants, first and last exposure (UTC)."""
    if ship_first:
        ship(ws)
    with open_engine(ws) as engine:
        names, rows = engine.query(EXPERIMENT_LIST, {})
    out = []
    for values in rows:
        record = dict(zip(names, values, strict=True))
        out.append({"experiment": record["experiment"], "exposures": int(record["exposures"]),
                    "variants": int(record["variants"]),
                    "first_exposure": _iso(record["first_ts"]), "last_exposure": _iso(record["last_ts"])})
    return out


def _iso(value: Any) -> str | None:
    return value.replace(tzinfo=None).isoformat() + "Z" if isinstance(value, datetime) else None


def experiment_results(ws: Workspace, name: str, *, as_of: date | None = None,
                       ship_first: bool = True) -> dict[str, Any]:
    """The results contract of one experiment as of a day (default today in the workspace zone)."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"an experiment name is 1 to {MAX_NAME} characters")
    settings = ws.settings
    today = datetime.now(settings.zone).date()
    period = make_period(None, None, as_of, settings.zone, today)
    if ship_first:
        ship(ws)
    params = {"cutoff": period.cutoff, "experiment": name, "conversion": settings.conversion_types}
    with open_engine(ws) as engine:
        names, rows = engine.query(EXPERIMENT_RESULTS, params)
    counts = {}
    for values in rows:
        record = dict(zip(names, values, strict=True))
        counts[str(record.pop("variant"))] = record
    if not counts:
        raise NotFound(f"no experiment {name!r}: no experiment_exposure events for it up to {period.as_of}")
    return results(name, period.as_of, counts, None, min_mature=settings.experiment_min_mature,
                   mde=settings.experiment_mde)


def conclusion(report: dict[str, Any], lang: str) -> str:
    """The verdict in plain words (zh/en)."""
    from qunflow.domain.experiments import best_variant
    from qunflow.i18n import t

    code, control = report["verdict"], report["control"]
    if code == "srm":
        return t("xp_srm", lang, p=f"{report['srm_p_value']:.2g}")
    if code == "not_enough_data":
        have = min(v["mature"] for v in report["variants"])
        return t("xp_not_enough", lang, need=report["min_mature"], have=have)
    if code == "winner":
        best = best_variant(report)
        c = next(c for c in report["comparisons"] if c["variant"] == best)
        return t("xp_winner", lang, variant=best, control=control, diff=f"{c['diff'] * 100:+.1f}",
                 ci=f"{c['ci_low'] * 100:+.1f} … {c['ci_high'] * 100:+.1f}", p=f"{c['p_value']:.3g}",
                 chance=f"{c['chance_to_beat_control']:.0%}")
    return t("xp_loser" if code == "loser" else "xp_no_difference", lang, control=control)
