"""The end-of-call webhook: each finished call's record, POSTed to ``IVR_CALL_WEBHOOK_URL``.

The call is over when its record is submitted, but the event loop still carries every other
call's audio, and a receiver may be slow, down or refusing. So ``submit`` only puts the record
on a bounded queue and returns; a few worker tasks do the HTTP, each request bounded by a
timeout, retried with exponential backoff when the failure may pass (a 5xx, 408/425/429, a
refused connection, a timeout) and given up at once when the receiver refused the record (any
other 4xx). A receiver that stays away costs records (each logged by CallSid and counted),
never memory, tasks or live calls.

Every request is signed the way Stripe signs its events, so a receiver can tell our records
from anyone's POST and a captured request cannot be replayed later::

    X-IVR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

``sign`` and ``verify_signature`` are public so receivers (and tests) check it with the same
code. ``Idempotency-Key`` is the record's own key, the same on every retry of the record, so a
receiver that saw a delivery whose answer was lost can drop the repeat. Neither the secret nor
the body is ever logged (the record is masked, but it is still a call); logs carry the CallSid,
the attempt and the status.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import aiohttp
import structlog

from ivr_bridge import __version__
from ivr_bridge.config import Settings
from ivr_bridge.errors import ConfigError
from ivr_bridge.records.model import CallRecord
from ivr_bridge.records.workers import drain_and_stop

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-IVR-Signature"
ATTEMPT_HEADER = "X-IVR-Delivery-Attempt"
USER_AGENT = f"ivr-bridge/{__version__}"

QUEUE_SIZE = 1000
WORKERS = 4
MAX_ATTEMPTS = 6
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
JITTER = 0.2
"""Each backoff is up to this fraction shorter, at random, so many bridges that lost the same
receiver do not all come back in the same second."""
REQUEST_TIMEOUT_S = 10.0
TOLERANCE_S = 300

RETRY_STATUSES = frozenset({408, 425, 429})
"""Besides every 5xx: the receiver is busy or timed out, not refusing the record."""

WebhookOutcome = Literal["delivered", "failed", "rejected", "dropped"]
"""``delivered``: a 2xx. ``failed``: every attempt failed in a way that may pass. ``rejected``:
the receiver refused the record (a 4xx other than 408/425/429, or a redirect). ``dropped``: it
never went out (the queue was full, or the webhook closed before it could be delivered)."""


def _secret_bytes(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def _mac(secret: bytes | str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(_secret_bytes(secret), signed, hashlib.sha256).hexdigest()


def sign(secret: bytes | str, body: bytes, timestamp: int) -> str:
    """The ``X-IVR-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, body, timestamp)}"


def verify_signature(
    secret: bytes | str,
    body: bytes,
    header: str | None,
    *,
    now: float,
    tolerance_s: float = TOLERANCE_S,
) -> bool:
    """Whether ``header`` signs exactly ``body`` with ``secret``, no more than ``tolerance_s``
    away from ``now`` (unix seconds). Never raises: a malformed header is simply not valid.

    Several ``v1=`` entries are allowed (any one matching will do), so a sender rotating its
    secret can sign with both for a while. Comparisons are constant-time.
    """
    if not header:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, body, timestamp).encode()
    ok = False
    for candidate in candidates:  # all of them, so the time taken says nothing about which
        ok |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return ok


