"""Every record store keeps the same promises: the in-memory double, the directory, and the
database store on SQLite and on PostgreSQL.

PostgreSQL is the machine's (``IVR_TEST_PG_URL``, default postgresql://postgres@127.0.0.1:5432/test);
each test gets a schema of its own, dropped afterwards, so pytest-xdist workers never meet. A
server that is down fails the test with the command to start it, rather than skipping: sharing
one history between replicas is only tested there.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ivr_bridge.config import Settings
from ivr_bridge.errors import RecordError
from ivr_bridge.records import sql
from ivr_bridge.records.model import (
    BargeIn,
    BotUtterance,
    CallerTurn,
    CallRecord,
    Outcome,
    RecordAudio,
    RecordSummary,
)
from ivr_bridge.records.open import open_record_store
from ivr_bridge.records.sql import SqlRecordStore, records_engine
from ivr_bridge.records.store import FileRecordStore, RecordStore
from ivr_bridge.records.testing import MemoryRecordStore

PG_URL = os.environ.get("IVR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 12, 4, 12, 0, 0, 250_000, tzinfo=UTC)
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4

NewStore = Callable[[], RecordStore]
"""Opens another store on the same history (a second replica, for the stores that share)."""


class Stores:
    def __init__(self, kind: str, directory: Path, new: NewStore) -> None:
        self.kind = kind
        self.directory = directory
        """Where the stores that keep files keep them (unused by the in-memory double)."""
        self.opened: list[RecordStore] = []
        self._new = new

    def new(self) -> RecordStore:
        store = self._new()
        self.opened.append(store)
        return store

    @property
    def keeps_files(self) -> bool:
        return self.kind != "memory"


@asynccontextmanager
async def opened(kind: str, tmp_path: Path) -> AsyncIterator[Stores]:
    """Stores of one kind on one history, closed (and a PostgreSQL schema dropped) after."""
    directory = tmp_path / "call-records"
    schema = f"ivr_test_{uuid.uuid4().hex[:12]}"
    new: NewStore
    if kind == "memory":
        memory = MemoryRecordStore()

        def new() -> RecordStore:
            return memory
    elif kind == "file":

        def new() -> RecordStore:
            return FileRecordStore(directory)
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'records.db'}"

        def new() -> RecordStore:
            return SqlRecordStore(records_engine(url), directory)
    else:
        await _create_schema(schema)

        def new() -> RecordStore:
            return SqlRecordStore(records_engine(PG_URL, search_path=schema), directory)

    made = Stores(kind, directory, new)
    try:
        yield made
    finally:
        for store in made.opened:
            await store.close()
        if kind == "postgresql":
            admin = records_engine(PG_URL)
            async with admin.begin() as db:
                await db.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()


@pytest.fixture(params=["memory", "file", "sqlite", "postgresql"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    async with opened(request.param, tmp_path) as made:
        yield made


@pytest.fixture(params=["sqlite", "postgresql"])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    """The stores several replicas share: each ``new()`` is another replica's."""
    async with opened(request.param, tmp_path) as made:
        yield made


async def _create_schema(schema: str) -> None:
    admin = records_engine(PG_URL)
    try:
        async with admin.begin() as db:
            await db.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OSError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_URL} is down ({exc}): start it with "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    finally:
        await admin.dispose()


@pytest.fixture
def store(stores: Stores) -> RecordStore:
    return stores.new()


def sid() -> str:
    return "CA" + uuid.uuid4().hex


def record(
    call_sid: str | None = None,
    *,
    ago: timedelta = timedelta(0),
    outcome: Outcome = "completed",
    flow: str | None = "support",
    app: str = "flow",
    audio: bool = False,
) -> CallRecord:
    """A record with some of everything a real call leaves (nested lists, floats, words)."""
    started = NOW - ago
    call_sid = sid() if call_sid is None else call_sid
    return CallRecord(
        call_sid=call_sid,
        stream_sid="MZ" + call_sid[2:],
        app=app,
        flow=flow,
        parameters={"from": "***-***-4567", "campaign": "déjà vu"},
        started_at=started,
        ended_at=started + timedelta(seconds=42.5),
        duration_ms=42_500.0,
        outcome=outcome,
        utterances=[
            BotUtterance(
                id=1,
                start_ms=120.0,
                end_ms=2_300.5,
                text="Thanks for calling. Say billing or support.",
                heard="Thanks for calling.",
                unheard="Say billing or support.",
                interrupted=True,
                interrupted_by="speech",
                played_ms=1_180.0,
            )
        ],
        turns=[
            CallerTurn(
                kind="speech",
                start_ms=1_300.0,
                end_ms=2_100.0,
                text="billing",
                confidence=0.93,
                engine="whisper",
                stt_ms=210.2,
                barge_in=True,
                latency_ms=640.0,
            ),
            CallerTurn(kind="dtmf", start_ms=5_000.0, end_ms=5_000.0, text="***"),
        ],
        barge_ins=[BargeIn(at_ms=1_300.0, utterance=1, by="speech", onset_to_clear_ms=80.0)],
        errors=["the LLM timed out"] if outcome == "failed" else [],
        latency_p50_ms=640.0,
        latency_p95_ms=640.0,
        audio=RecordAudio(file=f"{call_sid}.wav", duration_ms=42_500.0, bytes=len(WAV))
        if audio
        else None,
        events=[{"kind": "say", "call_ms": 120.0, "text": "Thanks — ünïcode"}, {"kind": "end"}],
    )


