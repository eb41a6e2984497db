"""What an inbound update remembers (store/memo.py) does not outlive work rolled back to run again: a member the
rolled-back attempt made (and remembered as written) is gone, so the next attempt must read, not recall it."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import OperationalError

from qunflow.store.db import retry_busy
from qunflow.store.memo import recall, remember, update_memo


def test_work_run_again_after_a_busy_database_recalls_nothing_from_the_attempt_rolled_back() -> None:
    seen: list[object] = []

    def work() -> str:
        seen.append(recall(("made", "m_1")))
        remember(("made", "m_1"), "the row the rolled-back attempt wrote")
        if len(seen) == 1:  # as SQLAlchemy raises SQLite's refusal
            raise OperationalError("INSERT INTO members ...", None, sqlite3.OperationalError("database is locked"))
        return "done"

    with update_memo():
        remember(("group", "chat-1"), "read before the work")
        assert retry_busy(work, waits=(0.0,)) == "done"
        assert recall(("group", "chat-1")) is None  # forgotten too: reading it again costs one statement
    assert seen == [None, None]
