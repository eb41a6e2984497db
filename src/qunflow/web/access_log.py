"""The access log of `qunflow serve`, without personal links: the token of a member's personal link
(/m/<token>/...), of a sandbox invite (/sandbox/invite/<token>) and of a referral link (/r/<code>, ?ref=)
opens someone's page or names them, so the log shows `***` in its place."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import uvicorn.config

REDACTED = "***"
# A path segment or query value that is a personal token; each pattern's group 1 is kept, the rest hidden.
PERSONAL = [
    re.compile(r"^(/m/)[^/?#]+"),
    re.compile(r"^(/sandbox/invite/)[^/?#]+"),
    re.compile(r"^(/r/)[^/?#]+"),
    re.compile(r"([?&](?:ref|token|pass|ticket)=)[^&#]*"),
]


def redact(path: str) -> str:
    """The request path and query with personal tokens replaced by `***`."""
    for pattern in PERSONAL:
        path = pattern.sub(lambda found: found[1] + REDACTED, path)
    return path


class RedactPersonalLinks(logging.Filter):
    """On uvicorn's access records (args: client, method, path with query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging settings, with the access log's handler filtered."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["personal_links"] = {"()": RedactPersonalLinks}
    config["handlers"]["access"]["filters"] = ["personal_links"]
    return config
