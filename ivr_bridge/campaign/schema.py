"""The campaign database: one schema for SQLite and PostgreSQL, with numbered migrations.

The database is the source of truth for outbound work: a dispatcher keeps nothing in memory
that a restart could lose, and several dispatchers (one per replica) share the work through it.
Instants are stored as UTC epoch seconds (floats): the same on both engines, no driver's idea of
time zones in between, and ordering is plain arithmetic.

Migrations are a list; version N is the N-th entry. ``migrate`` applies the missing ones in one
transaction each and records the version, so a replica starting against an older database
brings it forward, and one starting against a newer database refuses to run.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ivr_bridge.errors import CampaignError

metadata = MetaData()

schema_version = Table(
    "ivr_schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

campaigns = Table(
    "ivr_campaigns",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("status", String(16), nullable=False),  # draft running paused done
    Column("caller_id", String(32), nullable=False),
    Column("app", String(64), nullable=False),
    Column("settings", Text, nullable=False),  # JSON: schedule, hours, retries, pace
    Column("created_at", Float, nullable=False),
)

contacts = Table(
    "ivr_contacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(64), ForeignKey("ivr_campaigns.id"), nullable=False),
    Column("line", Integer, nullable=False),
    Column("phone", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("appointment_at", Float, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("language", String(35), nullable=False),
    Column("fields", Text, nullable=False),  # JSON
    Column("outcome", String(16)),  # the contact's final word, once there is one
    UniqueConstraint("campaign_id", "phone", name="ivr_contacts_one_phone_per_campaign"),
)

attempts = Table(
    "ivr_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", String(64), ForeignKey("ivr_campaigns.id"), nullable=False),
    Column("contact_id", Integer, ForeignKey("ivr_contacts.id"), nullable=False),
    Column("round", Integer, nullable=False),
    Column("number", Integer, nullable=False),  # 1, 2, 3 within the round
    Column("parent_id", Integer),  # the attempt whose outcome scheduled this one
    Column("state", String(16), nullable=False),  # scheduled dialing live done
    Column("scheduled_at", Float, nullable=False),
    Column("not_after", Float, nullable=False),  # the round's end: never dial later
    Column("claimed_by", String(64)),
    Column("claimed_at", Float),
    Column("dialed_at", Float),
    Column("call_sid", String(64), unique=True),
    Column("call_status", String(16)),
    Column("status_seq", Integer),  # highest status callback SequenceNumber applied
    Column("answered_by", String(32)),
    Column("amd_ms", Integer),
    Column("error_code", Integer),
    Column("decision", String(16)),  # what the callee chose, from the call itself
    Column("voicemail_left", Integer, nullable=False, default=0),
    Column("first_audio_ms", Integer),  # dial → first bot audio
    Column("duration_s", Integer),
    Column("ended_at", Float),
    Column("outcome", String(16)),
    UniqueConstraint("contact_id", "round", "number", name="ivr_attempts_once_per_slot"),
)
Index("ivr_attempts_due", attempts.c.state, attempts.c.scheduled_at)

opt_outs = Table(
    "ivr_opt_outs",
    metadata,
    Column("phone", String(16), primary_key=True),
    Column("at", Float, nullable=False),
    Column("source", Text, nullable=False),  # "call CA...", "operator", "import"
)

pace = Table(
    "ivr_pace",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("next_at", Float, nullable=False),  # the earliest instant the next call may go
)


def _v1(connection: Connection) -> None:
    metadata.create_all(
        connection, tables=[campaigns, contacts, attempts, opt_outs, pace], checkfirst=True
    )


MIGRATIONS: list[Callable[[Connection], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)


async def migrate(engine: AsyncEngine, *, now: float) -> int:
    """Bring the database to ``SCHEMA_VERSION``; returns the version it was at."""
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda sync: metadata.create_all(sync, tables=[schema_version], checkfirst=True)
        )
    async with engine.connect() as connection:
        found = (
            await connection.execute(
                select(schema_version.c.version).order_by(schema_version.c.version.desc()).limit(1)
            )
        ).scalar()
    current = int(found or 0)
    if current > SCHEMA_VERSION:
        raise CampaignError(
            f"the campaign database is at schema version {current}, newer than this "
            f"ivr-bridge ({SCHEMA_VERSION}): upgrade ivr-bridge on this replica"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        async with engine.begin() as connection:
            await connection.run_sync(MIGRATIONS[version - 1])
            await connection.execute(
                schema_version.insert().values(version=version, applied_at=now)
            )
    return current
