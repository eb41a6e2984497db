"""`qunflow demo`: simulate weeks of a community through the real code paths.

Landing -> gate -> join on the sandbox platform -> welcome -> Day-1 tasks -> activity -> orders
(through the ingest API's service) -> invites and referral joins. A simulated clock moves through
the days; every record is written by the same services the web app uses.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import partial

from sqlalchemy import insert

from qunflow.domain.experiments import assign
from qunflow.errors import NotFound
from qunflow.services.automation import work_once
from qunflow.services.fraud import RawSignals
from qunflow.services.ingest import ingest_batch
from qunflow.services.join import NoRoom, record_landing, submit_gate
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.services.tasks import claim_coupon
from qunflow.sim.community import CHANNELS, REFERRAL, ChannelProfile, build, entry_code
from qunflow.store.tables import spend
from qunflow.workspace import Workspace

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "杰", "娟", "涛", "明", "超", "秀英", "晨")
PRICES = ((Decimal("199"), Decimal("0.45")), (Decimal("399"), Decimal("0.40")), (Decimal("999"), Decimal("0.35")))


@dataclass
class SimClock:
    now: datetime  # naive UTC

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Person:
    member_id: str
    user_id: str
    chat_id: str
    profile: ChannelProfile
    joined: datetime
    tier: str
    buys_on: int | None
    purchase: tuple[Decimal, Decimal]  # price and margin share of their order, if they buy
    left: bool = False


@dataclass
class DemoStats:
    visitors: int = 0
    gate_passes: int = 0
    joins: int = 0
    messages: int = 0
    orders: int = 0
    invites: int = 0
    no_room: int = 0
    steps: int = 0  # playbook steps the automation worker ran
    sent: int = 0  # messages it sent


USER_AGENTS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5) MicroMessenger/8.0.49",
               "Mozilla/5.0 (Linux; Android 14; Mi 14) MicroMessenger/8.0.47",
               "Mozilla/5.0 (Linux; Android 13; HUAWEI P60) XiaoHongShu/8.30")


def browser_of(device: str) -> RawSignals:
    """What the gate sees of a device: its cookie, an address in a carrier network and a user agent, all
    derived from the device so the same phone always looks the same."""
    digest = hashlib.blake2b(device.encode(), digest_size=4).digest()
    return RawSignals(device=device, ip=f"100.{64 + digest[0] % 64}.{digest[1]}.{digest[2]}",
                      user_agent=USER_AGENTS[digest[3] % len(USER_AGENTS)])


# The demo's experiment on the S1 welcome text (docs/experiments.md): a shorter DM that asks for the
# check-in first. In the simulation its members buy a little more often, so the result has something to find.
DEMO_EXPERIMENT_KEY = "s1-welcome-copy"
DEMO_EXPERIMENT = """kind: experiment
key: s1-welcome-copy
title: {zh: 欢迎语:先签到, en: "Welcome text: check in first"}
varies: welcome_dm
variants:
  - {key: control, weight: 1}
  - key: checkin_first
    weight: 1
    dm:
      zh: "欢迎你,{{ name }}!第一件事:在群里发「签到」领新人券。再花 30 秒填资料:{{ profile_link }}"
      en: >-
        Welcome, {{ name }}! First: say "check in" in the group for your new-member coupon.
        Then 30 s for your profile: {{ profile_link }}
