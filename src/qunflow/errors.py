"""One exception hierarchy, mapped once to HTTP status codes and CLI exit codes.

A message is English (logs, the JSON API's `error`, the CLI); an error a person meets on a page or at a
Chinese terminal may also carry its Chinese text (`zh=`), which `text(lang)` picks.
"""

from __future__ import annotations


class QunflowError(Exception):
    """Base of every error qunflow raises on purpose; the message tells the user what to fix."""

    http_status = 500

    def __init__(self, message: str, *, zh: str | None = None) -> None:
        super().__init__(message)
        self.zh = zh

    def text(self, lang: str) -> str:
        """The message in `lang` ("zh" or "en"): English when no Chinese text was given."""
        return self.zh if lang == "zh" and self.zh else str(self)


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

    def __init__(self, message: str, retry_after: float, *, zh: str | None = None) -> None:
        super().__init__(message, zh=zh)
        self.retry_after = retry_after


class TooManyAttempts(QunflowError):
    """The caller tried too often (failed logins); try again after `retry_after` seconds."""

    http_status = 429

    def __init__(self, message: str, retry_after: int, *, zh: str | None = None) -> None:
        super().__init__(message, zh=zh)
        self.retry_after = retry_after
