"""The Gateway connection, kept by hikari in a background thread; raw dispatches go into a queue.

hikari (a maintained, typed Discord library) speaks the Gateway: HELLO, IDENTIFY with the intents,
heartbeats and their ACKs, RESUME and reconnects, zlib-stream transport. Its REST base URL is a
constructor argument (`rest_url`) and the Gateway URL is whatever GET /gateway/bot answers, so a local
stand-in needs no patching. qunflow reads the raw payloads (`ShardPayloadEvent`) of the few events it
needs and parses them itself (connectors/discord/events.py), so hikari's cache stays off.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

log = logging.getLogger(__name__)

WANTED = frozenset({"GUILD_MEMBER_ADD", "GUILD_MEMBER_REMOVE", "MESSAGE_CREATE"})
# discord.com/developers/docs/events/gateway#gateway-intents
GUILDS, GUILD_MEMBERS, GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1, 1 << 1, 1 << 9, 1 << 12, 1 << 15


def intents(message_content: bool) -> int:
    """GUILD_MEMBERS (privileged) for joins and leaves; messages in servers and DMs; their content if asked."""
    return GUILDS | GUILD_MEMBERS | GUILD_MESSAGES | DIRECT_MESSAGES | (MESSAGE_CONTENT if message_content else 0)


class Gateway:
    """One bot's Gateway session in its own thread and event loop. `events` holds (name, payload) pairs."""

    def __init__(self, token: str, api_base: str, message_content: bool) -> None:
        self._token, self._api_base, self._intents = token, api_base, intents(message_content)
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bot: Any = None
        self._thread = threading.Thread(target=self._run, name="discord-gateway", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # kept for poll() to report; the thread must not die silently
            self.failed = exc
            log.warning("the Discord gateway stopped: %s", type(exc).__name__)
        finally:
            self.ready.set()

    async def _main(self) -> None:
        import hikari

        self._loop = asyncio.get_running_loop()
        bot = hikari.GatewayBot(
            self._token, banner=None, logs=None, suppress_optimization_warning=True,
            intents=hikari.Intents(self._intents), auto_chunk_members=False, rest_url=self._api_base,
            cache_settings=hikari.impl.CacheSettings(components=hikari.api.CacheComponents.NONE))
        self._bot = bot

        async def on_payload(event: hikari.ShardPayloadEvent) -> None:
            if event.name in WANTED:
                self.events.put((event.name, dict(event.payload)))

        async def on_ready(_event: hikari.ShardReadyEvent) -> None:
            self.ready.set()

        bot.subscribe(hikari.ShardPayloadEvent, on_payload)
        bot.subscribe(hikari.ShardReadyEvent, on_ready)
        await bot.start(check_for_updates=False)
        await bot.join()

    def close(self, timeout: float = 10.0) -> None:
        loop, bot = self._loop, self._bot
        if loop is not None and bot is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(bot.close(), loop).result(timeout)
            except Exception as exc:  # closing is best effort
                log.warning("closing the Discord gateway: %s", type(exc).__name__)
        self._thread.join(timeout)