primary_metric: conversion_rate
guardrails: [retention_d7]
"""
DEMO_LIFT = 1.4  # buyer rate of the checkin_first arm, relative to the control's, in the simulation only


class Simulation:
    def __init__(self, ws: Workspace, *, days: int, seed: int, end: date | None = None,
                 automate: bool = False) -> None:
        """`automate`: apply the shipped playbooks and reward program, and run the worker every
        simulated hour, as `qunflow serve` would."""
        self.ws, self.days, self.rng, self.automate = ws, days, random.Random(seed), automate
        zone = ws.settings.zone
        self.zone = zone
        self.end = end or datetime.now(zone).date()
        self.start = self.end - timedelta(days=days)
        self.clock = SimClock(self._utc(self.start, time(0)))
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.counter = itertools.count()
        self.people: list[Person] = []
        self.stats = DemoStats()

    def _utc(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, self.zone).astimezone(UTC).replace(tzinfo=None)

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (when, next(self.counter), action))

    def random_time(self, day: date, first_hour: int = 8, last_hour: int = 23) -> datetime:
        seconds = self.rng.randint(first_hour * 3600, last_hour * 3600 - 1)
        return self._utc(day, time(0)) + timedelta(seconds=seconds)

    # --- one simulated day ---
    def plan_day(self, day: date) -> None:
        weekend = day.weekday() >= 5
        for profile in CHANNELS:
            mean = profile.visitors_per_day * (1.25 if weekend and profile.kind == "content" else 1.0)
            for _ in range(self._poisson(mean)):
                self.at(self.random_time(day), partial(self.visit, profile))
        for person in self.people:
            self.plan_member_day(person, day)
        if self.automate and day == self.start + timedelta(days=min(10, self.days // 2)):
            self.device_farm(day)
        if self.automate:
            for hour in range(24):
                self.at(self._utc(day, time(hour, 59, 59)), self.work)

    def work(self) -> None:
        """One round of the automation worker (playbook steps, rewards), as `qunflow serve` runs it."""
        outcome = work_once(self.ws)
        self.stats.steps += outcome.steps
        self.stats.sent += outcome.sent

    def plan_member_day(self, person: Person, day: date) -> None:
        if person.left:
            return
        age = self._age(person, day)
        if age < 1:
            return
        chance = person.profile.activity * (0.72 ** (age - 1)) + 0.04
        if self.rng.random() < chance:
            self.at(self.random_time(day), lambda: self.say(person, "签到" if age == 1 else "学到了,谢谢分享"))
        if person.buys_on == age:
            self.at(self.random_time(day, 10, 22), lambda: self.order(person))
        if 2 <= age <= 6 and self.rng.random() < 0.05 * person.profile.activity / 0.5:
            self.at(self.random_time(day, 9, 21), lambda: self.invite(person))
        if self.rng.random() < 0.004:
            self.at(self.random_time(day), lambda: self.leave(person))

    def _age(self, person: Person, day: date) -> int:
        joined_day = person.joined.replace(tzinfo=UTC).astimezone(self.zone).date()
        return (day - joined_day).days

    def _poisson(self, mean: float) -> int:
        # Knuth's method is fine for the small means of a demo.
        limit, k, product = pow(2.718281828459045, -mean), 0, self.rng.random()
        while product > limit:
            k += 1
            product *= self.rng.random()
        return k

    # --- actions, each through the real services ---
    def visit(self, profile: ChannelProfile, referrer: Person | None = None, device: str | None = None) -> None:
        """A person opens a landing page and may pass the gate and join. `device` set: one of a device
        farm's fake friends, who always gets through."""
        rng, ws = self.rng, self.ws
        visitor = f"{rng.getrandbits(64):016x}"
        code = entry_code(profile.key)
        ref = referrer.member_id if referrer else None
        record_landing(ws, code, visitor, {"utm_medium": profile.kind}, ref)
        self.stats.visitors += 1
        if device is None and rng.random() >= profile.gate_pass:
            return
        stage = rng.choices(("buying", "learning", "browsing"), weights=profile.stage_weights)[0]
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        form = {"name": name, "need": "获客", "interest": "社群运营", "stage": stage,
                "experience": rng.choice(("yes", "no")), "consent": "on"}
        try:
            ticket = submit_gate(ws, code, visitor, form, locale="zh", referrer_id=ref,
                                 signals=browser_of(device or visitor))
        except NoRoom:
            self.stats.no_room += 1
            return
        self.stats.gate_passes += 1
        if device is not None or rng.random() < profile.join:
            delay = timedelta(seconds=rng.randint(20, 600))
            self.at(self.clock.now + delay, lambda: self.join(profile, ticket, name))

    def device_farm(self, day: date) -> None:
        """One member fakes six friends from one phone within minutes, for the invite rewards: the fraud
        checks must hold these rewards for review (shared device, same network and browser, a burst)."""
        inviter = next((p for p in self.people if not p.left and self._age(p, day) >= 2), None)
        if inviter is None:
            return
        start = self._utc(day, time(21, 0))
        for i in range(6):
            self.at(start + timedelta(seconds=90 * i), partial(self.visit, REFERRAL, inviter, "farm-phone-0001"))

    def join(self, profile: ChannelProfile, ticket: object, name: str) -> None:
        world = self.ws.sandbox
        user_id = f"su{self.rng.getrandbits(40):010x}"
        world.join(user_id, name, ticket.invite_url.rsplit("/", 1)[1])  # type: ignore[attr-defined]
        buyer_rate = profile.buyer * {"core": 2.0, "interest": 1.0, "newbie": 0.8, "broadcast": 0.4}[ticket.tier]  # type: ignore[attr-defined]
        if self.automate and assign(DEMO_EXPERIMENT_KEY, ticket.member_id,  # type: ignore[attr-defined]
                                    [("control", 1.0), ("checkin_first", 1.0)]) == "checkin_first":
            buyer_rate *= DEMO_LIFT
        # All drawn whatever the rate: the arm above follows the member's random id, and a draw made only for
        # buyers would shift every later draw, so the same seed would no longer give the same community.
        buys, buy_day, purchase = self.rng.random() < buyer_rate, self.rng.randint(0, 27), self.rng.choice(PRICES)
        person = Person(ticket.member_id, user_id, f"chat-{ticket.group}", profile,  # type: ignore[attr-defined]
                        self.clock.now, ticket.tier, buy_day if buys else None, purchase)  # type: ignore[attr-defined]
        self.people.append(person)
        self.stats.joins += 1
        if self.rng.random() < profile.activity * 0.8:  # Day-0 check-in in the group
            self.at(self.clock.now + timedelta(minutes=self.rng.randint(2, 90)), lambda: self.say(person, "签到"))
        if self.rng.random() < profile.activity:
            self.at(self.clock.now + timedelta(minutes=self.rng.randint(1, 30)),
                    partial(self.claim_coupon, person))

    def claim_coupon(self, person: Person) -> None:
        """The member opens the coupon task and claims it: done only when the ledger holds a coupon for them."""
        with suppress(NotFound):  # not issued yet (the warm-up's day-0 step) or over the cap: nothing to claim
            claim_coupon(self.ws, person.member_id)

    def say(self, person: Person, text: str) -> None:
        if not person.left:
            self.ws.sandbox.say(person.user_id, text, chat_id=person.chat_id)
            self.stats.messages += 1

    def leave(self, person: Person) -> None:
        if not person.left:
            person.left = True
            self.ws.sandbox.leave(person.user_id, person.chat_id)

    def order(self, person: Person) -> None:
        """The shop reports an order (the same service behind POST /api/v1/events)."""
        price, share = person.purchase
        ingest_batch(self.ws.engine, [{
            "event_id": f"order-{person.member_id}", "type": "order", "member_id": person.member_id,
            "ts": self.clock.now.replace(tzinfo=UTC).isoformat(), "amount": str(price),
            "margin": str(price * share), "currency": "CNY"}])
        self.stats.orders += 1

    def invite(self, person: Person) -> None:
        ingest_batch(self.ws.engine, [{
            "event_id": f"inv-{person.member_id}-{next(self.counter)}", "type": "invite_sent",
            "member_id": person.member_id, "ts": self.clock.now.replace(tzinfo=UTC).isoformat()}])
        self.stats.invites += 1
        if self.rng.random() < 0.6:
            later = self.clock.now + timedelta(minutes=self.rng.randint(5, 240))
            self.at(later, lambda: self.visit(REFERRAL, referrer=person))

    def record_spend(self) -> None:
        rows = []
        for offset in range(self.days):
            day = self.start + timedelta(days=offset)
            for profile in CHANNELS:
                if profile.spend_per_day:
                    amount = Decimal(str(round(profile.spend_per_day * self.rng.uniform(0.8, 1.2), 2)))
                    rows.append({"channel": profile.key, "day": day, "amount": amount, "currency": "CNY"})
        with self.ws.engine.begin() as conn:
            conn.execute(insert(spend), rows)

    def run(self, on_day: Callable[[int], None] | None = None) -> DemoStats:
        real_clock = self.ws.clock
        self.ws.clock = self.clock
        try:
            build(self.ws)
            if self.automate:
                experiment = self.ws.home / "demo_experiment.yaml"
                experiment.write_text(DEMO_EXPERIMENT, encoding="utf-8")
                apply_playbooks(self.ws, [*shipped_files(), experiment])
            self.record_spend()
            for offset in range(self.days):
                day = self.start + timedelta(days=offset)
                self.plan_day(day)
                day_end = self._utc(day + timedelta(days=1), time(0))
                while self.queue and self.queue[0][0] < day_end:
                    when, _, action = heapq.heappop(self.queue)
                    self.clock.now = max(self.clock.now, when)
                    action()
                self.clock.now = max(self.clock.now, day_end)
                if on_day:
                    on_day(offset + 1)
        finally:
            self.ws.clock = real_clock
        return self.stats
