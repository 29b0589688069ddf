"""The embedded SQLite store under concurrent read-then-write transactions (a status callback and
a first-audio note on the same attempt, say): every one commits, none is told "locked"."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import text

from ivr_bridge.campaign.store import CampaignStore


async def test_transactions_that_read_then_write_wait_their_turn(tmp_path: Path) -> None:
    store = await CampaignStore.open(f"sqlite:///{tmp_path / 'c.db'}", now=time.time())
    try:
        async with store.engine.begin() as db:
            await db.execute(text("CREATE TABLE counter (n INTEGER)"))
            await db.execute(text("INSERT INTO counter VALUES (0)"))

        async def bump() -> None:
            async with store.engine.begin() as db:
                n = (await db.execute(text("SELECT n FROM counter"))).scalar_one()
                await asyncio.sleep(0.01)  # the other transactions run meanwhile
                await db.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

        await asyncio.gather(*(bump() for _ in range(12)))
        async with store.engine.begin() as db:
            assert (await db.execute(text("SELECT n FROM counter"))).scalar_one() == 12
    finally:
        await store.close()
