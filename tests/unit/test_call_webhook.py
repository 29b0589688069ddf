"""The end-of-call webhook against a real local receiver: what arrives, signed how, retried when."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import structlog.testing
from aiohttp import web
from pydantic import SecretStr

from ivr_bridge import __version__
from ivr_bridge.config import Settings
from ivr_bridge.errors import ConfigError
from ivr_bridge.records.model import CallerTurn, CallRecord
from ivr_bridge.records.webhook import (
    CallWebhook,
    open_call_webhook,
    retry_after_s,
    sign,
    verify_signature,
)

SECRET = b"whsec-0123456789abcdef"
NOW = 1_780_000_000.0


def make_record(n: int = 1) -> CallRecord:
    return CallRecord(
        call_sid=f"CA{n:032x}",
        app="flow",
        flow="support",
        started_at=datetime(2026, 12, 4, 18, 0, 0, tzinfo=UTC),
        ended_at=datetime(2026, 12, 4, 18, 1, 30, tzinfo=UTC),
        duration_ms=90_000.0,
        outcome="completed",
        turns=[CallerTurn(kind="dtmf", start_ms=1000.0, end_ms=1200.0, text="••••")],
    )


@dataclass
class Seen:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next scripted (status, headers), then 200s."""

    url: str = ""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    hang: asyncio.Event | None = None
    """Set: the first request waits on it (never answers until set)."""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(dict(request.headers), await request.read()))
        if self.hang is not None and len(self.seen) == 1:
            await self.hang.wait()
        status, headers = self.script.pop(0) if self.script else (200, {})
        return web.Response(status=status, headers=headers)

    def attempts(self) -> list[str]:
        return [s.headers["X-IVR-Delivery-Attempt"] for s in self.seen]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hook"
    yield rec
    if rec.hang is not None:
        rec.hang.set()
    await runner.cleanup()


@pytest.fixture
async def dead_url() -> str:
    """A port nothing listens on any more: every connection is refused."""
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()
    return f"http://127.0.0.1:{port}/hook"


class FakeSleep:
    """Records each backoff; returns at once, or (``block``) never, so a worker stays mid-retry."""

    def __init__(self, *, block: bool = False) -> None:
        self.delays: list[float] = []
        self.block = block
        self.entered = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.entered.set()
        if self.block:
            await asyncio.Event().wait()
        await asyncio.sleep(0)


class Results:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, outcome: str, attempts: int) -> None:
        self.calls.append((outcome, attempts))


def webhook(url: str, sleep: FakeSleep, results: Results, **kw: object) -> CallWebhook:
    options: dict[str, object] = {"clock": lambda: NOW, "rand": lambda: 0.0, **kw}
    return CallWebhook(url, SECRET, sleep=sleep, on_result=results, **options)  # type: ignore[arg-type]


async def deliver(hook: CallWebhook, *records: CallRecord) -> None:
    hook.start()
    for record in records:
        assert hook.submit(record)
    await asyncio.wait_for(hook.close(timeout_s=30.0), 60.0)


# --- what arrives ---------------------------------------------------------------------------


async def test_the_receiver_gets_the_record_as_json_signed_with_the_secret(
    receiver: Receiver,
) -> None:
    results = Results()
    record = make_record()
    await deliver(webhook(receiver.url, FakeSleep(), results), record)

    assert results.calls == [("delivered", 1)]
    [seen] = receiver.seen
    assert json.loads(seen.body) == record.model_dump(mode="json")
    assert CallRecord.model_validate_json(seen.body) == record
    assert b", " not in seen.body and b": " not in seen.body  # compact
    headers = seen.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == f"ivr-bridge/{__version__}"
    assert headers["Idempotency-Key"] == record.idempotency_key
    assert headers["X-IVR-Delivery-Attempt"] == "1"
    signature = headers["X-IVR-Signature"]
    assert signature.startswith(f"t={int(NOW)},v1=")
    assert verify_signature(SECRET, seen.body, signature, now=NOW)
    assert verify_signature(SECRET.decode(), seen.body, signature, now=NOW + 299)
    assert not verify_signature(b"another-secret-0123456", seen.body, signature, now=NOW)
    assert SECRET not in seen.body and SECRET.decode() not in str(headers)


async def test_a_receiver_failing_twice_gets_the_record_once_on_the_third_try(
    receiver: Receiver,
) -> None:
    receiver.script = [(500, {}), (500, {})]
    sleep, results = FakeSleep(), Results()
    hook = webhook(receiver.url, sleep, results)
    await deliver(hook, make_record())

    assert receiver.attempts() == ["1", "2", "3"]
    keys = {s.headers["Idempotency-Key"] for s in receiver.seen}
    assert keys == {make_record().idempotency_key}
    assert len({s.body for s in receiver.seen}) == 1
    assert results.calls == [("delivered", 3)]
    assert (hook.delivered, hook.failed, hook.rejected, hook.dropped) == (1, 0, 0, 0)
    assert sleep.delays == [1.0, 2.0]  # exponential from 1 s (no jitter drawn here)


