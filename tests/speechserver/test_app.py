"""Server start-up rules: loopback-only without keys, keys from flags and env, CLI wiring."""

from __future__ import annotations

import argparse

import aiohttp
import pytest

from ivr_bridge.speechserver.app import (
    RunningSpeechServer,
    SpeechServerConfig,
    SpeechServerConfigError,
    add_arguments,
    run_from_args,
    start_speech_server,
)
from ivr_bridge.speechserver.config import check_bind


async def test_non_loopback_without_keys_is_refused() -> None:
    with pytest.raises(SpeechServerConfigError, match="api-key"):
        await start_speech_server(SpeechServerConfig(), host="0.0.0.0")


def test_bind_rules() -> None:
    check_bind(SpeechServerConfig(), "127.0.0.1")
    check_bind(SpeechServerConfig(), "::1")
    check_bind(SpeechServerConfig(api_keys=["k"]), "0.0.0.0")
    with pytest.raises(SpeechServerConfigError):
        check_bind(SpeechServerConfig(), "192.168.1.10")


def test_keys_and_knobs_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_SPEECH_API_KEYS", "alpha, beta")
    monkeypatch.setenv("IVR_SPEECH_REALTIME_FACTOR", "0.5")
    config = SpeechServerConfig()
    assert config.api_keys == ["alpha", "beta"]
    assert config.realtime_factor == 0.5
    assert config.accepts_key("beta") and not config.accepts_key("gamma")
    assert "alpha" not in repr(config)
    assert SpeechServerConfig(api_keys=[]).accepts_key("anything")
    assert not SpeechServerConfig(api_keys=[]).accepts_key("")


def test_cli_refuses_public_host_without_keys(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run_from_args(parser.parse_args(["--host", "0.0.0.0", "--port", "0"])) == 2
    assert "no API keys" in capsys.readouterr().out


def test_runtime_assignment_is_validated() -> None:
    config = SpeechServerConfig()
    config.realtime_factor = 1.0
    with pytest.raises(ValueError):
        config.wav_header = "sometimes"  # type: ignore[assignment]


async def test_healthz_answers_probes_without_a_key(speech_server: RunningSpeechServer) -> None:
    """Orchestrators probe without credentials; the speech routes still want a key."""
    async with aiohttp.ClientSession() as http:
        async with http.get(speech_server.base_url + "/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"
        async with http.get(speech_server.base_url + "/v1/ai/voice/list") as resp:
            assert resp.status == 401
