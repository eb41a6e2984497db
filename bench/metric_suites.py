"""The metric suite three ways over the same events, for tests/integration/test_bench_smoke.py (a cross-check
of qunflow on its own generator's data; bench_metrics.py compares with ../shared/floor/ instead).

- `floor_suite`: one hand-written DuckDB query (bench/floor_suite.sql) straight over the Parquet file.
- `pandas_suite`: a straightforward pandas reading of METRICS.md / docs/metrics.md.
- `qunflow_suite`: the product's `metrics_report`, reshaped.
All three return {dim: {key: value}} with the total under TOTAL; `differences` compares two of them.
Only the spend-free keys are compared (the generator has no spend).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

TOTAL = "__total__"
KEYS = (
    "landing_visitors", "join_conversion", "cohort_size", "retention_d1", "retention_d7", "retention_d14",
    "retention_d30", "task_completion_d1", "current_members", "active_ratio_7d", "active_ratio_14d",
    "active_ratio_30d", "invites_per_member", "k_factor", "converted", "in_progress", "conversion_rate",
    "median_seconds_to_conversion", "revenue_per_member", "margin_per_member", "ltv_90_revenue", "ltv_90_margin",
)
ENGAGEMENT = ("message", "task_completed", "checkin", "reaction", "poll_vote", "order", "booking", "signup",
              "download", "coupon_redeemed")
CONVERSION = ("order", "booking")
DIMS = ("channel", "cohort_week")
Suite = dict[Any, dict[str, Any]]


def cutoff(as_of: date, tz: str) -> datetime:
    """The end of the as-of day in the reporting zone, in UTC."""
    return datetime.combine(as_of + timedelta(days=1), time(0), ZoneInfo(tz)).astimezone(UTC)


# ---- (a) the floor: one query --------------------------------------------------------------------------------

FLOOR_DIMS = {  # the slice of a member (acquisition attributes) and of a landing visitor (first view)
    "channel": ("m.channel", "v.v.channel"),
    "cohort_week": ("strftime(m.join_day, '%G-W%V')", "strftime(v.v.day, '%G-W%V')"),
}


def floor_sql(parquet: Path, by: str) -> str:
    member_dim, landing_dim = FLOOR_DIMS[by]
    text = (Path(__file__).with_name("floor_suite.sql")).read_text()
    quoted = "'" + str(parquet).replace("'", "''") + "'"
    return text.replace("{parquet}", quoted).replace("{member_dim}", member_dim).replace("{landing_dim}", landing_dim)


def floor_suite(conn: Any, parquet: Path, by: str, start: date, end: date, as_of: date,
                tz: str = "Asia/Shanghai") -> Suite:
    """Run the floor query on a DuckDB connection."""
    params = {"tz": tz, "cutoff": cutoff(as_of, tz), "start": start, "end": end, "as_of": as_of}
    cursor = conn.execute(floor_sql(parquet, by), params)
    names = [d[0] for d in cursor.description]
    out: Suite = {}
    for values in cursor.fetchall():
        record = dict(zip(names, values, strict=True))
        key = TOTAL if record.pop("is_total") else record["dim"]
        out[key] = {k: record[k] for k in KEYS}
    return out


# ---- (b) pandas -----------------------------------------------------------------------------------------------

def pandas_suite(parquet: Path, by: str, start: date, end: date, as_of: date, tz: str = "Asia/Shanghai") -> Suite:
    """The whole spend-free suite in pandas, the way an analyst would write it from the definitions."""
    import numpy as np
    import pandas as pd

    df = pd.read_parquet(parquet, columns=["type", "ts", "member_id", "visitor_id", "channel", "referrer_id",
                                           "amount", "margin"])
    df["seq"] = np.arange(len(df))  # row order is arrival order
    end_of_day = pd.Timestamp(cutoff(as_of, tz))
    df = df[df["ts"] < end_of_day]
    df["day"] = df["ts"].dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    first_day, last_day, as_of_day = pd.Timestamp(start), pd.Timestamp(end), pd.Timestamp(as_of)
    d30, d90, d7 = pd.Timedelta(days=30), pd.Timedelta(days=90), pd.Timedelta(days=7)

    def week(days: pd.Series) -> pd.Series:
        iso = days.dt.isocalendar()
        return iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)

    # Members: first join (acquisition), last join, last `left`.
    joins = df[(df["type"] == "joined") & df["member_id"].notna()].sort_values(["ts", "seq"])
    members = joins.drop_duplicates("member_id").set_index("member_id")[["ts", "day", "channel", "referrer_id"]]
    members = members.rename(columns={"ts": "join_ts", "day": "join_day"})
    members["last_join_ts"] = joins.groupby("member_id")["ts"].max()
    members["last_left_ts"] = df[df["type"] == "left"].groupby("member_id")["ts"].max()
    members["in_cohort"] = members["join_day"].between(first_day, last_day)
    members["is_current"] = ~(members["last_left_ts"] > members["last_join_ts"])

    ev = df[df["member_id"].isin(members.index)].merge(members[["join_ts", "join_day"]], left_on="member_id",
                                                        right_index=True)
    offset = (ev["day"] - ev["join_day"]).dt.days
    engaged = ev["type"].isin(ENGAGEMENT)
    for n in (1, 7, 14, 30):
        members[f"r{n}"] = members.index.isin(ev.loc[engaged & (offset == n), "member_id"])
        members[f"e{n}"] = members["join_day"] + pd.Timedelta(days=n) <= as_of_day
    members["last_active_day"] = ev[engaged].groupby("member_id")["day"].max()
    members["task1"] = members.index.isin(ev.loc[(ev["type"] == "task_completed") & offset.between(0, 1),
                                                 "member_id"])
    conversions = ev[ev["type"].isin(CONVERSION) & (ev["ts"] >= ev["join_ts"])]
    in30 = conversions[conversions["ts"] < conversions["join_ts"] + d30]
    in90 = conversions[conversions["ts"] < conversions["join_ts"] + d90]
    by30 = in30.groupby("member_id").agg(first_conversion=("ts", "min"), revenue_30=("amount", "sum"),
                                         margin_30=("margin", "sum"))
    by90 = in90.groupby("member_id").agg(revenue_90=("amount", "sum"), margin_90=("margin", "sum"))
    members = members.join(by30).join(by90)
    invites = ev[(ev["type"] == "invite_sent") & (ev["ts"] >= ev["join_ts"]) & (ev["ts"] < ev["join_ts"] + d30)]
    members["invites"] = invites.groupby("member_id").size()
    pairs = members[["referrer_id", "join_ts"]].reset_index().merge(
        members[["join_ts"]], left_on="referrer_id", right_index=True, suffixes=("", "_referrer"))
    pairs = pairs[(pairs["member_id"] != pairs["referrer_id"]) & (pairs["join_ts"] >= pairs["join_ts_referrer"])
                  & (pairs["join_ts"] < pairs["join_ts_referrer"] + d30)]
    members["referred"] = pairs.groupby("referrer_id").size()
    members[["invites", "referred"]] = members[["invites", "referred"]].fillna(0)
    members["converted"] = members["first_conversion"].notna()
    members["seconds"] = (members["first_conversion"] - members["join_ts"]).dt.total_seconds()
    members["m30"] = members["join_ts"] + d30 <= end_of_day
    members["m90"] = members["join_ts"] + d90 <= end_of_day
    members["dim"] = members["channel"] if by == "channel" else week(members["join_day"])

    # Landing visitors: a person is the member linked to the visitor (earliest event with both ids).
    both = df[df["visitor_id"].notna() & df["member_id"].notna()].sort_values(["ts", "seq"])
    links = both.drop_duplicates("visitor_id").set_index("visitor_id")["member_id"]
    touches = df[df["type"].isin(["landing_view", "joined"])].copy()
    touches["person"] = touches["member_id"].fillna(touches["visitor_id"].map(links)).fillna(
        "visitor:" + touches["visitor_id"])
    views = touches[(touches["type"] == "landing_view") & touches["day"].between(first_day, last_day)]
    views = views.sort_values(["ts", "seq"]).drop_duplicates("person")
    soon = touches.loc[touches["type"] == "joined", ["person", "ts"]].merge(
        views[["person", "ts"]], on="person", suffixes=("", "_view"))
    soon = soon[(soon["ts"] >= soon["ts_view"]) & (soon["ts"] < soon["ts_view"] + d7)]
    views = views.assign(joined_7=views["person"].isin(soon["person"]), mature_7=views["ts"] + d7 <= end_of_day,
                         dim=views["channel"] if by == "channel" else week(views["day"]))

    def stats(m: pd.DataFrame, v: pd.DataFrame) -> dict[str, Any]:
        c = m[m["in_cohort"]]
        cur = m[m["is_current"]]
        mature30, mature90, mature_views = c[c["m30"]], c[c["m90"]], v[v["mature_7"]]

        def rate(num: float, den: int) -> float | None:
            return float(num) / den if den else None

        out: dict[str, Any] = {
            "landing_visitors": len(v), "join_conversion": rate(mature_views["joined_7"].sum(), len(mature_views)),
            "cohort_size": len(c),
        }
        for n in (1, 7, 14, 30):
            eligible = c[c[f"e{n}"]]
            out[f"retention_d{n}"] = rate(eligible[f"r{n}"].sum(), len(eligible))
        out["task_completion_d1"] = rate(c.loc[c["e1"], "task1"].sum(), int(c["e1"].sum()))
        out["current_members"] = len(cur)
        for w in (7, 14, 30):
            out[f"active_ratio_{w}d"] = rate((cur["last_active_day"] > as_of_day - pd.Timedelta(days=w)).sum(),
                                             len(cur))
        out["invites_per_member"] = rate(mature30["invites"].sum(), len(mature30))
        out["k_factor"] = rate(mature30["referred"].sum(), len(mature30))
        out["converted"] = int(c["converted"].sum())
        out["in_progress"] = int((~c["converted"] & ~c["m30"]).sum())
        out["conversion_rate"] = rate(mature30["converted"].sum(), len(mature30))
        seconds = c.loc[c["converted"], "seconds"]
        out["median_seconds_to_conversion"] = float(seconds.median()) if len(seconds) else None
        out["revenue_per_member"] = rate(mature30["revenue_30"].sum(), len(mature30))
        out["margin_per_member"] = rate(mature30["margin_30"].sum(), len(mature30))
        out["ltv_90_revenue"] = rate(mature90["revenue_90"].sum(), len(mature90))
        out["ltv_90_margin"] = rate(mature90["margin_90"].sum(), len(mature90))
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in out.items()}

    result: Suite = {TOTAL: stats(members, views)}
    shown = members[members["in_cohort"] | members["is_current"]]
    member_groups = dict(iter(members.groupby("dim", dropna=False)))
    view_groups = dict(iter(views.groupby("dim", dropna=False)))
    empty_m, empty_v = members.iloc[:0], views.iloc[:0]
    for dim in set(shown["dim"].tolist()) | set(views["dim"].tolist()):
        key = None if isinstance(dim, float) and math.isnan(dim) else dim
        result[key] = stats(member_groups.get(dim, empty_m), view_groups.get(dim, empty_v))
    return result


# ---- qunflow, and the comparison -----------------------------------------------------------------------------

def qunflow_suite(report: dict[str, Any]) -> Suite:
    """`metrics_report` output in the same shape."""
    by = report["by"]
    out: Suite = {TOTAL: {k: report["total"][k] for k in KEYS}}
    for row in report["rows"]:
        out[row[by]] = {k: row[k] for k in KEYS}
    return out


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def differences(left: Suite, right: Suite, names: tuple[str, str]) -> list[str]:
    """Every slice or value on which two suites disagree (float rounding aside), as readable lines."""
    found = []
    for dim in sorted(set(left) | set(right), key=lambda d: (d is None, str(d))):
        if dim not in left or dim not in right:
            found.append(f"row {dim!r} only in {names[0] if dim in left else names[1]}")
            continue
        for key in KEYS:
            if not _same(left[dim][key], right[dim][key]):
                found.append(f"{dim!r} {key}: {names[0]} {left[dim][key]!r} vs {names[1]} {right[dim][key]!r}")
    return found
