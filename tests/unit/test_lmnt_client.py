"""The LMNT 1.1 session client against a scripted fake server on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
import structlog
from lmnt.resources.sessions import _ws_url_from_base  # the official SDK's rule
from pydantic import SecretStr

from ivr_bridge.audio.wav import WAVE_FORMAT_PCM, WavFormat, build_wav_header
from ivr_bridge.speech.lmnt import LmntSession, TimestampMode, connect_lmnt, session_url
from ivr_bridge.speech.lmnt.protocol import InitMessage
from ivr_bridge.speech.session import (
    FlushComplete,
    ResetComplete,
    SessionReady,
    SpeechAudio,
    SpeechEvent,
    SpeechSessionClosed,
    SpeechSessionError,
    SpeechTimestamps,
)
from tests.unit.lmnt_fakes import FakeLmntServer, ScriptedConnection, wait_until

API_KEY = "ak_9f2b7c41d0e6a5b3c8e1f47d"
HEADER = build_wav_header()
CHUNK_A = b"\x81" * 2400  # 0.3 s
CHUNK_B = b"\x82" * 1600  # 0.2 s
STALE = b"\x13" * 800


async def open_session(server: FakeLmntServer, **kwargs: object) -> LmntSession:
    return await connect_lmnt(base_url=server.base_url, api_key=API_KEY, voice="brandon", **kwargs)  # type: ignore[arg-type]


async def collect(session: LmntSession) -> list[SpeechEvent]:
    return [event async for event in session.events()]


def audio_of(events: list[SpeechEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, SpeechAudio))


async def finish_cleanly(conn: ScriptedConnection) -> None:
    await conn.expect("finish")
    await conn.close(1000)


# ---------------------------------------------------------------- URL


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.lmnt.com", "wss://api.lmnt.com/v1/ai/speech/stream"),
        ("https://api.lmnt.com/", "wss://api.lmnt.com/v1/ai/speech/stream"),
        ("http://127.0.0.1:8123", "ws://127.0.0.1:8123/v1/ai/speech/stream"),
        ("http://127.0.0.1:8123///", "ws://127.0.0.1:8123/v1/ai/speech/stream"),
        ("https://proxy.example/lmnt/", "wss://proxy.example/lmnt/v1/ai/speech/stream"),
        ("ws://already-ws:9", "ws://already-ws:9/v1/ai/speech/stream"),
    ],
)
def test_url_derivation_matches_the_official_sdk(base: str, expected: str) -> None:
    assert session_url(base) == expected
    assert session_url(base) == _ws_url_from_base(base)


def test_default_base_url_is_lmnt() -> None:
    assert session_url() == "wss://api.lmnt.com/v1/ai/speech/stream"


# ---------------------------------------------------------------- init and nonces


async def test_init_message_is_exactly_the_documented_one() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready("req_init")
        await finish_cleanly(conn)

    async with FakeLmntServer(script) as server:
        session = await open_session(server, language="de")
        await session.finish()
        events = await collect(session)
        await session.close()
    conn = server.connection
    assert conn.path == "/v1/ai/speech/stream"
    assert "x-api-key" not in conn.request_headers  # the key travels only in the init message
    assert conn.received[0] == {
        "type": "init",
        "X-API-Key": API_KEY,
        "lmnt-version": "1.1",
        "voice": "brandon",
        "format": "ulaw",
        "sample_rate": 8000,
        "return_timestamps": True,
        "language": "de",
    }
    assert events == [SessionReady("req_init")]
    assert session.request_id == "req_init"


async def test_one_nonce_counter_for_flush_and_reset_starting_at_1() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.expect("text")
        for kind in ("flush", "reset", "flush", "reset"):
            msg = await conn.expect(kind)
            await conn.send_json({"type": f"{kind}_complete", "nonce": msg["nonce"]})
        await finish_cleanly(conn)

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        await session.send_text("Hello there.")
        nonces = [
            await session.flush(),
            await session.reset(),
            await session.flush(),
            await session.reset(),
        ]
        await session.finish()
        events = await collect(session)
    assert nonces == [1, 2, 3, 4]
    sent = [(m["type"], m.get("nonce")) for m in server.connection.received[1:]]
    assert sent == [
        ("text", None),
        ("flush", 1),
        ("reset", 2),
        ("flush", 3),
        ("reset", 4),
        ("finish", None),
    ]
    acks = [e for e in events if isinstance(e, FlushComplete | ResetComplete)]
    assert acks == [FlushComplete(1), ResetComplete(2), FlushComplete(3), ResetComplete(4)]


# ---------------------------------------------------------------- audio and the reset gate


async def test_header_stripped_on_every_frame_and_audio_in_order() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.expect("text")
        await conn.expect("flush")
        await conn.send_audio(HEADER[:10])  # header split across frames
        await conn.send_audio(HEADER[10:] + CHUNK_A)
        await conn.send_audio(CHUNK_B)
        await conn.send_json({"type": "flush_complete", "nonce": 1})
        await conn.expect("text")
        await conn.expect("flush")
        await conn.send_audio(HEADER + CHUNK_B)  # header again after a flush
        await conn.send_json({"type": "flush_complete", "nonce": 2})
        await finish_cleanly(conn)

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        await session.send_text("One.")
        await session.flush()
        await session.send_text("Two.")
        await session.flush()
        await session.finish()
        events = await collect(session)
    assert audio_of(events) == CHUNK_A + CHUNK_B + CHUNK_B


async def test_frames_between_reset_and_its_ack_are_dropped() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.expect("text")
        await conn.expect("flush")
        await conn.send_audio(HEADER + CHUNK_A)
        reset = await conn.expect("reset")
        await conn.send_audio(STALE)  # in flight when the reset arrived
        await conn.send_audio(HEADER + STALE)
        await conn.send_json({"type": "reset_complete", "nonce": reset["nonce"]})
        await conn.expect("text")
        flush = await conn.expect("flush")
        await conn.send_audio(HEADER + CHUNK_B)
        await conn.send_json({"type": "flush_complete", "nonce": flush["nonce"]})
        await finish_cleanly(conn)

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        await session.send_text("A long prompt the caller interrupts.")
        await session.flush()
        events: list[SpeechEvent] = []
        async for event in session.events():
            events.append(event)
            if isinstance(event, SpeechAudio) and session.dropped_after_reset_bytes == 0:
                assert await session.reset() == 2
                assert not session.audio_gate_open
            elif isinstance(event, ResetComplete):
                assert session.audio_gate_open
                await session.send_text("Sorry, go ahead.")
                await session.flush()
            elif isinstance(event, FlushComplete):
                await session.finish()
    assert audio_of(events) == CHUNK_A + CHUNK_B
    assert session.dropped_after_reset_bytes == 2 * len(STALE) + len(HEADER)
    assert [e for e in events if isinstance(e, ResetComplete | FlushComplete)] == [
        ResetComplete(2),
        FlushComplete(3),
    ]


async def test_overlapping_resets_only_the_latest_ack_reopens_the_gate() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.expect("text")
        await conn.expect("flush")
        await conn.expect("reset")
        await conn.expect("reset")
        await conn.send_audio(STALE)
        await conn.send_json({"type": "reset_complete", "nonce": 2})
        await conn.send_audio(STALE)  # still discarded speech: reset 3 not acknowledged yet
        await conn.send_json({"type": "reset_complete", "nonce": 3})
        await conn.send_audio(HEADER + CHUNK_A)
        await conn.send_json({"type": "flush_complete", "nonce": 1})
        await finish_cleanly(conn)

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        await session.send_text("Hello.")
        await session.flush()
        await session.reset()
        await session.reset()
        await session.finish()
        events = await collect(session)
    assert audio_of(events) == CHUNK_A
    assert session.dropped_after_reset_bytes == 2 * len(STALE)
    assert ResetComplete(2) in events and ResetComplete(3) in events


async def test_audio_received_but_unconsumed_at_reset_is_never_yielded() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.expect("text")
        await conn.expect("flush")
        await conn.timestamps(("hello", 0.0, 0.3))
        await conn.send_audio(HEADER + CHUNK_A)
        await conn.send_audio(CHUNK_B)
        reset = await conn.expect("reset")
        await conn.send_json({"type": "reset_complete", "nonce": reset["nonce"]})
        await finish_cleanly(conn)

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        await session.send_text("Hello.")
        await session.flush()
        await wait_until(lambda: session.queued_events >= 4)  # ready, timestamps, A, B
        await session.reset()
        await session.finish()
        events = await collect(session)
    assert audio_of(events) == b""
    assert not any(isinstance(e, SpeechTimestamps) for e in events)
    assert events == [SessionReady("req_fake"), ResetComplete(2)]
    assert session.purged_queued_bytes == len(CHUNK_A) + len(CHUNK_B)


# ---------------------------------------------------------------- timestamps


async def run_timestamp_session(mode: TimestampMode, first: float, second: float) -> list[float]:
    """Two chunks with a timestamps message right before each, a flush, then one more utterance."""

    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.expect("text")
        await conn.expect("flush")
        await conn.timestamps(("hello", first, 0.3))
        await conn.send_audio(HEADER + CHUNK_A)
        await conn.timestamps(("world", second, 0.2))
        await conn.send_audio(CHUNK_B)
        await conn.send_json({"type": "flush_complete", "nonce": 1})
        await conn.expect("text")
        await conn.expect("flush")
        await conn.timestamps(("again", 0.0, 0.2))
        await conn.send_audio(HEADER + CHUNK_B)
        await conn.send_json({"type": "flush_complete", "nonce": 2})
        await finish_cleanly(conn)

    async with FakeLmntServer(script) as server:
        session = await open_session(server, timestamp_mode=mode)
        await session.send_text("Hello world.")
        await session.flush()
        await session.send_text("Again.")
        await session.flush()
        await session.finish()
        events = await collect(session)
    return [w.start for e in events if isinstance(e, SpeechTimestamps) for w in e.words]


async def test_timestamps_per_chunk_semantics_of_1_1_become_utterance_time() -> None:
    # 1.1: "start" restarts at 0 for every audio chunk; 2400 bytes before "world" = 0.3 s.
    starts = await run_timestamp_session(TimestampMode.PER_CHUNK, 0.0, 0.0)
    assert starts == pytest.approx([0.0, 0.3, 0.0])


async def test_timestamps_cumulative_semantics_of_1_2_pass_through() -> None:
    starts = await run_timestamp_session(TimestampMode.CUMULATIVE, 0.0, 0.3)
    assert starts == pytest.approx([0.0, 0.3, 0.0])


async def test_per_chunk_is_the_default_for_api_1_1() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await finish_cleanly(conn)

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        assert session.timestamp_mode is TimestampMode.PER_CHUNK
        await session.finish()
        await collect(session)


# ---------------------------------------------------------------- endings and errors


async def test_error_envelope_raises_typed_error_with_request_id() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.expect("init")
        await conn.send_json(
            {
                "type": "error",
                "error": {"type": "authentication_error", "message": "Invalid API key"},
                "request_id": "req_err42",
            }
        )
        await conn.close(1008, "auth")

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        with pytest.raises(SpeechSessionError) as caught:
            await collect(session)
        await session.close()
    assert type(caught.value) is SpeechSessionError
    assert caught.value.error_type == "authentication_error"
    assert caught.value.message == "Invalid API key"
    assert caught.value.request_id == "req_err42"


@pytest.mark.parametrize("code", [1000, 1011])
async def test_server_closing_before_finish_is_a_failure_not_completion(code: int) -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready("req_early")
        await conn.send_audio(HEADER + CHUNK_A)
        await conn.close(code, "going away")

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        events: list[SpeechEvent] = []
        with pytest.raises(SpeechSessionClosed) as caught:
            async for event in session.events():
                events.append(event)
    assert audio_of(events) == CHUNK_A  # audio before the failure was still delivered
    assert caught.value.code == code
    assert caught.value.reason == "going away"
    assert caught.value.request_id == "req_early"


async def test_connection_dropped_without_close_frame_is_a_failure() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        conn.abort()

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        with pytest.raises(SpeechSessionClosed) as caught:
            await collect(session)
    assert caught.value.code is None


async def test_close_other_than_1000_after_finish_is_a_failure() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.expect("finish")
        await conn.close(1011, "synth crashed")

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        await session.finish()
        with pytest.raises(SpeechSessionClosed) as caught:
            await collect(session)
    assert caught.value.code == 1011


async def test_clean_finish_speaks_the_rest_then_events_end() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.expect("text")
        await conn.expect("finish")
        await conn.send_audio(HEADER + CHUNK_A)  # the rest, spoken after finish
        await conn.close(1000)

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        await session.send_text("Goodbye.")
        await session.finish()
        events = await collect(session)
        await session.close()
    assert audio_of(events) == CHUNK_A
    assert events[0] == SessionReady("req_fake")


async def test_non_mulaw_stream_is_rejected_with_a_clear_error() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.send_audio(
            build_wav_header(WavFormat(WAVE_FORMAT_PCM, 1, 24000, 16)) + b"\0" * 64
        )
        await conn.ws.wait_closed()

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        with pytest.raises(SpeechSessionError, match="24000 Hz") as caught:
            await collect(session)
    assert caught.value.error_type == "unsupported_audio_format"


async def test_unknown_server_messages_are_ignored() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.send_json({"type": "usage", "characters": 12})
        await conn.send_json({"type": "ready", "request_id": "req_x", "extra": {"new": 1}})
        await finish_cleanly(conn)

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        await session.finish()
        events = await collect(session)
    assert events == [SessionReady("req_fake"), SessionReady("req_x")]


async def test_invalid_json_from_server_is_a_protocol_error() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.ws.send("{not json")
        await conn.ws.wait_closed()

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        with pytest.raises(SpeechSessionError) as caught:
            await collect(session)
    assert caught.value.error_type == "protocol_error"


async def test_close_ends_a_waiting_consumer_and_later_sends_fail_typed() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.ws.wait_closed()

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        seen: list[SpeechEvent] = []
        async for event in session.events():
            seen.append(event)
            await session.close()  # the conductor hangs up mid-iteration
        with pytest.raises(SpeechSessionClosed):
            await session.send_text("too late")
    assert seen == [SessionReady("req_fake")]


async def test_unreachable_server_raises_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SpeechSessionError) as caught:
        await connect_lmnt(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, voice="v")
    assert caught.value.error_type == "connection_error"
    assert API_KEY not in str(caught.value)


# ---------------------------------------------------------------- latency and secrets


async def test_first_audio_latency_is_recorded_once_per_utterance() -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        for nonce in (1, 2):
            await conn.expect("text")
            await conn.expect("flush")
            await conn.send_audio(HEADER + CHUNK_A)
            await conn.send_audio(CHUNK_B)
            await conn.send_json({"type": "flush_complete", "nonce": nonce})
        await finish_cleanly(conn)

    recorded: list[float] = []
    async with FakeLmntServer(script) as server:
        session = await open_session(server, on_first_audio_latency=recorded.append)
        assert session.last_first_audio_latency_s is None
        await session.send_text("One.")
        await session.flush()
        async for event in session.events():
            if event == FlushComplete(1):
                await session.send_text("Two.")
                await session.flush()
            elif event == FlushComplete(2):
                await session.finish()
    assert len(recorded) == 2
    assert all(latency >= 0 for latency in recorded)
    assert session.last_first_audio_latency_s == recorded[-1]


async def test_api_key_never_appears_in_logs_reprs_or_errors(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.expect("text")
        await conn.send_json(
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
        )
        await conn.close(1008)

    caplog.set_level(logging.DEBUG)  # includes websockets' frame dumps if they were enabled
    with structlog.testing.capture_logs() as structured:
        async with FakeLmntServer(script) as server:
            session = await open_session(server)
            await session.send_text("Hi.")
            with pytest.raises(SpeechSessionError) as caught:
                await collect(session)
            await session.close()
    init = InitMessage(api_key=SecretStr(API_KEY), voice="brandon")
    assert server.connection.received[0]["X-API-Key"] == API_KEY  # it did travel, in init
    assert structured, "the client is expected to log its lifecycle"
    visible = [
        repr(structured),
        caplog.text,
        capsys.readouterr().out,
        repr(session),
        str(session),
        repr(init),
        str(init),
        init.model_dump_json(),
        str(caught.value),
    ]
    # Any 8-character window counts: websockets' frame dumps truncate, leaking a key prefix.
    windows = {API_KEY[i : i + 8] for i in range(len(API_KEY) - 7)}
    for text in visible:
        assert not [w for w in windows if w in text], text


# ---------------------------------------------------------------- against our speech server


async def test_against_the_project_speech_server() -> None:
    """Two utterances with a header after every flush, then a barge-in reset mid-speech."""
    app = pytest.importorskip("ivr_bridge.speechserver.app")
    from ivr_bridge.speechserver.config import SpeechServerConfig

    config = SpeechServerConfig(wav_header="every_flush", realtime_factor=0.1)
    server = await app.start_speech_server(config)
    utterances: list[bytearray] = [bytearray()]
    starts: list[list[float]] = [[]]
    try:
        session = await connect_lmnt(base_url=server.base_url, api_key=API_KEY, voice="brandon")
        await session.send_text("Thank you for calling. Please listen carefully to our menu.")
        await session.flush()
        async for event in session.events():
            if isinstance(event, SpeechAudio):
                utterances[-1].extend(event.data)
            elif isinstance(event, SpeechTimestamps):
                starts[-1].extend(w.start for w in event.words)
            elif event == FlushComplete(1):
                utterances.append(bytearray())
                starts.append([])
                await session.send_text("Press one for sales. Press two for support.")
                await session.flush()
            elif event == FlushComplete(2):
                await session.finish()
        await session.close()
    finally:
        await server.stop()
    assert session.request_id
    assert len(utterances) == 2
    for audio, word_starts in zip(utterances, starts, strict=True):
        assert len(audio) > 8000  # over a second of speech each
        assert not audio.startswith(b"RIFF") and b"WAVEfmt " not in audio
        assert word_starts == sorted(word_starts)
        assert word_starts[0] < 0.5 and word_starts[-1] < len(audio) / 8000


async def test_reset_against_the_project_speech_server_drops_the_rest() -> None:
    app = pytest.importorskip("ivr_bridge.speechserver.app")
    from ivr_bridge.speechserver.config import SpeechServerConfig

    # Paced at real time so most of the long prompt is still in flight when the reset goes out.
    config = SpeechServerConfig(wav_header="every_flush", realtime_factor=1.0)
    server = await app.start_speech_server(config)
    before_ack = bytearray()
    after_ack = bytearray()
    reset_nonce: int | None = None
    second_flush: int | None = None
    try:
        session = await connect_lmnt(base_url=server.base_url, api_key=API_KEY, voice="leah")
        await session.send_text("This is a very long legal disclaimer that nobody wants. " * 5)
        await session.flush()
        async for event in session.events():
            if isinstance(event, SpeechAudio):
                (after_ack if second_flush else before_ack).extend(event.data)
                if reset_nonce is None:  # the caller barges in on the first audio
                    reset_nonce = await session.reset()
            elif event == ResetComplete(reset_nonce or -1):
                await session.send_text("Okay.")
                second_flush = await session.flush()
            elif event == FlushComplete(second_flush or -1):
                await session.finish()
        await session.close()
    finally:
        await server.stop()
    # Only the first frame of a ~15 s prompt was heard; the short reply came through whole.
    assert 0 < len(before_ack) < 8000
    assert 800 < len(after_ack) < 2 * 8000
    assert not after_ack.startswith(b"RIFF")


async def test_close_from_a_task_being_cancelled_still_closes_the_socket() -> None:
    """A caller hanging up cancels the call, whose teardown closes the session: the socket
    must close then too, or keepalive pings hold it (and its tasks) open forever."""
    server_saw_close = asyncio.Event()

    async def script(conn: ScriptedConnection) -> None:
        await conn.ready()
        await conn.ws.wait_closed()
        server_saw_close.set()

    async with FakeLmntServer(script) as server:
        session = await open_session(server)
        started = asyncio.Event()

        async def call() -> None:
            try:
                started.set()
                await asyncio.Event().wait()  # the call runs until the caller hangs up
            finally:
                await session.close()

        task = asyncio.create_task(call())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5):
            await server_saw_close.wait()
        assert session._receiver.done()
