"""Server faults reach clients as LMNT error envelopes, never as bare closes or plain text."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import lmnt
import pytest
import websockets
from aiohttp.test_utils import TestServer
from lmnt import AsyncLmnt
from speech_test_helpers import TEST_KEY, read_all

from ivr_bridge.speechserver.app import SYNTH_KEY, SpeechServerConfig, build_app
from ivr_bridge.speechserver.synth import EspeakSynthesizer, Synthesis, SynthesisError


class _FailingSynthesizer(EspeakSynthesizer):
    """Raises ``error`` instead of speaking: a library failure or a bug inside the pipeline."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def synthesize(
        self,
        text: str,
        voice: str,
        sample_rate: int,
        speed: float = 1.0,
        language: str | None = None,
    ) -> Synthesis:
        raise self.error


@pytest.fixture
async def failing_server(request: pytest.FixtureRequest) -> AsyncIterator[TestServer]:
    """A server whose synthesizer raises the parametrised exception."""
    synth = _FailingSynthesizer(request.param)
    app = build_app(SpeechServerConfig())
    app[SYNTH_KEY] = synth
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()
        synth.shutdown()


@pytest.mark.parametrize("failing_server", [ValueError("bug in the pipeline")], indirect=True)
async def test_pipeline_crash_sends_internal_error_before_closing(
    failing_server: TestServer,
) -> None:
    url = str(failing_server.make_url("/v1/ai/speech/stream")).replace("http://", "ws://")
    async with websockets.connect(url) as ws:
        init = {"X-API-Key": TEST_KEY, "lmnt-version": "1.2", "voice": "leah"}
        await ws.send(json.dumps(init))
        await ws.send(json.dumps({"type": "text", "text": "Hello there."}))
        await ws.send(json.dumps({"type": "flush", "nonce": 1}))
        frames = await read_all(ws)
    messages = [json.loads(f) for f in frames if isinstance(f, str)]
    assert [m["type"] for m in messages] == ["ready", "error"]
    assert messages[-1]["error"]["type"] == "internal_server_error"
    assert ws.close_code == 1011


@pytest.mark.parametrize("failing_server", [SynthesisError("espeak died")], indirect=True)
@pytest.mark.parametrize("fmt", ["wav", "ulaw", "pcm_s16le"])
async def test_rest_synthesis_failure_is_an_internal_error_envelope(
    failing_server: TestServer, fmt: str
) -> None:
    base_url = str(failing_server.make_url("")).rstrip("/")
    async with AsyncLmnt(api_key=TEST_KEY, base_url=base_url, max_retries=0) as client:
        with pytest.raises(lmnt.InternalServerError) as caught:
            await client.speech.generate(text="Hello there.", voice="leah", format=fmt)
        assert caught.value.type == "internal_server_error"
        with pytest.raises(lmnt.InternalServerError) as detailed:
            await client.speech.generate_detailed(text="Hello there.", voice="leah")
        assert detailed.value.type == "internal_server_error"
