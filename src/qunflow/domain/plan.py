"""The funnel planner (SPEC seed, week 4): orders/day = joins/day x Day-1 task rate x order rate.

Pure: no I/O. Typed plans are computed in Decimal from the numbers as typed, so 200 x 0.4 x 0.1 is exactly
8 (binary floats would give 8.000000000000002); the result is turned into a float only at the end.
Measured plans (METRICS.md "Funnel view": the M9 and M5 stages) come with 95% intervals: Wilson for each
rate, and for orders/day a seeded Monte Carlo over the stages' posteriors (see `simulate_orders`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from qunflow.errors import InvalidInput

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
DRAWS = 20_000  # Monte Carlo draws for orders/day's interval: its ends move by well under 1% between seeds
SEED = 14  # fixed, so the same data always prints the same interval


def number(text: str | float | int | Decimal, name: str, *, rate: bool) -> Decimal:
    """A typed number as an exact Decimal; a rate must lie in [0, 1], joins/day must not be negative."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise InvalidInput(f"{name} must be a number, got {str(text)[:40]!r}",
                           zh=f"{name} 须为数字,收到的是 {str(text)[:40]!r}") from None
    if not value.is_finite():
        raise InvalidInput(f"{name} must be a finite number, got {text!r}",
                           zh=f"{name} 须为有限的数字,收到的是 {text!r}")
    if rate and not Decimal(0) <= value <= Decimal(1):
        raise InvalidInput(f"{name} must be a rate between 0 and 1 (40% is 0.4), got {text}",
                           zh=f"{name} 须为 0 到 1 之间的比率(40% 写作 0.4),收到的是 {text}")
    if not rate and value < 0:
        raise InvalidInput(f"{name} must not be negative, got {text}", zh=f"{name} 不能为负数,收到的是 {text}")
    return value


@dataclass(frozen=True)
class Funnel:
    joins_per_day: Decimal
    task_rate: Decimal
    order_rate: Decimal

    def stages(self) -> dict[str, float]:
        completers = self.joins_per_day * self.task_rate
        return {"joins_per_day": as_float(self.joins_per_day), "task_completers_per_day": as_float(completers),
                "orders_per_day": as_float(completers * self.order_rate)}


def as_float(value: Decimal) -> float:
    """An exact Decimal as the nearest float (8.00 -> 8.0, 14.400 -> 14.4)."""
    return float(value)


def plan(baseline: Funnel, *, joins_per_day: Decimal | None = None, task_rate: Decimal | None = None,
         order_rate: Decimal | None = None) -> dict[str, dict[str, float | None]]:
    """Baseline next to the scenario; a scenario value not given keeps the baseline's."""
    scenario = Funnel(baseline.joins_per_day if joins_per_day is None else joins_per_day,
                      baseline.task_rate if task_rate is None else task_rate,
                      baseline.order_rate if order_rate is None else order_rate)
    before = baseline.joins_per_day * baseline.task_rate * baseline.order_rate
    after = scenario.joins_per_day * scenario.task_rate * scenario.order_rate
    relative = None if before == 0 else as_float((after - before) / before)
    return {"baseline": dict(baseline.stages()), "scenario": dict(scenario.stages()),
            "change": {"orders_per_day": as_float(after - before), "relative": relative}}


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion; (None, None) with no trials."""
    if trials <= 0:
        return None, None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Measured:
    """The sufficient statistics of a period's join cohort (METRICS.md M9 and M5)."""

    days: int  # days in the period: joins/day = joined / days
    joined: int
    task_eligible: int  # M9's denominator: join_day + 1 <= as-of
    task_done: int  # M9's numerator
    mature: int  # M5's denominator: join_ts + 30 days <= end of the as-of day
    converted: int  # M5's numerator: converted mature members


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def simulate_orders(m: Measured, *, joins_per_day: float | None = None, task_rate: float | None = None,
                    order_rate: float | None = None, draws: int = DRAWS,
                    seed: int = SEED) -> tuple[float | None, float | None]:
    """The 95% interval of orders/day: each measured stage is drawn from its posterior (joins: Gamma with
    Jeffreys' prior, i.e. a Poisson count; M9 and M5: Beta(k + 1/2, n - k + 1/2)), typed stages are held
    fixed, and the 2.5% and 97.5% points of the products are taken. The order rate after the task is M5 / M9
    (so that measured joins x task x order is measured joins x M5); its draws treat the two as independent,
    which widens, never narrows, the interval when they are positively correlated."""
    rng = random.Random(seed)

    def beta(k: int, n: int) -> Callable[[], float]:
        return lambda: rng.betavariate(k + 0.5, n - k + 0.5)

    if joins_per_day is None and m.days <= 0:
        return None, None
    joins = (lambda: joins_per_day) if joins_per_day is not None else (
        lambda: rng.gammavariate(m.joined + 0.5, 1.0) / m.days)
    if task_rate is None and m.task_eligible == 0:
        return None, None
    if order_rate is None and (m.mature == 0 or m.task_eligible == 0):
        return None, None
    task_draw = beta(m.task_done, m.task_eligible) if m.task_eligible else (lambda: 0.0)
    conversion_draw = beta(m.converted, m.mature) if m.mature else (lambda: 0.0)
    products = []
    for _ in range(draws):
        measured_task = task_draw()
        task = task_rate if task_rate is not None else measured_task
        order = order_rate if order_rate is not None else conversion_draw() / measured_task
        products.append(joins() * task * order)
    products.sort()
    return products[int(0.025 * (draws - 1))], products[int(0.975 * (draws - 1))]


