"""A simulated call as the shared report draws it (:mod:`ivr_bridge.report`).

Everything comes from the caller's line: both channels as it recorded them, the bot's
utterances as it heard them (cut off by a ``clear``), its own turns with their latencies, and
the marks, ``clear``s, barge-ins and keys it saw, on its own clock. The transcript carries each
check's verdict on the line it judged.
"""

from __future__ import annotations

import base64
import io
import wave

from ivr_bridge.audio.codec import audioop  # the one guarded import (3.11-3.13)
from ivr_bridge.report.view import Badge, BotSpan, CallerSpan, CallView, Moment, TranscriptRow
from ivr_bridge.report.waveform import ulaw_peaks
from ivr_bridge.sim.scenario.result import CallResult, ExpectationResult


def call_view(result: CallResult, *, embed_audio: bool = True) -> CallView:
    recorder = result.recorder
    duration_ms = max(recorder.line_end_ms, 1000.0)
    utterances = [
        BotSpan(
            u.start_ms,
            u.end_ms,
            u.text or f"{(u.end_ms - u.start_ms) / 1000:.1f} s of speech",
            u.interrupted,
        )
        for u in recorder.utterances
    ]
    turns = [
        CallerSpan(
            t.start_ms,
            t.end_ms if t.end_ms is not None else t.start_ms,
            t.kind,
            t.detail,
            t.barge_in,
            t.latency_ms if t.end_ms is not None else None,
        )
        for t in result.turns
    ]
    return CallView(
        duration_ms=duration_ms,
        caller_peaks=ulaw_peaks(bytes(recorder.caller_audio), duration_ms),
        bot_peaks=ulaw_peaks(bytes(recorder.heard_audio), duration_ms),
        utterances=utterances,
        turns=turns,
        moments=_moments(result),
        transcript=_transcript(result),
        audio_src=_audio_data_uri(result) if embed_audio else None,
    )


def _moments(result: CallResult) -> list[Moment]:
    out = []
    for event in result.recorder.events:
        kind, t = event["event"], float(event["t_ms"])
        if kind == "clear":
            out.append(Moment(t, "clear", f"clear at {t / 1000:.2f} s"))
        elif kind == "barge_in":
            out.append(Moment(t, "barge_in", f"barge-in at {t / 1000:.2f} s"))
        elif kind == "mark_received":
            out.append(Moment(t, "mark", f"mark {event.get('name', '')}"))
        elif kind == "digit":
            out.append(Moment(t, "digit", f"key {event.get('digit', '?')}"))
    return out


def _transcript(result: CallResult) -> list[TranscriptRow]:
    placed: dict[float, list[ExpectationResult]] = {}
    for check in result.expectations:
        if check.at_ms is not None:
            placed.setdefault(check.at_ms, []).append(check)
    rows: list[tuple[float, str, str]] = []
    for u in result.utterances:
        text = u.text if u.text else f"({(u.end_ms - u.start_ms) / 1000:.1f} s, not transcribed)"
        rows.append((u.start_ms, "bot", text + (" [cut off]" if u.interrupted else "")))
    for t in result.turns:
        latency = f" → bot after {t.latency_ms:.0f} ms" if t.latency_ms is not None else ""
        who = "caller (barge-in)" if t.barge_in else "caller"
        rows.append((t.start_ms, who, f"{t.kind}: {t.detail}{latency}"))
    for e in result.recorder.events_of("branch"):
        chose = f"if the bot said {e['phrase']!r}: took {e['taken']} (score {e['score']:.2f})"
        rows.append((float(e["t_ms"]), "caller (branch)", chose))
    rows.append((result.recorder.line_end_ms, "end", result.verdict.describe()))
    rows.sort(key=lambda r: r[0])
    out = []
    for at, who, text in rows:
        here = placed.pop(at, []) if who in ("bot", "end") else []
        badges = tuple(Badge(c.status, c.name) for c in here)
        out.append(TranscriptRow(at, who, text, badges=badges))
    return out


def _audio_data_uri(result: CallResult) -> str:
    """The stereo recording inside the page (it opens from disk): 8-bit, half the size of
    16-bit, and a telephone line carries no more than 8 bits anyway."""
    buffer = io.BytesIO()
    left, right = result.recorder.channels()
    interleaved = bytearray(2 * len(left))
    interleaved[0::2], interleaved[1::2] = left, right
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(_ulaw_to_u8(bytes(interleaved)))
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def _ulaw_to_u8(ulaw: bytes) -> bytes:
    return audioop.bias(audioop.lin2lin(audioop.ulaw2lin(ulaw, 2), 2, 1), 1, 128)
