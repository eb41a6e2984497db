"""Send limits shared by every send path: per platform bot and per chat (PLATFORMS.md, domain/ratelimit.py).

One process (the embedded SQLite default) keeps its buckets in memory. Several workers over PostgreSQL
share them through the state database: one row per bucket holding the GCRA's theoretical arrival time,
taken under a row lock, so N workers together send no faster than one would. The state database was
chosen over Redis because every multi-process install already has it and needs nothing more to run;
a send costs one short transaction (a few milliseconds), far below any platform's own limit: a read of both
buckets under a row lock and one statement that writes both (their rows are made at a bucket's first send).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, DateTime, Engine, case, literal, select, update

from qunflow.domain.ratelimit import Limiter, gcra
from qunflow.store.plain import insert_new_keys
from qunflow.store.tables import send_limits

EPOCH = datetime(1970, 1, 1)


class SendLimiter(Protocol):
    def wait(self, platform: str, chat: str, *, group: bool, now: datetime) -> float:
        """0 when a send to `chat` may go now (its share taken), else the seconds until it may."""
        ...


class MemoryLimiter(Limiter):
    """Token buckets in this process: right for one process, the embedded default."""


class SharedLimiter:
    """Buckets in the state database, shared by every process that uses it."""

    def __init__(self, engine: Engine, overrides: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
        self.engine = engine
        self.known = Limiter(overrides)

    def wait(self, platform: str, chat: str, *, group: bool, now: datetime) -> float:
        limits = self.known.limits(platform)
        kind = "group" if group else "user"
        wanted = {platform: limits["bot"], f"{platform}:{kind}:{chat}": limits[kind]}
        keys = sorted(wanted)  # one lock order for every process: no deadlocks
        with self.engine.begin() as conn:
            stored = _locked(conn, keys)
            if len(stored) < len(keys):  # a bucket's first send (a DM's first to its user): its row is made
                made = insert_new_keys(conn, send_limits, [{"key": key, "tat": EPOCH} for key in keys
                                                           if key not in stored])
                stored.update((row.key, EPOCH) for row in made)  # ours, so locked until our commit
                if len(stored) < len(keys):  # another process made it first: its row is locked as the others
                    stored = _locked(conn, keys)
            taken = {key: gcra(stored.get(key), now, wanted[key]) for key in keys}
            longest = max(wait for _tat, wait in taken.values())
            if longest > 0:
                return longest
            new_tat = case({key: literal(tat, DateTime()) for key, (tat, _wait) in taken.items()},
                           value=send_limits.c.key)  # both buckets in one statement, on both databases
            conn.execute(update(send_limits).where(send_limits.c.key.in_(keys)).values(tat=new_tat))
        return 0.0


def _locked(conn: Connection, keys: list[str]) -> dict[str, datetime]:
    """The buckets' stored times, their rows locked until the transaction ends. PostgreSQL only: SQLite has no
    row locks, and a workspace on SQLite (one process) keeps its buckets in memory (Workspace.limiter)."""
    query = select(send_limits.c.key, send_limits.c.tat).where(send_limits.c.key.in_(keys)).order_by(send_limits.c.key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return dict(conn.execute(query).all())  # type: ignore[arg-type]
