"""Readiness: may a load balancer send this bridge new calls?

``/healthz`` is liveness (the process answers); ``/readyz`` answers 503 while the bridge drains
(SIGTERM) or while its speech path is down, because a call answered then can only apologise. The
speech path is judged two ways: every session the bridge opens reports success or failure, and
a probe opens (and at once closes, before any ``init``: no key is sent, nothing is synthesised)
a WebSocket to the speech endpoint every few seconds, so an idle bridge notices an outage, and
its end, without waiting for a caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

log = structlog.get_logger(__name__)

PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 2.0


class SpeechPathHealth:
    def __init__(self, session_url: str) -> None:
        self.url = session_url
        self.up = True
        self.reason = ""
        self.changed_at = time.monotonic()

    def report(self, up: bool, reason: str = "") -> None:
        if up != self.up:
            self.changed_at = time.monotonic()
            (log.info if up else log.error)(
                "speech path up" if up else "speech path down: not ready for new calls",
                endpoint=self.url,
                reason=reason,
            )
        self.up, self.reason = up, reason

    async def probe_once(self, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                ws = await connect(self.url, open_timeout=None, compression=None)
                await ws.close()
        except (OSError, TimeoutError, WebSocketException) as exc:
            self.report(False, f"cannot open {self.url}: {exc or 'timed out'}")
            return
        self.report(True)

    async def run(self, interval_s: float = PROBE_INTERVAL_S) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(interval_s)

    @contextlib.asynccontextmanager
    async def probing(self, interval_s: float = PROBE_INTERVAL_S) -> AsyncIterator[None]:
        task = asyncio.create_task(self.run(interval_s), name="speech-path-probe")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
