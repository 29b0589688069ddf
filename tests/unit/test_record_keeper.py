"""The record keeper: one summary line, never a wait for the call, retention enforced."""

from __future__ import annotations

import asyncio
import io
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from ivr_bridge.audio.codec import audioop
from ivr_bridge.call.call_audio import CallAudio
from ivr_bridge.records.keeper import RecordKeeper, stereo_wav
from ivr_bridge.records.model import CallRecord
from ivr_bridge.records.store import FileRecordStore
from ivr_bridge.records.testing import MemoryRecordStore

NOW = datetime.now(UTC)


def record(sid: str, *, age_days: float = 0.0) -> CallRecord:
    started = NOW - timedelta(days=age_days)
    return CallRecord(
        call_sid=sid,
        app="flow",
        flow="support_line",
        started_at=started,
        ended_at=started + timedelta(seconds=42),
        duration_ms=42_000,
        outcome="completed",
    )


class StuckStore(MemoryRecordStore):
    """A store that never finishes a write (a database that stopped answering)."""

    async def save(self, record: CallRecord, wav: bytes | None = None) -> None:
        await asyncio.Event().wait()


class FailingOnce(MemoryRecordStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def save(self, record: CallRecord, wav: bytes | None = None) -> None:
        self.calls += 1
        if self.calls == 1:
            raise OSError("disk full")
        await super().save(record, wav)


def test_stereo_wav_puts_the_caller_left_and_the_bot_right() -> None:
    loud, quiet = b"\x10" * 160, b"\xff" * 160
    wav = stereo_wav(loud + quiet, quiet)  # the bot channel shorter: padded with silence
    with wave.open(io.BytesIO(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        assert w.getnframes() == 320
        frames = w.readframes(320)
    left, right = audioop.tomono(frames, 2, 1, 0), audioop.tomono(frames, 2, 0, 1)
    assert audioop.rms(left[:320], 2) > 1000 and audioop.rms(left[320:], 2) < 10
    assert audioop.rms(right, 2) < 10


async def test_a_record_is_summarised_in_one_line_and_kept_with_its_recording() -> None:
    store = MemoryRecordStore()
    seen: list[str] = []
    keeper = RecordKeeper(store, on_record=lambda r: seen.append(r.call_sid))
    keeper.start()
    audio = CallAudio(keep_audio=True)
    audio.on_caller(0.0, b"\x10" * 160)
    with capture_logs() as logs:
        keeper.call_ended(record("CA1"), audio)
    [line] = [e for e in logs if e["event"] == "call summary"]
    assert (line["flow"], line["outcome"], line["duration_s"]) == ("support_line", "completed", 42)
    assert seen == ["CA1"]
    await keeper.close()
    assert await store.get("CA1") == record("CA1")
    wav = await store.audio("CA1")
    assert wav is not None and wav.startswith(b"RIFF")


async def test_a_store_that_stops_answering_costs_records_not_calls() -> None:
    dropped: list[int] = []
    keeper = RecordKeeper(StuckStore(), queue_size=2, on_dropped=lambda: dropped.append(1))
    keeper.start()
    with capture_logs() as logs:
        for n in range(5):
            keeper.call_ended(record(f"CA{n}"), None)  # returns at once, every time
    assert keeper.dropped == 3 and len(dropped) == 3  # two queued, the rest told and counted
    logged = [e["call_sid"] for e in logs if e["event"].startswith("call record dropped")]
    assert logged == ["CA2", "CA3", "CA4"]
    await keeper.close(timeout_s=0.05)  # bounded, though the store never answers


async def test_a_failed_write_loses_that_record_only() -> None:
    store = FailingOnce()
    keeper = RecordKeeper(store)
    keeper.start()
    keeper.call_ended(record("CA1"), None)
    keeper.call_ended(record("CA2"), None)
    await keeper.close()
    assert (keeper.failed, keeper.saved) == (1, 1)
    assert await store.get("CA1") is None and await store.get("CA2") is not None


async def test_retention_removes_an_older_record_and_keeps_a_newer_one(tmp_path: Path) -> None:
    store = FileRecordStore(tmp_path)
    await store.save(record("CAold", age_days=31), wav=b"RIFF-old")
    await store.save(record("CAnew", age_days=29), wav=b"RIFF-new")
    keeper = RecordKeeper(store, retention_days=30)
    with capture_logs() as logs:
        assert await keeper.purge_now() == 1
    assert await store.get("CAold") is None and await store.audio("CAold") is None
    assert await store.get("CAnew") is not None and await store.audio("CAnew") == b"RIFF-new"
    files = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240 (a test's temp dir)
    assert files == ["CAnew.json", "CAnew.wav"]
    [line] = [e for e in logs if e["event"] == "old call records removed"]
    assert line["removed"] == 1


async def test_the_keeper_enforces_retention_as_soon_as_it_starts(tmp_path: Path) -> None:
    store = FileRecordStore(tmp_path)
    await store.save(record("CAold", age_days=8))
    keeper = RecordKeeper(store, retention_days=7)
    keeper.start()
    async with asyncio.timeout(10):
        while await store.get("CAold") is not None:  # noqa: ASYNC110 (the store is polled)
            await asyncio.sleep(0.01)
    await keeper.close()


async def test_retention_zero_keeps_everything(tmp_path: Path) -> None:
    store = FileRecordStore(tmp_path)
    await store.save(record("CAancient", age_days=3650))
    assert await RecordKeeper(store, retention_days=0).purge_now() == 0
    assert await store.get("CAancient") is not None


class SlowStore(MemoryRecordStore):
    """A write that takes a while (a database round trip)."""

    async def save(self, record: CallRecord, wav: bytes | None = None) -> None:
        await asyncio.sleep(0.05)
        await super().save(record, wav)


async def test_closing_waits_for_the_record_being_written() -> None:
    store = SlowStore()
    keeper = RecordKeeper(store)
    keeper.start()
    keeper.call_ended(record("CA1"), None)
    await asyncio.sleep(0.01)  # the writer holds it now: the queue itself is empty
    await keeper.close()
    assert await store.get("CA1") is not None
