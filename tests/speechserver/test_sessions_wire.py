"""Wire-level session behaviour the SDK cannot exercise: 1.1 init, refusals, header placement."""

from __future__ import annotations

import json

import pytest
from speech_test_helpers import parse_wav_header, raw_session, read_all

from ivr_bridge.speechserver.app import RunningSpeechServer, SpeechServerConfig, start_speech_server


def json_frames(frames: list[str | bytes]) -> list[dict]:
    return [json.loads(f) for f in frames if isinstance(f, str)]


async def refused_with(server: RunningSpeechServer, **init: object) -> tuple[dict, int | None]:
    ws = await raw_session(server, **init)
    frames = await read_all(ws)
    assert len(frames) == 1, frames
    return json.loads(frames[0]), ws.close_code


@pytest.mark.parametrize("version", [None, "1.0", "2.0"])
async def test_unsupported_version_is_refused_naming_supported_ones(
    speech_server: RunningSpeechServer, version: str | None
) -> None:
    envelope, code = await refused_with(speech_server, **{"lmnt-version": version})
    assert envelope["type"] == "error"
    assert envelope["error"]["type"] == "invalid_request_error"
    assert "1.1" in envelope["error"]["message"] and "1.2" in envelope["error"]["message"]
    assert envelope["request_id"].startswith("req_")
    assert code not in (None, 1000)


@pytest.mark.parametrize(
    ("init", "error_type"),
    [
        ({"format": "mp3"}, "invalid_request_error"),
        ({"format": "webm"}, "invalid_request_error"),
        ({"sample_rate": 44100}, "invalid_request_error"),
        ({"voice": "nobody"}, "not_found_error"),
        ({"X-API-Key": ""}, "authentication_error"),
    ],
)
async def test_bad_init_gets_error_envelope_and_close(
    speech_server: RunningSpeechServer, init: dict, error_type: str
) -> None:
    envelope, code = await refused_with(speech_server, **init)
    assert envelope["error"]["type"] == error_type
    assert code not in (None, 1000)


async def test_configured_keys_refuse_others() -> None:
    server = await start_speech_server(SpeechServerConfig(api_keys=["right-key"]))
    try:
        envelope, _ = await refused_with(server, **{"X-API-Key": "wrong-key"})
        assert envelope["error"]["type"] == "authentication_error"
        assert "wrong-key" not in envelope["error"]["message"]
        ws = await raw_session(server, **{"X-API-Key": "right-key"})
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.close()
    finally:
        await server.stop()


@pytest.mark.parametrize(
    "bad", ['{"type": "shout", "text": "hi"}', "not json", '{"type": "text"}', b"\x00\x01"]
)
async def test_bad_message_mid_session_is_refused(
    speech_server: RunningSpeechServer, bad: str | bytes
) -> None:
    ws = await raw_session(speech_server)
    await ws.send(bad)
    frames = json_frames(await read_all(ws))
    assert [f["type"] for f in frames] == ["ready", "error"]
    assert frames[1]["error"]["type"] == "invalid_request_error"
    assert ws.close_code not in (None, 1000)


async def test_v11_with_type_text_before_ready_and_chunk_relative_timestamps(
    speech_server: RunningSpeechServer,
) -> None:
    ws = await raw_session(
        speech_server, type="init", format="pcm_s16le", sample_rate=8000, return_timestamps=True
    )
    # Everything is sent before reading anything, so it arrives before `ready` goes out.
    await ws.send(json.dumps({"type": "text", "text": "One two three four five six seven."}))
    await ws.send(json.dumps({"type": "flush", "nonce": 7}))
    await ws.send(json.dumps({"type": "finish"}))
    frames = await read_all(ws)
    assert json.loads(frames[0])["type"] == "ready"
    assert json.loads(frames[-1]) == {"type": "flush_complete", "nonce": 7}
    words = []
    for index, frame in enumerate(frames):
        if isinstance(frame, str) and json.loads(frame)["type"] == "timestamps":
            audio = frames[index + 1]
            assert isinstance(audio, bytes), "timestamps precede the audio frame they describe"
            for stamp in json.loads(frame)["timestamps"]:
                assert 0 <= stamp["start"] < len(audio) / 2 / 8000  # relative to that frame
                words.append(stamp["text"])
    assert words == ["One", "two", "three", "four", "five", "six", "seven"]
    assert ws.close_code == 1000


async def test_v12_timestamps_are_cumulative_and_restart_after_flush(
    speech_server: RunningSpeechServer,
) -> None:
    ws = await raw_session(
        speech_server, **{"lmnt-version": "1.2"}, format="ulaw", return_timestamps=True
    )
    for nonce, text in ((1, "Alpha bravo charlie delta echo."), (2, "Foxtrot golf hotel.")):
        await ws.send(json.dumps({"type": "text", "text": text}))
        await ws.send(json.dumps({"type": "flush", "nonce": nonce}))
    await ws.send(json.dumps({"type": "finish"}))
    turns: list[list[float]] = [[]]
    for message in json_frames(await read_all(ws)):
        if message["type"] == "timestamps":
            turns[-1] += [stamp["start"] for stamp in message["timestamps"]]
        elif message["type"] == "flush_complete":
            turns.append([])
    first, second, _ = turns
    assert len(first) == 5 and len(second) == 3
    assert first == sorted(first) and first[-1] > 1.0  # cumulative, not per chunk
    assert second[0] == 0.0 and second == sorted(second)


