"""VAD per 20 ms frame and the listener's endpointing, driven frame by frame on the call clock."""

from __future__ import annotations

import random
import struct

from ivr_bridge.audio.codec import pcm16_to_ulaw
from ivr_bridge.audio.vad import FRAME_BYTES, VoiceActivityDetector
from ivr_bridge.call.inputs import SpeechInput
from ivr_bridge.call.listener import Listener, ListenerSettings

SILENCE = b"\xff" * FRAME_BYTES
_rng = random.Random(3)


def noise(amplitude: int) -> bytes:
    samples = [max(-32768, min(32767, int(_rng.gauss(0, amplitude)))) for _ in range(160)]
    return pcm16_to_ulaw(struct.pack("<160h", *samples))


LOUD = noise(3000)


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.inputs: list[SpeechInput] = []

    def on_speech_onset(self, at_ms: float) -> None:
        self.events.append(("onset", at_ms))

    def on_speech_confirmed(self, onset_ms: float, at_ms: float) -> None:
        self.events.append(("confirmed", onset_ms, at_ms))

    def on_speech_abandoned(self, onset_ms: float, at_ms: float) -> None:
        self.events.append(("abandoned", onset_ms, at_ms))

    def on_speech_input(self, speech: SpeechInput) -> None:
        self.inputs.append(speech)
        self.events.append(("input", speech.start_ms, speech.end_ms, len(speech.pcm16)))


def feed(listener: Listener, frames: list[bytes], start_ms: float = 0) -> float:
    t = start_ms
    for frame in frames:
        listener.feed(t, frame)
        t += 20
    return t


def test_vad_hears_loud_audio_and_not_silence_or_hiss_under_the_floor() -> None:
    vad = VoiceActivityDetector(energy_floor=300)
    assert not vad.is_speech(SILENCE)
    assert not vad.is_speech(noise(100))  # webrtcvad alone would call this speech
    assert vad.is_speech(LOUD)


def test_odd_sized_payloads_are_regrouped_into_whole_frames() -> None:
    vad = VoiceActivityDetector()
    assert vad.frames(b"\x01" * 100) == []
    frames = vad.frames(b"\x02" * 300)
    assert [len(f) for f in frames] == [160, 160]
    assert frames[0][:100] == b"\x01" * 100


def test_a_short_burst_is_an_abandoned_onset_and_no_utterance() -> None:
    sink = Sink()
    listener = Listener(sink)
    t = feed(listener, [SILENCE] * 20)
    feed(listener, [LOUD] * 5 + [SILENCE] * 40, t)
    kinds = [e[0] for e in sink.events]
    assert kinds == ["onset", "abandoned"]
    assert sink.events[0] == ("onset", 400)


def test_speech_is_confirmed_after_min_speech_and_delivered_after_end_silence() -> None:
    sink = Sink()
    listener = Listener(sink, ListenerSettings(min_speech_ms=200, end_silence_ms=600))
    t = feed(listener, [SILENCE] * 20)  # 400 ms quiet: the pre-roll is full
    t = feed(listener, [LOUD] * 25, t)  # 500 ms of speech from 400 ms
    assert sink.events == [("onset", 400), ("confirmed", 400, 600)]
    t = feed(listener, [SILENCE] * 29, t)
    assert len(sink.events) == 2, "580 ms of silence does not end the utterance"
    feed(listener, [SILENCE] * 5, t)
    kind, start, end, n_bytes = sink.events[2]
    assert kind == "input"
    assert start == 200  # 200 ms pre-roll before the onset
    assert end == 900 + 200  # the speech ended at 900 ms; 200 ms of its silence is kept
    # When the voice stopped (the caller's wait for an answer starts there, not at end_ms).
    assert sink.inputs[0].speech_end_ms == 900 and sink.inputs[0].voice_end_ms == 900
    assert n_bytes == 2 * 8 * (end - start)  # 16-bit PCM at 8 kHz


def test_a_pause_inside_speech_does_not_split_the_utterance() -> None:
    sink = Sink()
    listener = Listener(sink)
    t = feed(listener, [LOUD] * 15)
    t = feed(listener, [SILENCE] * 15 + [LOUD] * 10, t)
    feed(listener, [SILENCE] * 40, t)
    assert [e[0] for e in sink.events] == ["onset", "confirmed", "input"]


def test_a_long_monologue_is_cut_at_the_maximum_length() -> None:
    sink = Sink()
    listener = Listener(sink, ListenerSettings(max_utterance_ms=1000, pre_roll_ms=0))
    t = feed(listener, [LOUD] * 120)
    feed(listener, [SILENCE] * 40, t)
    inputs = [e for e in sink.events if e[0] == "input"]
    assert len(inputs) == 3
    assert inputs[0][1:3] == (0, 1000) and inputs[1][1:3] == (1000, 2000)
