"""The campaign JSON API on a real bridge: token, create, upload, start, status, export."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import aiohttp

from ivr_bridge.campaign.store import CampaignStore

TOKEN = "control-token-0123456789abcdef"
CSV = (
    "phone,name,appointment,timezone\n"
    "+13125550100,Ana Diaz,2030-12-09 14:30,America/Chicago\n"
    "3125550101,Bo Lee,2030-12-09 14:30,America/Chicago\n"
)


async def test_the_campaign_api(make_bridge: Any, tmp_path: Path) -> None:
    store = await CampaignStore.open(f"sqlite:///{tmp_path / 'c.db'}", now=time.time())
    bridge = await make_bridge(campaigns=store, control_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = bridge.base_url
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/campaigns", json={"id": "flu"}) as r:
                assert r.status == 401
            new = {"id": "flu", "caller_id": "+15005550006", "plan": {"leads": "48h"}}
            async with http.post(f"{base}/campaigns", json=new, headers=auth) as r:
                assert r.status == 201
            async with http.post(f"{base}/campaigns", json=new, headers=auth) as r:
                assert r.status == 409
            bad = {"id": "x", "caller_id": "+15005550006", "plan": {"days": "weekdays"}}
            async with http.post(f"{base}/campaigns", json=bad, headers=auth) as r:
                assert r.status == 400 and "day names" in (await r.json())["error"]
            async with http.post(f"{base}/campaigns/flu/contacts", data=CSV, headers=auth) as r:
                body = await r.json()
            assert body["imported"] == 1
            assert body["problems"] == [
                "contacts.csv:3: phone '3125550101' has no country code: write it in E.164, "
                "e.g. +14155550100"
            ]
            async with http.post(f"{base}/campaigns/flu/start", headers=auth) as r:
                assert r.status == 200
            async with http.get(f"{base}/campaigns/flu", headers=auth) as r:
                status = await r.json()
            assert (status["status"], status["contacts"]) == ("running", 1)
            async with http.get(f"{base}/campaigns/flu/export", headers=auth) as r:
                rows = list(csv.DictReader(io.StringIO(await r.text())))
            assert [row["phone"] for row in rows] == ["+13125550100"]
            async with http.get(f"{base}/campaigns/nope", headers=auth) as r:
                assert r.status == 404
    finally:
        await store.close()


async def test_the_campaign_api_is_off_without_a_token(make_bridge: Any, tmp_path: Path) -> None:
    store = await CampaignStore.open(f"sqlite:///{tmp_path / 'c.db'}", now=time.time())
    bridge = await make_bridge(campaigns=store)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{bridge.base_url}/campaigns/x") as r:
            assert r.status == 404
            assert "IVR_CONTROL_TOKEN" in (await r.json())["error"]
    finally:
        await store.close()