@pytest.mark.parametrize(("placement", "headers"), [("first", 1), ("every_flush", 2), ("none", 0)])
async def test_wav_header_placement(
    speech_server: RunningSpeechServer, placement: str, headers: int
) -> None:
    speech_server.config.wav_header = placement  # type: ignore[assignment]
    ws = await raw_session(speech_server, format="ulaw", sample_rate=16000)
    for nonce in (1, 2):
        await ws.send(json.dumps({"type": "text", "text": "Press one for sales."}))
        await ws.send(json.dumps({"type": "flush", "nonce": nonce}))
    await ws.send(json.dumps({"type": "finish"}))
    frames = await read_all(ws)
    audio = [f for f in frames if isinstance(f, bytes)]
    with_header = [f for f in audio if f.startswith(b"RIFF")]
    assert len(with_header) == headers
    for frame in with_header:
        assert parse_wav_header(frame)[0]["sample_rate"] == 16000
    if placement == "every_flush":
        first_after_flush = frames.index(json.dumps({"type": "flush_complete", "nonce": 1}))
        second_turn = [f for f in frames[first_after_flush:] if isinstance(f, bytes)]
        assert second_turn[0].startswith(b"RIFF")


async def test_audio_is_streamed_in_chunks_of_configured_size(
    speech_server: RunningSpeechServer,
) -> None:
    speech_server.config.chunk_ms = 200
    ws = await raw_session(speech_server, format="pcm_f32le", sample_rate=24000)
    await ws.send(json.dumps({"type": "text", "text": "A sentence long enough to span frames."}))
    await ws.send(json.dumps({"type": "finish"}))
    audio = [f for f in await read_all(ws) if isinstance(f, bytes)]
    assert len(audio) > 3
    assert all(len(f) <= 24000 * 4 // 5 for f in audio)  # 200 ms of f32 at 24 kHz at most
    assert sum(len(f) == 24000 * 4 // 5 for f in audio) == len(audio) - 1


async def test_injected_error_envelope_mid_session(speech_server: RunningSpeechServer) -> None:
    speech_server.config.fault_error_after_ms = 240
    speech_server.config.fault_error_type = "rate_limit_error"
    ws = await raw_session(speech_server, format="ulaw")
    await ws.send(json.dumps({"type": "text", "text": "This utterance will not finish. " * 4}))
    await ws.send(json.dumps({"type": "flush", "nonce": 1}))
    frames = await read_all(ws)
    assert any(isinstance(f, bytes) for f in frames)
    messages = json_frames(frames)
    assert messages[-1]["type"] == "error"
    assert messages[-1]["error"]["type"] == "rate_limit_error"
    assert not any(m["type"] == "flush_complete" for m in messages)
    assert ws.close_code not in (None, 1000)


async def test_text_after_finish_is_ignored_and_session_closes_cleanly(
    speech_server: RunningSpeechServer,
) -> None:
    ws = await raw_session(speech_server, format="pcm_s16le", return_timestamps=True)
    await ws.send(json.dumps({"type": "text", "text": "Last words"}))
    await ws.send(json.dumps({"type": "finish"}))
    await ws.send(json.dumps({"type": "text", "text": "Too late."}))
    frames = await read_all(ws)
    assert any(isinstance(f, bytes) for f in frames)
    spoken = [
        s["text"] for m in json_frames(frames) if m["type"] == "timestamps" for s in m["timestamps"]
    ]
    assert spoken == ["Last", "words"]
    assert ws.close_code == 1000


async def test_too_much_waiting_text_is_refused_with_rate_limit(
    speech_server: RunningSpeechServer,
) -> None:
    speech_server.config.max_buffered_segments = 2
    ws = await raw_session(speech_server, format="ulaw")
    await ws.send(json.dumps({"type": "text", "text": "One. Two. Three. Four. Five. "}))
    messages = json_frames(await read_all(ws))
    assert messages[0]["type"] == "ready"
    assert messages[-1]["type"] == "error"
    assert messages[-1]["error"]["type"] == "rate_limit_error"
    assert ws.close_code == 1008


async def test_open_sessions_are_closed_going_away_on_shutdown() -> None:
    server = await start_speech_server(SpeechServerConfig())
    try:
        ws = await raw_session(server, format="ulaw")
        assert json.loads(await ws.recv())["type"] == "ready"
    finally:
        await server.stop()
    await read_all(ws)
    assert ws.close_code == 1001
