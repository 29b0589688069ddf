"""Startup refuses a voice the speech server does not have (IVR_VOICE or a flow's voice:),
naming the setting and the voices there are; a speech server whose list cannot be fetched does
not keep the bridge from starting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from ivr_bridge.config import ConfigError, load_settings
from ivr_bridge.dialog.flow import load_flow
from ivr_bridge.server.app import start_bridge
from ivr_bridge.server.voice_check import check_voices, voice_list_url

FLOWS = Path(__file__).resolve().parents[2] / "flows"


@pytest.fixture(autouse=True)
def _no_speech_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LMNT_API_KEY", "LMNT_BASE_URL", "IVR_VOICE", "IVR_FLOWS_DIR", "IVR_FLOW"):
        monkeypatch.delenv(name, raising=False)


async def test_an_unknown_ivr_voice_stops_startup_before_the_embedded_speech_server() -> None:
    settings = load_settings(voice="lea", flows_dir=FLOWS, port=0)
    with pytest.raises(ConfigError) as info:
        await start_bridge(settings)  # fails before anything is started or bound
    message = str(info.value)
    assert "voices that the embedded speech server does not have" in message
    assert "IVR_VOICE: unknown voice 'lea'; did you mean 'leah'?" in message
    assert "heart, leah" in message


async def test_a_flows_unknown_voice_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "welcome.yaml").write_text("name: w\nvoice: brandn\nsteps:\n  - hangup: true\n")
    settings = load_settings(flows_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"welcome\.yaml: voice: unknown voice 'brandn'; did"):
        await check_voices(settings, {"welcome.yaml": load_flow(tmp_path / "welcome.yaml")})


@pytest.fixture
async def remote_speech() -> AsyncIterator[str]:
    async def voices(request: web.Request) -> web.Response:
        assert request.headers.get("X-API-Key") == "k"
        return web.json_response([{"id": "aurora"}, {"id": "leah"}])

    app = web.Application()
    app.router.add_get("/v1/ai/voice/list", voices)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_a_remote_speech_servers_list_is_asked(remote_speech: str) -> None:
    good = load_settings(lmnt_base_url=remote_speech, lmnt_api_key="k", voice="aurora")
    await check_voices(good, {})
    bad = load_settings(lmnt_base_url=remote_speech, lmnt_api_key="k", voice="heart")
    with pytest.raises(ConfigError, match=r"IVR_VOICE: unknown voice 'heart'; \(the speech "):
        await check_voices(bad, {})


async def test_a_speech_server_that_cannot_be_reached_does_not_block_startup() -> None:
    settings = load_settings(lmnt_base_url="http://127.0.0.1:9", lmnt_api_key="k", voice="any")
    await check_voices(settings, {})  # a warning, no error


def test_the_voice_list_url_follows_the_base_url() -> None:
    assert voice_list_url("wss://api.lmnt.com/") == "https://api.lmnt.com/v1/ai/voice/list"
    assert voice_list_url("http://127.0.0.1:9000") == "http://127.0.0.1:9000/v1/ai/voice/list"
