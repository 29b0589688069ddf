"""Conformance: the official lmnt==2.13.0 SDK drives the embedded speech server."""

from __future__ import annotations

import array

import pytest
from lmnt import AsyncLmnt
from lmnt.resources.sessions import SpeechSession
from speech_test_helpers import parse_wav_header

from ivr_bridge.audio.codec import ulaw_to_pcm16
from ivr_bridge.speechserver.app import RunningSpeechServer
from ivr_bridge.speechserver.synth import get_synthesizer

GREETING = "Hello there, thanks for calling. How can I help you today?"
LONG_TEXT = " ".join(
    f"This is sentence number {n} of a long legal disclaimer that nobody wants to hear."
    for n in range(1, 13)
)


async def collect_until(session: SpeechSession, kind: str) -> list:
    """Messages up to and including the first one of type ``kind``."""
    got = []
    async for message in session:
        got.append(message)
        if message.type == kind:
            return got
    raise AssertionError(f"stream ended before {kind}: {[m.type for m in got]}")


def audio_of(messages: list) -> bytes:
    return b"".join(m.audio for m in messages if m.type == "audio")


def words_of(messages: list) -> list[str]:
    return [t.text for m in messages if m.type == "timestamps" for t in m.timestamps]


async def test_text_flush_reset_finish_with_nonces(lmnt_client: AsyncLmnt) -> None:
    session = await lmnt_client.speech.sessions.create(
        voice="leah", format="pcm_s16le", sample_rate=16000, return_timestamps=True
    )
    await session.send_text("Hello there, thanks ")
    await session.send_text("for calling.")
    flush_nonce = await session.send_flush()
    first = await collect_until(session, "flush_complete")
    assert first[0].type == "ready" and first[0].request_id.startswith("req_")
    assert first[-1].nonce == flush_nonce == 1
    assert len(audio_of(first)) > 16000 * 2 * 0.5  # at least half a second of speech
    assert words_of(first) == ["Hello", "there", "thanks", "for", "calling"]

    await session.send_text("This text is dropped before it is ever spoken")
    reset_nonce = await session.send_reset()
    after_reset = await collect_until(session, "reset_complete")
    assert after_reset[-1].nonce == reset_nonce == 2
    assert audio_of(after_reset) == b""

    await session.send_text("Goodbye now.")
    await session.send_finish()
    tail = [m async for m in session]
    assert words_of(tail) == ["Goodbye", "now"]
    assert len(audio_of(tail)) > 0
    assert session.websocket.close_code == 1000


@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000])
@pytest.mark.parametrize("fmt", ["ulaw", "pcm_s16le", "pcm_f32le"])
async def test_audio_in_each_format(lmnt_client: AsyncLmnt, fmt: str, sample_rate: int) -> None:
    session = await lmnt_client.speech.sessions.create(
        voice="brandon", format=fmt, sample_rate=sample_rate, return_timestamps=True
    )
    await session.send_text(GREETING)
    await session.send_finish()
    messages = [m async for m in session]
    audio = audio_of(messages)
    if fmt == "ulaw":
        header, start = parse_wav_header(audio)
        assert header["sample_rate"] == sample_rate
        pcm = ulaw_to_pcm16(audio[start:])
    elif fmt == "pcm_f32le":
        floats = array.array("f", audio)
        assert all(-1.0 <= s <= 1.0 for s in floats)
        pcm = array.array("h", (int(s * 32767) for s in floats)).tobytes()
    else:
        pcm = audio
    # The server speaks sentence by sentence; the same two syntheses, just encoded differently
    # (espeak's length wobbles by a few samples between runs).
    sentences = ["Hello there, thanks for calling.", "How can I help you today?"]
    reference = [await get_synthesizer().synthesize(s, "brandon", sample_rate) for s in sentences]
    assert len(pcm) == pytest.approx(sum(len(r.pcm16) for r in reference), rel=0.01)
    assert max(array.array("h", pcm)) > 3000  # not silence
    stamps = [t for m in messages if m.type == "timestamps" for t in m.timestamps]
    assert stamps[-1].start + stamps[-1].duration == pytest.approx(
        len(pcm) / 2 / sample_rate, rel=0.1
    )


async def test_ulaw_header_is_riff_wave_and_duration_matches_timestamps(
    lmnt_client: AsyncLmnt,
) -> None:
    session = await lmnt_client.speech.sessions.create(
        voice="leah", format="ulaw", sample_rate=8000, return_timestamps=True
    )
    await session.send_text(GREETING)
    await session.send_flush()
    messages = await collect_until(session, "flush_complete")
    await session.close()
    frames = [m.audio for m in messages if m.type == "audio"]
    assert len(frames) > 5, "audio must be streamed in chunks, not one blob"
    assert all(len(frame) < 1 << 20 for frame in frames)
    header, start = parse_wav_header(frames[0])
    assert header == {"format_tag": 7, "channels": 1, "sample_rate": 8000, "bits": 8}
    assert not any(frame.startswith(b"RIFF") for frame in frames[1:])
    ulaw_seconds = (sum(map(len, frames)) - start) / 8000
    last = [t for m in messages if m.type == "timestamps" for t in m.timestamps][-1]
    assert last.start + last.duration == pytest.approx(ulaw_seconds, rel=0.1)