# -- the contract, on every store --------------------------------------------------------------


async def test_a_saved_record_reads_back_exactly_as_it_was(store: RecordStore) -> None:
    kept = record(outcome="failed", audio=True)
    await store.save(kept, WAV)
    assert await store.get(kept.call_sid) == kept
    assert await store.list() == [RecordSummary.of(kept)]
    assert await store.get(sid()) is None


async def test_saving_a_call_again_replaces_its_record(store: RecordStore) -> None:
    call_sid = sid()
    await store.save(record(call_sid, outcome="failed", flow="support"))
    replacement = record(call_sid, outcome="transferred", flow="billing", ago=timedelta(hours=1))
    await store.save(replacement)
    assert await store.get(call_sid) == replacement
    listed = await store.list()
    assert [(s.call_sid, s.outcome, s.flow) for s in listed] == [
        (call_sid, "transferred", "billing")
    ]
    assert await store.list(outcome="failed") == []


async def test_the_newest_calls_are_listed_first_and_filters_narrow_them(
    store: RecordStore,
) -> None:
    one_min, one_hour, one_day, two_days, reminder = (sid() for _ in range(5))
    await store.save(record(one_hour, ago=timedelta(hours=1), outcome="failed"))
    await store.save(record(two_days, ago=timedelta(days=2), flow="billing"))
    await store.save(record(one_min, ago=timedelta(minutes=1)))
    await store.save(
        record(reminder, ago=timedelta(days=3), flow=None, app="reminder", outcome="caller_hung_up")
    )
    await store.save(record(one_day, ago=timedelta(days=1), outcome="failed", flow="billing"))

    async def sids(**query: Any) -> list[str]:
        return [s.call_sid for s in await store.list(**query)]

    assert await sids() == [one_min, one_hour, one_day, two_days, reminder]
    assert await sids(limit=2) == [one_min, one_hour]
    assert await sids(before=NOW - timedelta(hours=1)) == [one_day, two_days, reminder]
    assert await sids(before=NOW - timedelta(minutes=30), limit=1) == [one_hour]
    assert await sids(outcome="failed") == [one_hour, one_day]
    assert await sids(flow="billing") == [one_day, two_days]
    assert await sids(flow="reminder") == [reminder]  # an app without a flow lists as the app
    assert await sids(flow="billing", outcome="failed") == [one_day]
    assert await sids(flow="nope") == []
    assert (await store.list(flow="reminder"))[0].flow == "reminder"


async def test_a_recording_is_kept_beside_its_record_and_none_without(
    stores: Stores, store: RecordStore
) -> None:
    with_audio, without = record(audio=True), record(ago=timedelta(minutes=5))
    await store.save(with_audio, WAV)
    await store.save(without)
    assert await store.audio(with_audio.call_sid) == WAV
    assert await store.audio(without.call_sid) is None
    assert [s.has_audio for s in await store.list()] == [True, False]
    if stores.keeps_files:  # an operator finds the WAV under IVR_RECORDS_DIR, named by CallSid
        assert (stores.directory / f"{with_audio.call_sid}.wav").read_bytes() == WAV
        assert not (stores.directory / f"{without.call_sid}.wav").exists()


async def test_retention_removes_calls_older_than_the_limit_with_their_recordings(
    stores: Stores, store: RecordStore
) -> None:
    old = record(ago=timedelta(days=31), audio=True)
    new = record(ago=timedelta(days=29), audio=True)
    await store.save(old, WAV)
    await store.save(new, WAV)
    cutoff = NOW - timedelta(days=30)

    assert await store.purge(cutoff) == 1

    assert await store.get(old.call_sid) is None
    assert await store.audio(old.call_sid) is None
    assert await store.get(new.call_sid) == new
    assert await store.audio(new.call_sid) == WAV
    assert [s.call_sid for s in await store.list()] == [new.call_sid]
    if stores.keeps_files:
        assert not (stores.directory / f"{old.call_sid}.wav").exists()
    assert await store.purge(cutoff) == 0


async def test_a_call_id_that_is_not_a_call_sid_is_refused(
    stores: Stores, store: RecordStore
) -> None:
    for bad in ("../../etc/passwd", "CA 1", "", "CA" + "x" * 80):
        with pytest.raises(RecordError, match="not a call id"):
            await store.save(record(bad), WAV)
        if stores.keeps_files:  # the in-memory double looks nothing up by name
            with pytest.raises(RecordError, match="not a call id"):
                await store.get(bad)
            with pytest.raises(RecordError, match="not a call id"):
                await store.audio(bad)
    assert await store.list() == []


