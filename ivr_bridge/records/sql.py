"""Call records in a database (``IVR_RECORDS_DB``), so several replicas share one history.

Every replica of a bridge behind a load balancer writes the records of the calls it served, and
an operator asking for "the last failed calls" wants all of them, not the ones the replica
behind this request happened to take. So the metadata lives in one table on PostgreSQL (or
SQLite, for a single host that wants SQL): the columns a listing filters and sorts on, and the
whole record as JSON beside them (JSONB on PostgreSQL, so it can be queried there too). The
recordings stay files in ``IVR_RECORDS_DIR`` (a volume every replica mounts): a database is the
wrong place for megabytes of audio, and the WAVs are written exactly as the directory store
writes them.

The table is created on first use, under an advisory lock on PostgreSQL, so two replicas
starting together do not trip over each other. Every write is one statement (an upsert, a
delete), which keeps SQLite's one writer at a time short and safe. A database that cannot be
reached raises a :class:`RecordError` that names ``IVR_RECORDS_DB`` (its password hidden).
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.types import TypeDecorator, TypeEngine

from ivr_bridge.db import async_engine, redacted
from ivr_bridge.errors import RecordError
from ivr_bridge.records.model import CallRecord, RecordSummary
from ivr_bridge.records.store import check_sid, write_atomically

log = structlog.get_logger(__name__)

PURGE_BATCH = 500
"""Rows one retention statement deletes: short transactions, however much has piled up."""
_SCHEMA_LOCK = 0x1B_C0_2D_16
"""The PostgreSQL advisory lock taken while creating the table (any constant of our own)."""


class UtcTime(TypeDecorator[datetime]):
    """An aware UTC instant on both engines: ``timestamptz`` on PostgreSQL; on SQLite, where
    there are no time zones, fixed-width UTC text (so text order is time order)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RecordDocument(TypeDecorator[dict[str, Any]]):
    """The whole record as JSON: JSONB on PostgreSQL, JSON text on SQLite."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value  # JSONB serialises it
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        if isinstance(value, str | bytes):
            loaded: dict[str, Any] = json.loads(value)
            return loaded
        return value  # type: ignore[no-any-return]  # JSONB: already decoded


metadata = MetaData()

call_records = Table(
    "ivr_call_records",
    metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("started_at", UtcTime(), nullable=False),
    Column("flow", Text),  # the flow's name, else the app's (what a listing shows and filters)
    Column("outcome", String(16), nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("turns", Integer, nullable=False),
    Column("barge_ins", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("has_audio", Boolean, nullable=False),
    Column("record", RecordDocument(), nullable=False),
)
started_at_index = Index("ivr_call_records_started_at", call_records.c.started_at)

_SUMMARY = (
    call_records.c.call_sid,
    call_records.c.flow,
    call_records.c.started_at,
    call_records.c.duration_ms,
    call_records.c.outcome,
    call_records.c.turns,
    call_records.c.barge_ins,
    call_records.c.errors,
    call_records.c.has_audio,
)


def as_utc(moment: datetime) -> datetime:
    """An instant in UTC; a naive one is taken to be UTC already (as the records' times are)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def records_engine(url: str, *, search_path: str | None = None) -> AsyncEngine:
    """``postgresql://host/db`` or ``sqlite:///records.db`` → an async engine (no connection
    yet). ``search_path``: a PostgreSQL schema to keep the table in (the tests' own)."""
    try:
        return async_engine(url, search_path=search_path)
    except Exception as exc:  # an unparsable URL or a missing driver, named as the setting
        raise RecordError(
            f"IVR_RECORDS_DB {redacted(url)!r}: {exc} "
            "(use postgresql://host:5432/db or sqlite:///records.db)"
        ) from None


class SqlRecordStore:
    """Records in the ``ivr_call_records`` table; recordings as ``<CallSid>.wav`` in
    ``directory`` (shared by every replica)."""

    def __init__(self, engine: AsyncEngine, directory: Path) -> None:
        self.engine = engine
        self.directory = directory
        url = engine.url
        self.where = url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, directory: Path) -> SqlRecordStore:
        return cls(records_engine(url), directory)

    # -- the contract ------------------------------------------------------------------------

    async def save(self, record: CallRecord, wav: bytes | None = None) -> None:
        check_sid(record.call_sid)
        if wav is not None:  # the recording first: a record never points at a missing file
            await asyncio.to_thread(self._write_recording, record.call_sid, wav)
        row = {
            "call_sid": record.call_sid,
            "started_at": record.started_at,
            "flow": record.flow or record.app or None,
            "outcome": record.outcome,
            "duration_ms": record.duration_ms,
            "turns": len(record.turns),
            "barge_ins": len(record.barge_ins),
            "errors": len(record.errors),
            "has_audio": record.audio is not None,
            "record": record.model_dump(mode="json"),
        }
        async with self._database("save the record of " + record.call_sid):
            await self._ready()
            async with self.engine.begin() as db:
                await db.execute(self._upsert(row))

    async def get(self, call_sid: str) -> CallRecord | None:
        check_sid(call_sid)
        query = select(call_records.c.record).where(call_records.c.call_sid == call_sid)
        async with self._database("read the record of " + call_sid):
            await self._ready()
            async with self.engine.connect() as db:
                document = (await db.execute(query)).scalar_one_or_none()
        if document is None:
            return None
        try:
            return CallRecord.model_validate(document)
        except ValidationError as exc:
            raise RecordError(f"{self.where}: {call_sid} is not a call record ({exc})") from exc

    async def list(
        self,
        *,
        limit: int = 50,
        before: datetime | None = None,
        outcome: str | None = None,
        flow: str | None = None,
    ) -> builtins.list[RecordSummary]:
        if limit <= 0:
            return []
        query = (
            select(*_SUMMARY)
            .order_by(call_records.c.started_at.desc(), call_records.c.call_sid.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(call_records.c.started_at < as_utc(before))
        if outcome is not None:
            query = query.where(call_records.c.outcome == outcome)
        if flow is not None:
            query = query.where(call_records.c.flow == flow)
        async with self._database("list the records"):
            await self._ready()
            async with self.engine.connect() as db:
                rows = (await db.execute(query)).mappings().all()
        found: builtins.list[RecordSummary] = []
        for row in rows:
            try:
                found.append(RecordSummary.model_validate(dict(row)))
            except ValidationError as exc:  # one bad row must not hide the others
                log.warning(
                    "skipped an unreadable call record", call_sid=row["call_sid"], error=str(exc)
                )
        return found

    async def audio(self, call_sid: str) -> bytes | None:
        path = self._recording(call_sid)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def purge(self, older_than: datetime) -> int:
        """Deletes in batches; the count is the records this call removed (another replica
        purging at the same moment removes the rest, and counts them itself)."""
        cutoff = as_utc(older_than)
        removed = 0
        while True:
            oldest = (
                select(call_records.c.call_sid)
                .where(call_records.c.started_at < cutoff)
                .limit(PURGE_BATCH)
            )
            statement = (
                delete(call_records)
                .where(call_records.c.call_sid.in_(oldest), call_records.c.started_at < cutoff)
                .returning(call_records.c.call_sid)
            )
            async with self._database("delete old records"):
                await self._ready()
                async with self.engine.begin() as db:
                    gone = (await db.execute(statement)).scalars().all()
            await asyncio.to_thread(self._remove_recordings, gone)
            removed += len(gone)
            if len(gone) < PURGE_BATCH:
                return removed

    async def close(self) -> None:
        await self.engine.dispose()

    # -- the database ------------------------------------------------------------------------

    async def _ready(self) -> None:
        """Creates the table and its index on first use (a no-op where they exist)."""
        if self._schema_ready:
            return
        async with self._schema_lock:
            if self._schema_ready:
                return
            async with self.engine.begin() as db:
                if db.dialect.name == "postgresql":  # CREATE ... IF NOT EXISTS races otherwise
                    await db.execute(text(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})"))
                await db.execute(CreateTable(call_records, if_not_exists=True))
                await db.execute(CreateIndex(started_at_index, if_not_exists=True))
            self._schema_ready = True

    def _upsert(self, row: dict[str, Any]) -> Any:
        """INSERT, or replace every column of the row with the same CallSid."""
        if self.engine.dialect.name == "postgresql":
            pg = postgresql.insert(call_records).values(**row)
            changed = {name: pg.excluded[name] for name in row if name != "call_sid"}
            return pg.on_conflict_do_update(index_elements=["call_sid"], set_=changed)
        lite = sqlite.insert(call_records).values(**row)
        changed = {name: lite.excluded[name] for name in row if name != "call_sid"}
        return lite.on_conflict_do_update(index_elements=["call_sid"], set_=changed)

    @asynccontextmanager
    async def _database(self, doing: str) -> AsyncIterator[None]:
        """The driver's failures as a RecordError that says which setting to look at."""
        try:
            yield
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            reason = f"{type(cause).__name__}: {cause}".strip().splitlines()[0]
            if isinstance(exc, OSError | TimeoutError | OperationalError | InterfaceError):
                what = "the records database cannot be reached"
            else:
                what = "the records database refused"
            raise RecordError(
                f"IVR_RECORDS_DB {self.where}: {what} (could not {doing}: {reason})"
            ) from exc

    # -- the recordings ----------------------------------------------------------------------

    def _recording(self, call_sid: str) -> Path:
        return self.directory / f"{check_sid(call_sid)}.wav"

    def _write_recording(self, call_sid: str, wav: bytes) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(self._recording(call_sid), wav)
        except OSError as exc:
            raise RecordError(
                f"IVR_RECORDS_DIR {self.directory}: cannot write the recording of "
                f"{call_sid} ({exc})"
            ) from exc

    def _remove_recordings(self, call_sids: Sequence[str]) -> None:
        for call_sid in call_sids:
            try:
                self._recording(call_sid).unlink(missing_ok=True)
            except (OSError, RecordError) as exc:  # the record is gone; say so, go on
                log.warning("could not remove a recording", call_sid=call_sid, error=str(exc))
