"""One way to open the databases the bridge keeps things in (campaigns, call records).

Both stores take the same two URLs (``sqlite:///file.db`` for one replica,
``postgresql://host:5432/db`` for several) and need the same care: the async drivers named for
SQLAlchemy, a connection that fails fast when PostgreSQL is away, and on SQLite a write that
waits behind another process's instead of failing at once (WAL, a busy timeout).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 10.0
"""How long opening a PostgreSQL connection may take before the database counts as down."""
SQLITE_BUSY_MS = 15_000
"""How long a SQLite write waits for another connection's (or process's) write to finish."""


def async_engine(
    url: str, *, search_path: str | None = None, immediate_writes: bool = False
) -> AsyncEngine:
    """``sqlite:///x.db`` or ``postgresql://host/db`` (``postgres://`` too) → an async engine,
    no connection yet. ``search_path``: a PostgreSQL schema to work in; ``immediate_writes``:
    SQLite transactions take the write lock when they begin (``BEGIN IMMEDIATE``), for stores
    whose transactions read and then write. Raises ValueError for another kind of URL, or an
    unparsable one; the caller names its setting."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
        connect_args["timeout"] = CONNECT_TIMEOUT_S
        if search_path:
            connect_args["server_settings"] = {"search_path": search_path}
    else:
        raise ValueError(f"{backend} is not supported")
    engine = create_async_engine(
        parsed, pool_pre_ping=backend != "sqlite", connect_args=connect_args
    )
    if backend == "sqlite":
        _wait_for_other_writers(engine, immediate_writes)
    return engine


def redacted(url: str) -> str:
    """The URL as a log line or an error may show it: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _wait_for_other_writers(engine: AsyncEngine, immediate: bool) -> None:
    """SQLite: a write waits its turn behind another's instead of failing at once, and readers
    never hold up a writer (WAL).

    Switching a new file to WAL does not wait: when several connections open it at once, all
    but one are told "database is locked". The mode is the file's, so the one that won has set
    it for everyone, and a connection that lost goes on.

    ``immediate``: with the driver's deferred transactions, two that read and then write each
    hold a read lock and want the other's write; SQLite answers that deadlock with "database is
    locked" at once, without waiting (seen under load in the campaign store: three callees
    heard an apology instead of their reminder). ``BEGIN IMMEDIATE`` queues them instead."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        if immediate:
            dbapi_connection.isolation_level = None  # we say BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                log.debug("another connection is setting the journal mode", error=str(exc))
        finally:
            cursor.close()

    if immediate:

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
