"""Reads remembered for the length of one inbound update.

The handlers of one update (services/inbound.py) each look up the same few rows: the managed group behind
the chat, the member behind the platform's user, the entry point a link names. Inside `update_memo()` the
first lookup is remembered and the next handlers get it without a statement. These rows do not change in
the fraction of a second an update takes, except by the handlers themselves, which is why a member not
found yet is not remembered (the join handler makes them), except by a join request's first read, right before
the join handler (services/join_request_read.py), which also brings the welcome and the experiments in force for
the welcome handler. Where a join is recorded, whether the member has an offered tier move is read with whether
they are in the group, and remembered for the tier move handler. Nothing that a platform call can change is
remembered: an approval may bring the join as an update of its own, handled before the call returns
(whether the member is in the group is read every time, but before the approval of a member the update itself
made: services/join.py _joined_already). A member the join handler makes is remembered as
it was written (its row, its ticket, that it has decided on no consent yet: services/join.py resolve), and a
consent recorded in the update updates what is remembered of it. Outside the block every lookup reads. Work
rolled back to run again (store.db.retry_busy) forgets everything first: what it remembered was never written.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")
_MEMO: ContextVar[dict[Hashable, Any] | None] = ContextVar("qf_update_memo", default=None)


@contextmanager
def update_memo() -> Iterator[None]:
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def remembered(key: Hashable, read: Callable[[], T], *, remember_none: bool = True) -> T:
    """`read()`, or what it gave earlier in this update for the same key."""
    memo = _MEMO.get()
    if memo is None:
        return read()
    if key in memo:
        return memo[key]  # type: ignore[no-any-return]
    value = read()
    if value is not None or remember_none:
        memo[key] = value
    return value


def remember(key: Hashable, value: Any) -> None:
    """What a handler just wrote, for the lookups after it in this update (no-op outside update_memo)."""
    memo = _MEMO.get()
    if memo is not None:
        memo[key] = value


def recall(key: Hashable) -> Any:
    """What this update remembered under `key` (remember), or None: never reads."""
    memo = _MEMO.get()
    return None if memo is None else memo.get(key)


def forget_all() -> None:
    """Forget what this update remembered (its work was rolled back: rows it made are gone)."""
    memo = _MEMO.get()
    if memo is not None:
        memo.clear()
