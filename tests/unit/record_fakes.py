"""Call records made up for tests: the shapes a real call leaves, without placing one.

``support_call()`` is a six-second support-line call: the bot's menu, cut off by the caller
saying "billing" (a barge-in), an account number typed on the keypad and masked as the bridge
masks it, an answer the caller heard in full, a hang-up. ``stereo_wav()`` is its recording:
left the caller, right the bot, where each of them spoke.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from datetime import UTC, datetime, timedelta

from ivr_bridge.records.model import (
    BargeIn,
    BotUtterance,
    CallerTurn,
    CallRecord,
    RecordAudio,
)

STARTED = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
MENU_HEARD = "For billing press one,"
MENU_UNHEARD = "for support press two."
PIN = "••••"


def support_call(
    call_sid: str = "CA0000000000000000000000000000beef",
    *,
    started_at: datetime = STARTED,
    outcome: str = "completed",
    flow: str = "support.yaml",
    audio: bool = True,
) -> CallRecord:
    return CallRecord.model_validate(
        {
            "call_sid": call_sid,
            "stream_sid": "MZ1",
            "app": "flow",
            "flow": flow,
            "parameters": {"from": "••••••••5678", "flow": flow},
            "started_at": started_at,
            "ended_at": started_at + timedelta(seconds=6),
            "duration_ms": 6000.0,
            "outcome": outcome,
            "utterances": [
                BotUtterance(
                    id=1,
                    start_ms=200.0,
                    end_ms=1500.0,
                    text=f"{MENU_HEARD} {MENU_UNHEARD}",
                    heard=MENU_HEARD,
                    unheard=MENU_UNHEARD,
                    interrupted=True,
                    interrupted_by="speech",
                    played_ms=1300.0,
                ),
                BotUtterance(
                    id=2,
                    start_ms=2000.0,
                    end_ms=2800.0,
                    text="Please enter your account number.",
                    heard="Please enter your account number.",
                ),
                BotUtterance(
                    id=3,
                    start_ms=4600.0,
                    end_ms=5800.0,
                    text="Your balance is twelve dollars.",
                    heard="Your balance is twelve dollars.",
                ),
            ],
            "turns": [
                CallerTurn(
                    kind="speech",
                    start_ms=1300.0,
                    end_ms=1800.0,
                    text="billing",
                    confidence=0.93,
                    engine="whisper",
                    barge_in=True,
                    latency_ms=200.0,
                    phases_ms={"endpointing": 200, "recognition": 0, "reply": 30, "total": 230},
                ),
                CallerTurn(kind="dtmf", start_ms=3200.0, end_ms=4200.0, text=PIN, latency_ms=400.0),
            ],
            "barge_ins": [
                BargeIn(
                    at_ms=1350.0,
                    utterance=1,
                    by="speech",
                    onset_to_clear_ms=180.0,
                    heard=MENU_HEARD,
                )
            ],
            "latency_p50_ms": 200.0,
            "latency_p95_ms": 400.0,
            "audio": (
                RecordAudio(file=f"{call_sid}.wav", duration_ms=6000.0, bytes=192_044)
                if audio
                else None
            ),
            "events": [
                {"kind": "bot_says", "call_ms": 150.0, "utterance": 1, "text": MENU_HEARD},
                *({"kind": "dtmf", "call_ms": 3200.0 + 330 * n, "digit": "•"} for n in range(4)),
                {"kind": "end", "call_ms": 6000.0, "action": "hangup"},
            ],
        }
    )


def stereo_wav(duration_ms: int = 6000) -> bytes:
    """16-bit 8 kHz stereo: a tone on the left while the caller talks, on the right while the
    bot does (the spans of :func:`support_call`)."""
    caller = [(1300, 1800)]
    bot = [(200, 1500), (2000, 2800), (4600, 5800)]
    frames = bytearray()
    for n in range(duration_ms * 8):
        ms = n / 8
        left = 8000 if any(a <= ms < b for a, b in caller) else 0
        right = 12000 if any(a <= ms < b for a, b in bot) else 0
        wave_ = math.sin(n / 4)
        frames += struct.pack("<hh", int(left * wave_), int(right * wave_))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(frames))
    return out.getvalue()