# -- replicas: the database stores -------------------------------------------------------------


async def test_two_replicas_on_one_database_share_one_history(shared: Stores) -> None:
    east, west = shared.new(), shared.new()
    from_east = record(audio=True, ago=timedelta(minutes=2))
    from_west = record(outcome="transferred")
    await east.save(from_east, WAV)
    await west.save(from_west)

    for replica in (east, west):
        assert [s.call_sid for s in await replica.list()] == [
            from_west.call_sid,
            from_east.call_sid,
        ]
    assert await west.get(from_east.call_sid) == from_east
    assert await west.audio(from_east.call_sid) == WAV

    assert await west.purge(NOW - timedelta(minutes=1)) == 1  # one retention pass for both
    assert await east.get(from_east.call_sid) is None
    assert await east.audio(from_east.call_sid) is None


async def test_retention_clears_a_backlog_larger_than_one_batch(
    shared: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "PURGE_BATCH", 2)  # a retention pass deletes in short batches
    store = shared.new()
    old = [record(ago=timedelta(days=40 + n), audio=True) for n in range(5)]
    for kept in old:
        await store.save(kept, WAV)
    await store.save(recent := record())
    assert await store.purge(NOW - timedelta(days=30)) == 5
    assert [s.call_sid for s in await store.list()] == [recent.call_sid]
    assert list(shared.directory.iterdir()) == []  # and every recording with them


async def test_replicas_starting_at_once_both_make_the_table_and_write(shared: Stores) -> None:
    replicas = [shared.new() for _ in range(4)]
    kept = [record(ago=timedelta(seconds=n)) for n in range(4)]
    await asyncio.gather(*(r.save(k) for r, k in zip(replicas, kept, strict=True)))
    assert [s.call_sid for s in await replicas[0].list()] == [k.call_sid for k in kept]


# -- the database store: settings and failures -------------------------------------------------


async def test_a_database_that_cannot_be_reached_names_the_setting(tmp_path: Path) -> None:
    store = SqlRecordStore.from_url("postgresql://ivr:hunter2hunter2@127.0.0.1:1/ivr", tmp_path)
    try:
        with pytest.raises(RecordError) as info:
            await store.save(record())
        message = str(info.value)
        assert "IVR_RECORDS_DB" in message and "cannot be reached" in message
        assert "127.0.0.1:1" in message and "hunter2" not in message
        with pytest.raises(RecordError, match="IVR_RECORDS_DB"):
            await store.list()
    finally:
        await store.close()

    nowhere = SqlRecordStore.from_url(f"sqlite:///{tmp_path / 'missing' / 'records.db'}", tmp_path)
    try:
        with pytest.raises(RecordError, match=r"IVR_RECORDS_DB.*cannot be reached"):
            await nowhere.get(sid())
    finally:
        await nowhere.close()


async def test_the_settings_choose_the_store(tmp_path: Path) -> None:
    directory = tmp_path / "call-records"
    db = tmp_path / "records.db"
    assert open_record_store(Settings(records="off", records_db=f"sqlite:///{db}")) is None
    assert isinstance(open_record_store(Settings(records_dir=directory)), FileRecordStore)

    store = open_record_store(
        Settings(records="audio", records_dir=directory, records_db=f"sqlite:///{db}")
    )
    assert isinstance(store, SqlRecordStore)
    try:
        kept = record(audio=True)
        await store.save(kept, WAV)
        assert db.exists()  # the metadata in the database, the recording in the directory
        assert (directory / f"{kept.call_sid}.wav").read_bytes() == WAV
        assert not (directory / f"{kept.call_sid}.json").exists()
    finally:
        await store.close()


async def test_on_postgresql_the_record_can_be_queried_as_jsonb(tmp_path: Path) -> None:
    async with opened("postgresql", tmp_path) as stores:
        store = stores.new()
        assert isinstance(store, SqlRecordStore)
        kept = record(outcome="failed")
        await store.save(kept)
        async with store.engine.connect() as db:
            query = "SELECT record -> 'errors' ->> 0 FROM ivr_call_records WHERE call_sid = :s"
            first_error = (await db.execute(text(query), {"s": kept.call_sid})).scalar_one()
        assert first_error == "the LLM timed out"


async def test_only_the_databases_we_support_are_accepted() -> None:
    with pytest.raises(RecordError, match="IVR_RECORDS_DB 'mysql://root:\\*\\*\\*@db/records'"):
        records_engine("mysql://root:pw@db/records")
    engine = records_engine("postgres://ivr:secret@db:5432/records")
    assert engine.url.drivername == "postgresql+asyncpg"
    await engine.dispose()