async def test_every_retry_is_signed_afresh(receiver: Receiver) -> None:
    receiver.script = [(503, {})]
    times = iter([NOW, NOW, NOW + 40, NOW + 40])
    hook = webhook(receiver.url, FakeSleep(), Results(), clock=lambda: next(times))
    await deliver(hook, make_record())

    first, second = (s.headers["X-IVR-Signature"] for s in receiver.seen)
    assert first.startswith(f"t={int(NOW)},") and second.startswith(f"t={int(NOW) + 40},")
    assert verify_signature(SECRET, receiver.seen[1].body, second, now=NOW + 40)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422, 301])
async def test_a_refusal_is_not_retried(receiver: Receiver, status: int) -> None:
    receiver.script = [(status, {"Location": "/elsewhere"} if status == 301 else {})]
    sleep, results = FakeSleep(), Results()
    hook = webhook(receiver.url, sleep, results)
    await deliver(hook, make_record())

    assert receiver.attempts() == ["1"]
    assert results.calls == [("rejected", 1)]
    assert sleep.delays == [] and hook.rejected == 1


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
async def test_busy_or_broken_receivers_are_retried(receiver: Receiver, status: int) -> None:
    receiver.script = [(status, {})]
    results = Results()
    await deliver(webhook(receiver.url, FakeSleep(), results), make_record())
    assert receiver.attempts() == ["1", "2"]
    assert results.calls == [("delivered", 2)]


async def test_retry_after_is_honoured_and_capped(receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "7"}), (503, {"Retry-After": "3600"})]
    sleep, results = FakeSleep(), Results()
    await deliver(webhook(receiver.url, sleep, results), make_record())
    assert sleep.delays == [7.0, 60.0]
    assert results.calls == [("delivered", 3)]


async def test_gives_up_after_the_last_attempt_with_backoff_and_jitter(receiver: Receiver) -> None:
    receiver.script = [(500, {})] * 10
    sleep, results = FakeSleep(), Results()
    hook = webhook(receiver.url, sleep, results, rand=lambda: 0.5, max_backoff_s=10.0)
    await deliver(hook, make_record())

    assert receiver.attempts() == ["1", "2", "3", "4", "5", "6"]
    assert results.calls == [("failed", 6)]
    assert sleep.delays == [0.9, 1.8, 3.6, 7.2, 9.0]  # 10 % jitter off 1, 2, 4, 8, then 10 max
    assert hook.failed == 1


async def test_a_receiver_that_never_answers_times_out_and_is_retried(receiver: Receiver) -> None:
    receiver.hang = asyncio.Event()
    results = Results()
    hook = webhook(receiver.url, FakeSleep(), results, request_timeout_s=0.2)
    await deliver(hook, make_record())
    assert receiver.attempts() == ["1", "2"]
    assert results.calls == [("delivered", 2)]


async def test_an_unreachable_receiver_is_retried_then_failed(dead_url: str) -> None:
    sleep, results = FakeSleep(), Results()
    hook = webhook(dead_url, sleep, results, max_attempts=3)
    await deliver(hook, make_record())
    assert results.calls == [("failed", 3)]
    assert sleep.delays == [1.0, 2.0]


async def test_many_records_each_delivered_once(receiver: Receiver) -> None:
    results = Results()
    records = [make_record(n) for n in range(25)]
    await deliver(webhook(receiver.url, FakeSleep(), results, workers=4), *records)
    keys = sorted(s.headers["Idempotency-Key"] for s in receiver.seen)
    assert keys == sorted(r.idempotency_key for r in records)
    assert results.calls == [("delivered", 1)] * 25


# --- never blocking the call ----------------------------------------------------------------


async def test_a_full_queue_drops_the_record_and_says_so(receiver: Receiver) -> None:
    results = Results()
    hook = webhook(receiver.url, FakeSleep(), results, queue_size=2)  # not started: nothing drains
    assert hook.submit(make_record(1)) and hook.submit(make_record(2))
    assert hook.submit(make_record(3)) is False
    assert results.calls == [("dropped", 0)] and hook.dropped == 1
    await deliver(hook)  # what was queued before start still goes out
    assert len(receiver.seen) == 2 and hook.delivered == 2


