"""One exception hierarchy, mapped once to HTTP status codes and CLI exit codes."""

from __future__ import annotations


class QunflowError(Exception):
    """Base of every error qunflow raises on purpose; the message tells the user what to fix."""

    http_status = 500


class InvalidInput(QunflowError):
    """The caller sent something we cannot accept."""

    http_status = 400


class Unauthorized(QunflowError):
    http_status = 401


class Forbidden(QunflowError):
    """The request is understood but refused (e.g. a console form posted from another site)."""

    http_status = 403


class NotFound(QunflowError):
    http_status = 404


class Conflict(QunflowError):
    http_status = 409


class Unavailable(QunflowError):
    """A service qunflow depends on (the analytics store or server) cannot serve now; the operator must act."""

    http_status = 503


class PlatformError(QunflowError):
    """A chat platform refused or failed a call."""

    http_status = 502


class Unreachable(PlatformError):
    """The platform will not deliver to this person now: they blocked the bot, left, or the window closed.
    Retrying does not help; the person is marked unreachable instead."""

    http_status = 409


class RateLimited(PlatformError):
    """The platform asked us to slow down; retry after `retry_after` seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyAttempts(QunflowError):
    """The caller tried too often (failed logins); try again after `retry_after` seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
