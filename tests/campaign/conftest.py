"""Campaign stores on both engines: a SQLite file, and PostgreSQL in a schema of its own.

PostgreSQL is the machine's (``IVR_TEST_PG_URL``, default postgresql://postgres@127.0.0.1:5432/test);
every test gets a fresh schema, dropped afterwards, so runs side by side never meet. A server
that is down fails the test with the command to start it, rather than skipping: the
several-replica guarantees are only tested there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ivr_bridge.campaign.schema import migrate
from ivr_bridge.campaign.store import CampaignStore

PG_URL = os.environ.get("IVR_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
NOW = 1_764_590_400.0  # 2025-12-01 12:00 UTC: tests pass explicit instants

StoreFactory = Callable[[], Awaitable[CampaignStore]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Opens stores on one database (each its own engine, as separate replicas would)."""
    engines: list[AsyncEngine] = []
    schema = f"ivr_test_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'campaigns.db'}"

        def make() -> AsyncEngine:
            return create_async_engine(url)
    else:
        admin = create_async_engine(PG_URL)
        try:
            async with admin.begin() as db:
                await db.execute(text(f'CREATE SCHEMA "{schema}"'))
        except OSError as exc:
            await admin.dispose()
            pytest.fail(
                f"PostgreSQL at {PG_URL} is down ({exc}): start it with "
                "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
            )
        await admin.dispose()

        def make() -> AsyncEngine:
            return create_async_engine(
                PG_URL, connect_args={"server_settings": {"search_path": schema}}
            )

    async def factory() -> CampaignStore:
        engine = make()
        engines.append(engine)
        await migrate(engine, now=NOW)
        return CampaignStore(engine)

    yield factory
    for engine in engines:
        await engine.dispose()
    if request.param == "postgresql":
        admin = create_async_engine(PG_URL)
        async with admin.begin() as db:
            await db.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
async def store(store_factory: StoreFactory) -> CampaignStore:
    return await store_factory()