def record_body(record: CallRecord) -> bytes:
    """What is POSTed: the record as JSON, compact, UTF-8."""
    doc = record.model_dump(mode="json")
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def retry_after_s(value: str | None, *, now: float) -> float | None:
    """A ``Retry-After`` header in seconds (delta seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


class CallWebhook:
    """Sends every submitted record to one URL; satisfies the keeper's ``RecordSink``.

    ``sleep``, ``clock`` (unix seconds, for the signature's ``t`` and ``Retry-After`` dates)
    and ``rand`` (0 ≤ x < 1, for the jitter) are injectable so tests never wait.
    """

    def __init__(
        self,
        url: str,
        secret: bytes | str,
        *,
        workers: int = WORKERS,
        queue_size: int = QUEUE_SIZE,
        max_attempts: int = MAX_ATTEMPTS,
        first_backoff_s: float = FIRST_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        on_result: Callable[[str, int], None] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if workers < 1 or queue_size < 1 or max_attempts < 1:
            raise ValueError("workers, queue_size and max_attempts must each be at least 1")
        self._url = url
        self._secret = _secret_bytes(secret)
        self._workers = workers
        self._max_attempts = max_attempts
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._request_timeout_s = request_timeout_s
        self._on_result = on_result
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._session = session
        self._owns_session = session is None
        self._queue: asyncio.Queue[CallRecord] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.delivered = 0
        self.failed = 0
        self.rejected = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Records queued, not yet taken by a worker."""
        return self._queue.qsize()

    def submit(self, record: CallRecord) -> bool:
        """Queue ``record`` for delivery. Never waits, never raises; False: it was dropped."""
        try:
            if self._closed:
                self._drop(record, 0, "call record not sent: the call webhook is closed")
                return False
            self._queue.put_nowait(record)
            return True
        except asyncio.QueueFull:
            self._drop(record, 0, "call record not sent: the call webhook is not keeping up")
            return False
        except Exception:
            log.exception("call webhook submit failed", call_sid=_sid(record))
            return False

    def start(self) -> None:
        """Start the delivery workers (inside the running loop); a second call does nothing."""
        if self._tasks or self._closed:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
        self._tasks = [
            asyncio.create_task(self._work(), name=f"call-webhook-{i}")
            for i in range(self._workers)
        ]

    async def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued or in flight for at most ``timeout_s``, then stop: what is
        still undelivered is dropped (logged by CallSid, counted). Closes the HTTP session."""
        self._closed = True
        await drain_and_stop(self._queue, self._tasks, timeout_s)
        while not self._queue.empty():
            self._drop(self._queue.get_nowait(), 0, "call record not sent: shutting down")
            self._queue.task_done()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _work(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self._deliver(record)
            except Exception:  # a bug, not the receiver: this record is lost, not the worker
                self.failed += 1
                log.exception("call webhook delivery broke", call_sid=_sid(record))
                self._tell("failed", 0)
            finally:
                self._queue.task_done()

    async def _deliver(self, record: CallRecord) -> None:
        sid = record.call_sid
        body = record_body(record)
        attempt = 0
        try:
            while True:
                attempt += 1
                status, wait_hint = await self._post(record, body, attempt)
                if status is not None and 200 <= status < 300:
                    self.delivered += 1
                    log.info("call record delivered", call_sid=sid, attempt=attempt, status=status)
                    self._tell("delivered", attempt)
                    return
                if status is not None and not _retryable(status):
                    self.rejected += 1
                    log.error(
                        "call record refused by the webhook receiver; not retried",
                        call_sid=sid,
                        attempt=attempt,
                        status=status,
                    )
                    self._tell("rejected", attempt)
                    return
                if attempt >= self._max_attempts:
                    self.failed += 1
                    log.error(
                        "call record not delivered: every attempt failed",
                        call_sid=sid,
                        attempt=attempt,
                        status=status,
                    )
                    self._tell("failed", attempt)
                    return
                await self._sleep(self._backoff(attempt, wait_hint))
        except asyncio.CancelledError:
            self._drop(record, attempt, "call record not sent: shutting down mid-delivery")
            raise

    async def _post(
        self, record: CallRecord, body: bytes, attempt: int
    ) -> tuple[int | None, float | None]:
        """One attempt: (status, Retry-After seconds); status None when no answer came."""
        assert self._session is not None
        now = self._clock()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(self._secret, body, int(now)),
            "Idempotency-Key": record.idempotency_key,
            ATTEMPT_HEADER: str(attempt),
        }
        try:
            async with self._session.post(
                self._url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._request_timeout_s),
            ) as response:
                status = response.status
                hint = retry_after_s(response.headers.get("Retry-After"), now=self._clock())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning(
                "call webhook unreachable",
                call_sid=record.call_sid,
                attempt=attempt,
                error=type(exc).__name__,
            )
            return None, None
        if not 200 <= status < 300 and _retryable(status):
            log.warning(
                "call webhook answered an error",
                call_sid=record.call_sid,
                attempt=attempt,
                status=status,
            )
        return status, hint

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """After failed attempt ``attempt`` (1-based): 1 s, 2 s, 4 s ... up to the maximum, each
        up to ``JITTER`` shorter; a receiver's ``Retry-After`` is honoured when it asks for
        longer, capped at the same maximum."""
        base = min(self._max_backoff_s, self._first_backoff_s * 2 ** (attempt - 1))
        delay = base * (1.0 - JITTER * self._rand())
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self._max_backoff_s)

    def _drop(self, record: CallRecord, attempts: int, message: str) -> None:
        self.dropped += 1
        log.error(message, call_sid=_sid(record), attempt=attempts)
        self._tell("dropped", attempts)

    def _tell(self, outcome: WebhookOutcome, attempts: int) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(outcome, attempts)
        except Exception:
            log.exception("call webhook on_result callback failed")


def _retryable(status: int) -> bool:
    return status >= 500 or status in RETRY_STATUSES


def _sid(record: object) -> str:
    return str(getattr(record, "call_sid", "?"))


def open_call_webhook(settings: Settings, **options: Any) -> CallWebhook | None:
    """The webhook ``IVR_CALL_WEBHOOK_URL`` asks for; None when it is unset. ``options`` go to
    ``CallWebhook`` (tests pass ``sleep``, ``on_result``...). Not started: call ``start()``."""
    if not settings.call_webhook_url:
        return None
    if settings.call_webhook_secret is None:
        raise ConfigError(
            "IVR_CALL_WEBHOOK_URL is set but IVR_CALL_WEBHOOK_SECRET is not: the receiver "
            "needs it to check the X-IVR-Signature header (at least 16 characters)"
        )
    secret = settings.call_webhook_secret.get_secret_value()
    return CallWebhook(settings.call_webhook_url, secret, **options)
