"""The operators' pages over HTTP: who gets in, what they see, and what stays closed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr_bridge.records.store import FileRecordStore, RecordStore
from ivr_bridge.records.testing import MemoryRecordStore
from ivr_bridge.server.operator_pages import add_operator_routes
from tests.unit.record_fakes import STARTED, stereo_wav, support_call

TOKEN = "operator-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SID = "CA0000000000000000000000000000beef"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def filled_store() -> MemoryRecordStore:
    store = MemoryRecordStore()
    await store.save(support_call(SID), stereo_wav())
    for n in range(3):
        await store.save(
            support_call(
                f"CAold{n}",
                started_at=STARTED - timedelta(hours=n + 1),
                outcome="failed" if n == 1 else "completed",
                flow="billing.yaml" if n == 2 else "support.yaml",
                audio=False,
            )
        )
    return store


async def client_for(store: RecordStore | None, token: str | None) -> TestClient:
    app = web.Application()
    add_operator_routes(app, lambda: store, token)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    c = await client_for(await filled_store(), TOKEN)
    yield c
    await c.close()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Bearer {TOKEN}x"},
        basic("ops", "wrong"),
        {"Authorization": "Basic !!not base64"},
        {"Authorization": f"Token {TOKEN}"},
    ],
    ids=["missing", "wrong bearer", "longer bearer", "wrong basic", "broken basic", "other scheme"],
)
@pytest.mark.parametrize(
    "path", ["/calls", f"/calls/{SID}", f"/calls/{SID}.json", f"/calls/{SID}/audio.wav"]
)
async def test_a_missing_or_wrong_token_gets_401_with_a_basic_challenge(
    client: TestClient, headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="ivr-bridge calls"'
    assert response.headers["Cache-Control"] == "no-store"
    assert SID not in await response.text()


async def test_basic_auth_with_the_token_as_password_opens_the_pages(client: TestClient) -> None:
    for user in ("ops", ""):
        response = await client.get(f"/calls/{SID}", headers=basic(user, TOKEN))
        assert response.status == 200, user


async def test_the_list_is_newest_first_and_filters_by_outcome_flow_and_time(
    client: TestClient,
) -> None:
    async def listed(query: str) -> list[str]:
        response = await client.get(f"/calls{query}", headers=BEARER)
        assert response.status == 200
        html = await response.text()
        return [part.split('"')[0] for part in html.split('<a href="/calls/')[1:]]

    assert await listed("") == [SID, "CAold0", "CAold1", "CAold2"]
    assert await listed("?outcome=failed") == ["CAold1"]
    assert await listed("?flow=billing.yaml") == ["CAold2"]
    assert await listed("?before=2026-12-04T16:30:00%2B00:00") == ["CAold1", "CAold2"]
    assert await listed("?before=2026-12-04T16:30:00") == ["CAold1", "CAold2"]  # naive: UTC
    response = await client.get("/calls?outcome=nonsense", headers=BEARER)
    assert response.status == 400 and "completed" in await response.text()
    assert (await client.get("/calls?before=yesterday", headers=BEARER)).status == 400


async def test_a_call_page_has_its_timeline_player_and_a_tight_csp(client: TestClient) -> None:
    response = await client.get(f"/calls/{SID}", headers=BEARER)
    assert response.status == 200 and response.content_type == "text/html"
    html = await response.text()
    assert '<svg class="timeline"' in html
    assert (
        f'<audio class="recording" controls preload="metadata" src="/calls/{SID}/audio.wav">'
        in (html)
    )
    csp = response.headers["Content-Security-Policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in html and f'<style nonce="{nonce}">' in html
    assert "default-src 'none'" in csp and "media-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    again = await client.get(f"/calls/{SID}", headers=BEARER)
    assert again.headers["Content-Security-Policy"] != csp  # a fresh nonce per page


async def test_a_call_without_audio_has_no_player_and_its_wav_is_404(client: TestClient) -> None:
    html = await (await client.get("/calls/CAold0", headers=BEARER)).text()
    assert "<audio" not in html and '<svg class="timeline"' in html
    assert (await client.get("/calls/CAold0/audio.wav", headers=BEARER)).status == 404


async def test_the_record_and_its_recording_are_served(client: TestClient) -> None:
    response = await client.get(f"/calls/{SID}.json", headers=BEARER)
    assert response.status == 200 and response.content_type == "application/json"
    record = await response.json()
    assert record["call_sid"] == SID and record["barge_ins"][0]["by"] == "speech"
    assert record["utterances"][0]["unheard"] == "for support press two."
    wav = stereo_wav()
    response = await client.get(f"/calls/{SID}/audio.wav", headers=BEARER)
    assert response.status == 200 and response.content_type == "audio/wav"
    assert await response.read() == wav
    response = await client.get(
        f"/calls/{SID}/audio.wav", headers={**BEARER, "Range": "bytes=44-99"}
    )
    assert response.status == 206 and await response.read() == wav[44:100]
    assert response.headers["Content-Range"] == f"bytes 44-99/{len(wav)}"


@pytest.mark.parametrize(
    "path",
    [
        "/calls/CAnosuchcall",
        "/calls/CAnosuchcall.json",
        "/calls/CAnosuchcall/audio.wav",
        "/calls/not%20a%20sid",
        "/calls/..%2F..%2Fetc%2Fpasswd.json",
        "/calls/%2E%2E",
        "/calls/" + "A" * 65,
    ],
)
async def test_an_unknown_or_malformed_call_id_is_404_not_500(
    client: TestClient, path: str
) -> None:
    response = await client.get(path, headers=BEARER)
    assert response.status == 404


async def test_a_directory_store_refuses_paths_outside_it_as_404(tmp_path: Path) -> None:
    store = FileRecordStore(tmp_path / "records")
    await store.save(support_call(SID), stereo_wav())
    (tmp_path / "secret.json").write_text(support_call("secret").model_dump_json())
    client = await client_for(store, TOKEN)
    try:
        assert (await client.get(f"/calls/{SID}", headers=BEARER)).status == 200
        assert (await client.get("/calls/..%2Fsecret.json", headers=BEARER)).status == 404
        assert (await client.get("/calls/..%2Fsecret", headers=BEARER)).status == 404
    finally:
        await client.close()


async def test_without_a_token_the_pages_are_off_even_with_a_header() -> None:
    client = await client_for(await filled_store(), None)
    try:
        for path in ("/calls", f"/calls/{SID}", f"/calls/{SID}.json"):
            response = await client.get(path, headers=BEARER)
            assert response.status == 404
            assert "IVR_OPERATOR_TOKEN" in await response.text()
    finally:
        await client.close()


async def test_with_records_off_the_token_is_still_checked_first_then_404() -> None:
    client = await client_for(None, TOKEN)
    try:
        assert (await client.get("/calls")).status == 401
        response = await client.get("/calls", headers=BEARER)
        assert response.status == 404 and "IVR_RECORDS" in await response.text()
        assert (await client.get(f"/calls/{SID}", headers=BEARER)).status == 404
    finally:
        await client.close()


async def test_the_pages_are_read_only(client: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE"):
        response = await client.request(method, f"/calls/{SID}", headers=BEARER)
        assert response.status == 405
