"""Which connector serves which platform, and where inbound updates go."""

from __future__ import annotations

from qunflow.connectors.base import Connector
from qunflow.connectors.sandbox import SandboxConnector, SandboxPlatform
from qunflow.domain.ratelimit import Limiter
from qunflow.errors import InvalidInput
from qunflow.workspace import Workspace

PLATFORMS = ("sandbox",)  # real platforms join this list as their connectors land


def sandbox_world(ws: Workspace) -> SandboxPlatform:
    """The workspace's sandbox platform; its updates are delivered to qunflow like a webhook."""
    world = ws.cache.get("sandbox")
    if world is None:
        from qunflow.services.join import handle_inbound

        secret = ws.settings.encryption_key().decode()[:32]
        world = SandboxPlatform(ws.home / "sandbox.db", clock=lambda: ws.clock(), secret=secret)
        world.subscribe(lambda headers, body: handle_inbound(ws, "sandbox", headers, body))
        ws.cache["sandbox"] = world
    return world


def connector_for(ws: Workspace, platform: str) -> Connector:
    if platform == "sandbox":
        key = "connector:sandbox"
        if key not in ws.cache:
            ws.cache[key] = SandboxConnector(sandbox_world(ws), ws.settings.public_url)
        return ws.cache[key]  # type: ignore[no-any-return]
    raise InvalidInput(f"no connector for platform {platform!r} (available: {', '.join(PLATFORMS)})")


def send_limiter(ws: Workspace) -> Limiter:
    """The workspace's send limits (per platform bot and per chat), shared by playbooks and keyword replies."""
    limiter = ws.cache.get("send_limiter")
    if limiter is None:
        limiter = ws.cache["send_limiter"] = Limiter(ws.settings.rate_limits)
    return limiter  # type: ignore[no-any-return]
