"""What happens to a record once its call has ended: one log line, metrics, the webhook, the
store, and retention.

The call is over when this runs, but the event loop still carries every other call's audio, so
nothing here may wait: ``call_ended`` logs, counts and queues, then returns. A worker task turns
the two channels into a WAV (in a thread: encoding a long call takes milliseconds of CPU) and
writes record and recording. The queue is bounded: a store that stops answering costs records
(each one logged by CallSid and counted), never memory or live calls.
"""

from __future__ import annotations

import asyncio
import io
import time
import wave
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS, audioop
from ivr_bridge.call.call_audio import CallAudio
from ivr_bridge.records.model import CallRecord
from ivr_bridge.records.store import RecordStore
from ivr_bridge.records.workers import drain_and_stop

log = structlog.get_logger(__name__)

QUEUE_SIZE = 256
RETENTION_EVERY_S = 3600.0
WAV_CHUNK = 8000
"""µ-law bytes converted at once (1 s)."""
BETWEEN_WRITES_S = 0.01
"""The writer's pause between records: many calls ending together are written over a moment,
not in one burst of threads competing with the event loop for the GIL."""


class RecordSink(Protocol):
    """Something else told of every record (the end-of-call webhook)."""

    def submit(self, record: CallRecord) -> bool: ...


def stereo_wav(caller: bytes, bot: bytes) -> bytes:
    """16-bit PCM, 8 kHz, left the caller and right the bot as heard (plays anywhere).

    Converted a second at a time: audioop holds the GIL for each call, and this runs in a
    thread beside the event loop carrying live calls, which must never wait long for it."""
    frames = max(len(caller), len(bot))
    caller, bot = bytes(caller).ljust(frames, b"\xff"), bytes(bot).ljust(frames, b"\xff")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(ULAW_BYTES_PER_MS * 1000)
        for at in range(0, frames, WAV_CHUNK):
            left = audioop.ulaw2lin(caller[at : at + WAV_CHUNK], 2)
            right = audioop.ulaw2lin(bot[at : at + WAV_CHUNK], 2)
            w.writeframes(
                audioop.add(audioop.tostereo(left, 2, 1, 0), audioop.tostereo(right, 2, 0, 1), 2)
            )
    return out.getvalue()


class RecordKeeper:
    def __init__(
        self,
        store: RecordStore | None,
        *,
        retention_days: float = 0.0,
        sinks: list[RecordSink] | None = None,
        on_record: Callable[[CallRecord], None] | None = None,
        on_dropped: Callable[[], None] | None = None,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.store = store
        self._retention = timedelta(days=retention_days) if retention_days > 0 else None
        self._sinks = sinks or []
        self._on_record = on_record
        self._on_dropped = on_dropped
        self._queue: asyncio.Queue[tuple[CallRecord, CallAudio | None]] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self.saved = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        if self.store is not None:
            self._tasks.append(asyncio.create_task(self._write_loop(), name="records-writer"))
            if self._retention is not None:
                self._tasks.append(asyncio.create_task(self._retention_loop(), name="retention"))

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued and what is being written (bounded), then stop."""
        await drain_and_stop(self._queue, self._tasks, timeout_s)
        if self.store is not None:
            await self.store.close()

    def call_ended(self, record: CallRecord, audio: CallAudio | None) -> None:
        """Never waits and never raises: the one line, metrics, the sinks, the store's queue."""
        summary = record.summary()
        log.info("call summary", **{k: v for k, v in summary.items() if k != "call_sid"})
        for tell in (self._on_record, *(s.submit for s in self._sinks)):
            if tell is None:
                continue
            try:
                tell(record)
            except Exception:
                log.exception("a call record's consumer failed", call_sid=record.call_sid)
        if self.store is None:
            return
        try:
            self._queue.put_nowait(
                (record, audio if audio is not None and audio.keep_audio else None)
            )
        except asyncio.QueueFull:
            self.dropped += 1
            if self._on_dropped is not None:
                self._on_dropped()
            log.error(
                "call record dropped: the record store is not keeping up", call_sid=record.call_sid
            )

    async def _write_loop(self) -> None:
        assert self.store is not None
        while True:
            record, audio = await self._queue.get()
            try:
                wav = None
                if audio is not None:
                    wav = await asyncio.to_thread(stereo_wav, bytes(audio.caller), bytes(audio.bot))
                await self.store.save(record, wav)
                self.saved += 1
            except Exception as exc:  # the store is away: this record is lost, the next may not be
                self.failed += 1
                log.error("could not keep a call record", call_sid=record.call_sid, error=repr(exc))
            finally:
                self._queue.task_done()
            await asyncio.sleep(BETWEEN_WRITES_S)

    async def purge_now(self) -> int:
        if self.store is None or self._retention is None:
            return 0
        cutoff = datetime.now(UTC) - self._retention
        started = time.monotonic()
        removed = await self.store.purge(cutoff)
        if removed:
            log.info(
                "old call records removed",
                removed=removed,
                older_than=cutoff.isoformat(timespec="seconds"),
                took_ms=round((time.monotonic() - started) * 1000),
            )
        return removed

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.purge_now()
            except Exception as exc:
                log.warning("retention pass failed; retried in an hour", error=repr(exc))
            await asyncio.sleep(RETENTION_EVERY_S)
