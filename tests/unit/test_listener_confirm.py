"""The listener with the bot audible: noise pauses at most, real speech still interrupts.

Pure and synchronous: frames are fed on the call clock, as the media handler does; the noise
set (``ivr_bridge.sim.scenario.noises``) and the caller's speech are deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from ivr_bridge.audio.codec import pcm16_to_ulaw
from ivr_bridge.audio.silero import SileroPool
from ivr_bridge.call.inputs import SpeechInput
from ivr_bridge.call.listener import Listener, ListenerSettings
from ivr_bridge.sim.scenario.noises import NOISE_KINDS, caller_speech_pcm16, noise_ulaw

LEAD = b"\xff" * 3200  # 400 ms of line silence: a full pre-roll before every clip
TAIL = b"\xff" * 8000  # 1 s after it: every onset is decided
PHRASES = ("billing please", "support", "yes", "no", "stop", "eight", "operator", "hello")
WINDOW_MS = 32


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def on_speech_onset(self, at_ms: float) -> None:
        self.events.append(("onset", at_ms))

    def on_speech_confirmed(self, onset_ms: float, at_ms: float) -> None:
        self.events.append(("confirmed", at_ms))

    def on_speech_abandoned(self, onset_ms: float, at_ms: float) -> None:
        self.events.append(("abandoned", at_ms))

    def on_speech_input(self, speech: SpeechInput) -> None:
        self.events.append(("input", speech.end_ms))

    def kinds(self, kind: str) -> list[float]:
        return [at for k, at in self.events if k == kind]


@pytest.fixture(scope="module")
def pool() -> SileroPool:
    return SileroPool()


def _listen(
    ulaw: bytes,
    pool: SileroPool,
    *,
    audible: bool = True,
    confirm: str = "silero",
    floor: int = ListenerSettings().confirm_floor,
) -> tuple[Sink, Listener, list[tuple[float, float]]]:
    sink = Sink()
    rejected: list[tuple[float, float]] = []
    listener = Listener(
        sink,
        ListenerSettings(confirm=confirm, confirm_floor=floor),  # type: ignore[arg-type]
        bot_audible=lambda: audible,
        on_rejected=lambda onset, at: rejected.append((onset, at)),
        pool=pool,
    )
    audio = LEAD + ulaw + TAIL
    for index, offset in enumerate(range(0, len(audio) - 159, 160)):
        listener.feed(index * 20.0, audio[offset : offset + 160])
    return sink, listener, rejected


@pytest.mark.parametrize("kind", NOISE_KINDS)
@pytest.mark.parametrize("seed", range(3))
def test_noise_over_the_bot_is_never_confirmed(pool: SileroPool, kind: str, seed: int) -> None:
    sink, listener, rejected = _listen(noise_ulaw(kind, seed), pool)
    assert sink.kinds("confirmed") == [] and sink.kinds("input") == []
    assert len(sink.kinds("onset")) == len(sink.kinds("abandoned"))  # every pause resumed
    assert len(rejected) == listener.rejected_onsets
    assert pool.idle >= 1, "the engine went back to the pool once the onsets were decided"


def test_webrtcvad_alone_is_fooled_by_coughs_and_breaths(pool: SileroPool) -> None:
    """Why the confirmer exists: with it off these interrupt the bot."""
    for kind in ("cough", "breath"):
        sink, _, _ = _listen(noise_ulaw(kind), pool, confirm="off")
        assert sink.kinds("confirmed"), kind


def test_a_rejected_cough_is_counted(pool: SileroPool) -> None:
    _, listener, rejected = _listen(noise_ulaw("cough"), pool)
    assert listener.rejected_onsets == 1 and len(rejected) == 1
    onset, at = rejected[0]
    assert onset < at


@pytest.mark.parametrize("text", PHRASES)
def test_real_speech_over_the_bot_confirms_about_as_fast(pool: SileroPool, text: str) -> None:
    ulaw = pcm16_to_ulaw(caller_speech_pcm16(text))
    alone, _, _ = _listen(ulaw, pool, confirm="off")
    judged, _, rejected = _listen(ulaw, pool)
    assert judged.kinds("confirmed"), f"{text!r} did not interrupt"
    assert len(judged.kinds("input")) == 1
    # Call-clock ms, not wall time: at most about one silero window later than webrtcvad.
    assert judged.kinds("confirmed")[0] - alone.kinds("confirmed")[0] <= WINDOW_MS + 20
    assert rejected == []


def test_with_the_bot_silent_webrtcvad_decides_alone(pool: SileroPool) -> None:
    """Nothing to interrupt: behaviour as before, no engine borrowed, nothing judged."""
    idle = pool.idle
    sink, listener, rejected = _listen(noise_ulaw("cough"), pool, audible=False)
    assert sink.kinds("confirmed") and rejected == [] and listener.rejected_onsets == 0
    assert pool.idle == idle


def test_speech_after_a_rejected_noise_still_interrupts(pool: SileroPool) -> None:
    speech = pcm16_to_ulaw(caller_speech_pcm16("billing please"))
    sink, listener, _ = _listen(noise_ulaw("cough") + speech, pool)
    assert listener.rejected_onsets == 1
    assert len(sink.kinds("confirmed")) == 1 and len(sink.kinds("input")) == 1


def test_a_call_ending_mid_onset_gives_the_engine_back(pool: SileroPool) -> None:
    sink = Sink()
    listener = Listener(sink, bot_audible=lambda: True, pool=pool)
    audio = LEAD + noise_ulaw("cough")[:1600]  # the call ends inside the cough
    for index, offset in enumerate(range(0, len(audio) - 159, 160)):
        listener.feed(index * 20.0, audio[offset : offset + 160])
    assert sink.kinds("onset") and not sink.kinds("abandoned")
    idle = pool.idle
    listener.close()
    assert pool.idle == idle + 1


@pytest.mark.parametrize("voice", ["neural-low", "neural-high"])
def test_a_person_like_voice_interrupts_too(pool: SileroPool, voice: str) -> None:
    ulaw = pcm16_to_ulaw(caller_speech_pcm16("billing please", voice))
    sink, _, rejected = _listen(ulaw, pool)
    assert len(sink.kinds("confirmed")) == 1 and rejected == []


def test_a_quiet_line_interrupts_once_the_floor_is_lowered(pool: SileroPool) -> None:
    speech = np.frombuffer(caller_speech_pcm16("billing please"), "<i2")
    quiet = (speech * 0.2).astype("<i2").tobytes()  # -14 dB: a distant caller
    held, _, _ = _listen(pcm16_to_ulaw(quiet), pool)
    assert held.kinds("confirmed") == []  # heard as someone else in the room (the default)
    lowered, _, _ = _listen(pcm16_to_ulaw(quiet), pool, floor=200)  # IVR_VAD_CONFIRM_FLOOR
    assert len(lowered.kinds("confirmed")) == 1