def measured_plan(m: Measured, *, joins_per_day: float | None = None, task_rate: float | None = None,
                  order_rate: float | None = None) -> dict[str, object]:
    """The measured funnel as a plan: each stage with its estimate, 95% interval and sample size, and
    orders/day with its interval; typed what-if values replace the measured stage they name."""
    task = _rate(m.task_done, m.task_eligible)
    conversion = _rate(m.converted, m.mature)
    order = None if task in (None, 0) or conversion is None else conversion / task
    task_low, task_high = wilson(m.task_done, m.task_eligible)
    conv_low, conv_high = wilson(m.converted, m.mature)
    joins = m.joined / m.days if m.days > 0 else None
    joins_low = joins_high = None
    if m.days > 0:  # a Poisson count's 95% interval, (sqrt(k) - z/2)^2 .. (sqrt(k + 1) + z/2)^2, per day
        joins_low = max(0.0, math.sqrt(m.joined) - Z95 / 2) ** 2 / m.days
        joins_high = (math.sqrt(m.joined + 1) + Z95 / 2) ** 2 / m.days
    used_joins = joins if joins_per_day is None else joins_per_day
    used_task = task if task_rate is None else task_rate
    used_order = order if order_rate is None else order_rate
    orders = None if None in (used_joins, used_task, used_order) else (
        float(used_joins) * float(used_task) * float(used_order))  # type: ignore[arg-type]
    low, high = simulate_orders(m, joins_per_day=joins_per_day, task_rate=task_rate, order_rate=order_rate)
    return {
        "joins_per_day": {"value": used_joins, "measured": joins, "ci_low": joins_low, "ci_high": joins_high,
                          "n": m.joined, "days": m.days, "typed": joins_per_day is not None},
        "task_rate": {"value": used_task, "measured": task, "ci_low": task_low, "ci_high": task_high,
                      "n": m.task_eligible, "successes": m.task_done, "typed": task_rate is not None},
        "conversion_rate": {"value": conversion, "ci_low": conv_low, "ci_high": conv_high, "n": m.mature,
                            "successes": m.converted},
        "order_rate": {"value": used_order, "measured": order, "typed": order_rate is not None},
        "task_completers_per_day": None if used_joins is None or used_task is None else
        float(used_joins) * float(used_task),
        "orders_per_day": {"value": orders, "ci_low": None if orders is None else low,
                           "ci_high": None if orders is None else high},
    }