async def test_close_with_a_dead_receiver_returns_within_its_bound(dead_url: str) -> None:
    sleep, results = FakeSleep(block=True), Results()  # a backoff that would never end
    hook = webhook(dead_url, sleep, results, workers=1)
    hook.start()
    assert hook.submit(make_record(1)) and hook.submit(make_record(2))
    await asyncio.wait_for(sleep.entered.wait(), 10.0)  # the worker is waiting to retry

    await asyncio.wait_for(hook.close(timeout_s=0.05), 10.0)

    assert sorted(results.calls) == [("dropped", 0), ("dropped", 1)]  # in flight and queued
    assert hook.dropped == 2 and hook.pending == 0
    assert hook.submit(make_record(3)) is False  # closed: dropped, not queued, not raised


async def test_submit_never_raises(receiver: Receiver) -> None:
    def broken(outcome: str, attempts: int) -> None:
        raise RuntimeError("metrics are down")

    hook = CallWebhook(receiver.url, SECRET, queue_size=2, on_result=broken, sleep=FakeSleep())
    assert hook.submit(make_record(1)) is True
    assert hook.submit("not a record") is True  # type: ignore[arg-type]
    assert hook.submit(make_record(2)) is False  # full, and the callback raised: still False
    await asyncio.wait_for(hook.close(timeout_s=0.05), 10.0)
    assert hook.submit(make_record(3)) is False


async def test_a_broken_record_costs_that_record_not_the_worker(receiver: Receiver) -> None:
    results = Results()
    hook = webhook(receiver.url, FakeSleep(), results, workers=1)
    hook.start()
    assert hook.submit("not a record")  # type: ignore[arg-type]
    assert hook.submit(make_record(1))
    await asyncio.wait_for(hook.close(timeout_s=30.0), 60.0)
    assert results.calls == [("failed", 0), ("delivered", 1)]


# --- the signature, for receivers -----------------------------------------------------------


def test_verify_signature_rejects_stale_tampered_and_malformed() -> None:
    body = b'{"call_sid":"CA1"}'
    header = sign(SECRET, body, int(NOW))
    assert verify_signature(SECRET, body, header, now=NOW)
    assert not verify_signature(SECRET, body, header, now=NOW + 301)  # replayed later
    assert not verify_signature(SECRET, body, header, now=NOW - 301)
    assert verify_signature(SECRET, body, header, now=NOW + 600, tolerance_s=900)
    assert not verify_signature(SECRET, body + b" ", header, now=NOW)
    later = header.replace(f"t={int(NOW)}", f"t={int(NOW) + 1}")
    assert not verify_signature(SECRET, body, later, now=NOW)  # the time is signed too
    for bad in ["", "v1=abc", f"t={int(NOW)}", "t=soon,v1=00", "garbage", f"t={int(NOW)},v1=zz"]:
        assert not verify_signature(SECRET, body, bad, now=NOW)
    assert not verify_signature(SECRET, body, None, now=NOW)


def test_a_rotating_sender_may_sign_with_two_secrets() -> None:
    body = b"{}"
    old = sign(b"old-secret-0123456789", body, int(NOW)).split(",")[1]
    header = f"{sign(SECRET, body, int(NOW))},{old}"
    assert verify_signature(SECRET, body, header, now=NOW)
    assert verify_signature(b"old-secret-0123456789", body, header, now=NOW)


def test_the_signature_is_plain_hmac_sha256_of_time_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(SECRET, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body, 1_700_000_000) == f"t=1700000000,v1={expected}"


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_s("12", now=NOW) == 12.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert retry_after_s("-5", now=NOW) == 0.0
    for bad in [None, "", "soon", "nan"]:
        assert retry_after_s(bad, now=NOW) is None


# --- settings -------------------------------------------------------------------------------


def test_open_call_webhook_follows_the_settings() -> None:
    assert open_call_webhook(Settings()) is None
    settings = Settings(
        call_webhook_url="https://crm.example.com/calls",
        call_webhook_secret=SecretStr(SECRET.decode()),
    )
    hook = open_call_webhook(settings, queue_size=5)
    assert isinstance(hook, CallWebhook)
    unsigned = Settings.model_construct(call_webhook_url="https://x.example.com/calls")
    with pytest.raises(ConfigError):
        open_call_webhook(unsigned)


async def test_logs_name_the_call_never_the_secret_or_the_record(receiver: Receiver) -> None:
    receiver.script = [(500, {}), (422, {})]
    record = make_record(7)
    with structlog.testing.capture_logs() as logs:
        await deliver(webhook(receiver.url, FakeSleep(), Results()), record)
        webhook(receiver.url, FakeSleep(), Results(), queue_size=1).submit(record)  # never started
    text = repr(logs)
    assert SECRET.decode() not in text and "••••" not in text and "support" not in text
    refused = [e for e in logs if "refused" in e["event"]]
    assert refused == [
        {
            "event": refused[0]["event"],
            "log_level": "error",
            "call_sid": record.call_sid,
            "attempt": 2,
            "status": 422,
        }
    ]
    assert all(e.get("call_sid") == record.call_sid for e in logs)