async def test_reset_during_long_speech_cuts_it_off(
    speech_server: RunningSpeechServer, lmnt_client: AsyncLmnt
) -> None:
    speech_server.config.realtime_factor = 1.0  # audio genuinely in flight when reset lands
    session = await lmnt_client.speech.sessions.create(
        voice="daniel", format="ulaw", sample_rate=8000, return_timestamps=True
    )
    await session.send_text(LONG_TEXT)
    flush_nonce = await session.send_flush()
    before = []
    async for message in session:
        before.append(message)
        if len(audio_of(before)) >= 8000 // 2:  # half a second received: speech is under way
            break
    reset_nonce = await session.send_reset()
    await session.send_text("Goodbye.")
    second_flush = await session.send_flush()
    until_ack = await collect_until(session, "reset_complete")
    # The cut-short flush is acknowledged (before the reset ack) so no nonce hangs.
    acks = [(m.type, m.nonce) for m in until_ack if m.type.endswith("_complete")]
    assert acks == [("flush_complete", flush_nonce), ("reset_complete", reset_nonce)]
    full = await get_synthesizer().synthesize(LONG_TEXT, "daniel", 8000)
    heard = len(audio_of(before + until_ack)) / 8000
    assert heard < full.duration_s / 2, "reset did not stop the long speech"

    after = await collect_until(session, "flush_complete")
    assert after[-1].nonce == second_flush
    assert words_of(after) == ["Goodbye"]
    goodbye = await get_synthesizer().synthesize("Goodbye.", "daniel", 8000)
    assert len(audio_of(after)) == pytest.approx(len(goodbye.pcm16) / 2, rel=0.01)
    await session.close()


async def test_unknown_voice_gives_not_found_and_close(lmnt_client: AsyncLmnt) -> None:
    session = await lmnt_client.speech.sessions.create(voice="no-such-voice", format="ulaw")
    messages = [m async for m in session]
    assert [m.type for m in messages] == ["error"]
    assert messages[0].error.type == "not_found_error"
    assert "no-such-voice" in messages[0].error.message
    assert session.websocket.close_code not in (None, 1000)


async def test_runtime_knobs_apply_to_the_next_session(
    speech_server: RunningSpeechServer, lmnt_client: AsyncLmnt
) -> None:
    speech_server.config.wav_header = "none"
    session = await lmnt_client.speech.sessions.create(voice="leah", format="ulaw")
    await session.send_text("Short one.")
    await session.send_finish()
    audio = audio_of([m async for m in session])
    assert audio and not audio.startswith(b"RIFF")

    speech_server.config.fault_close_after_ms = 300
    speech_server.config.fault_close_code = 4001
    session = await lmnt_client.speech.sessions.create(voice="leah", format="ulaw")
    await session.send_text(LONG_TEXT)
    await session.send_finish()
    cut = audio_of([m async for m in session])
    assert 0 < len(cut) < 8000  # closed mid-utterance, well before the end
    assert session.websocket.close_code == 4001


async def test_sentence_longer_than_the_synthesizer_limit_is_still_spoken(
    lmnt_client: AsyncLmnt,
) -> None:
    session = await lmnt_client.speech.sessions.create(
        voice="leah", format="pcm_s16le", sample_rate=8000, return_timestamps=True
    )
    await session.send_text("word " * 1100 + "end. ")  # one 5505-character sentence
    await session.send_flush()
    messages = await collect_until(session, "flush_complete")
    assert not [m for m in messages if m.type == "error"]
    assert words_of(messages) == ["word"] * 1100 + ["end"]
    assert len(audio_of(messages)) > 8000 * 2 * 60  # over a minute of speech
    await session.close()


async def test_reset_during_first_audio_delay_drops_the_waiting_text(
    speech_server: RunningSpeechServer, lmnt_client: AsyncLmnt
) -> None:
    speech_server.config.first_audio_delay_ms = 60_000  # the reset must cut the wait short
    session = await lmnt_client.speech.sessions.create(
        voice="leah", format="pcm_s16le", sample_rate=8000, return_timestamps=True
    )
    await session.send_text("This is never spoken.")
    flush_nonce = await session.send_flush()
    reset_nonce = await session.send_reset()
    until_reset = await collect_until(session, "reset_complete")
    acks = [(m.type, m.nonce) for m in until_reset if m.type.endswith("_complete")]
    assert acks == [("flush_complete", flush_nonce), ("reset_complete", reset_nonce)]
    assert audio_of(until_reset) == b""

    speech_server.config.first_audio_delay_ms = 0
    await session.send_text("Kept.")
    await session.send_flush()
    after = await collect_until(session, "flush_complete")
    assert words_of(after) == ["Kept"] and audio_of(after)
    await session.close()


async def test_flush_with_nothing_buffered_is_acknowledged(lmnt_client: AsyncLmnt) -> None:
    session = await lmnt_client.speech.sessions.create(voice="leah", format="ulaw")
    nonce = await session.send_flush()
    messages = await collect_until(session, "flush_complete")
    assert [m.type for m in messages] == ["ready", "flush_complete"]
    assert messages[-1].nonce == nonce
    await session.close()
