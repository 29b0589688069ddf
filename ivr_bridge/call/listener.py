"""The listener: the caller's inbound frames → speech onset, confirmation and whole utterances.

Runs synchronously inside the media-frame handler (one VAD call per 20 ms frame, no tasks, no
allocations beyond the µ-law decode while the line is quiet): hundreds of calls share one event
loop. All times are call-clock ms (inbound ``media.timestamp``), so endpointing behaves the same
when the simulated caller runs 20x faster than real time.

States: quiet → *onset* (first voiced frame) → *confirmed* once ``min_speech_ms`` of voiced audio
accumulated → utterance delivered after ``end_silence_ms`` of silence. An onset that goes quiet
for ``onset_gap_ms`` before confirmation was noise (a cough, a click, a short "mm"): abandoned.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS, ulaw_to_pcm16
from ivr_bridge.audio.vad import FRAME_BYTES, FRAME_MS, VoiceActivityDetector
from ivr_bridge.call.inputs import SpeechInput


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    min_speech_ms: int = 200
    """Voiced audio needed before an onset counts as speech (and may interrupt the bot)."""
    end_silence_ms: int = 600
    """Silence that ends an utterance."""
    onset_gap_ms: int = 140
    """Silence that abandons an unconfirmed onset as noise (the bot then resumes)."""
    pre_roll_ms: int = 200
    """Audio kept from before the onset so a recogniser hears the first syllable whole."""
    max_utterance_ms: int = 15_000
    """An utterance is cut (and delivered) at this length; the next one starts at once."""
    vad_aggressiveness: int = 2
    energy_floor: int = 300
    """RMS (16-bit PCM) below which a frame is silence whatever webrtcvad says."""


class ListenerSink(Protocol):
    """Who hears about the caller's speech (the call conductor)."""

    def on_speech_onset(self, at_ms: float) -> None: ...

    def on_speech_confirmed(self, onset_ms: float, at_ms: float) -> None: ...

    def on_speech_abandoned(self, onset_ms: float, at_ms: float) -> None: ...

    def on_speech_input(self, speech: SpeechInput) -> None: ...


class Listener:
    def __init__(self, sink: ListenerSink, settings: ListenerSettings | None = None) -> None:
        s = settings or ListenerSettings()
        self.settings = s
        self._sink = sink
        self._vad = VoiceActivityDetector(
            aggressiveness=s.vad_aggressiveness, energy_floor=s.energy_floor
        )
        self._pre_roll: deque[bytes] = deque(maxlen=max(0, s.pre_roll_ms // FRAME_MS))
        self._audio = bytearray()
        self._max_bytes = s.max_utterance_ms * ULAW_BYTES_PER_MS
        self._in_speech = False
        self._confirmed = False
        self._onset_ms = 0.0
        self._start_ms = 0.0
        self._voiced_ms = 0
        self._silence_ms = 0
        self._last_voiced_end_ms = 0.0
        self.frames = 0
        self.voiced_frames = 0

    def feed(self, at_ms: float, ulaw: bytes) -> None:
        """One inbound media payload stamped ``at_ms`` (normally exactly one 20 ms frame)."""
        if len(ulaw) == FRAME_BYTES:
            self._frame(at_ms, ulaw)
            return
        for index, frame in enumerate(self._vad.frames(ulaw)):
            self._frame(at_ms + index * FRAME_MS, frame)

    def end_turn(self, at_ms: float) -> None:
        """The caller pressed a key: whatever they were saying is over now. A confirmed
        utterance is delivered as it stands (nothing is lost); an unconfirmed onset was noise."""
        if not self._in_speech:
            return
        self._in_speech = False
        if self._confirmed:
            self._deliver()
        else:
            self._audio.clear()
            self._sink.on_speech_abandoned(self._onset_ms, at_ms)

    def _frame(self, at_ms: float, ulaw: bytes) -> None:
        self.frames += 1
        voiced = self._vad.is_speech(ulaw)
        if not self._in_speech:
            if voiced:
                self._begin(at_ms, ulaw)
            else:
                self._pre_roll.append(ulaw)
            return
        self._audio.extend(ulaw)
        if voiced:
            self.voiced_frames += 1
            self._voiced_ms += FRAME_MS
            self._silence_ms = 0
            self._last_voiced_end_ms = at_ms + FRAME_MS
            if not self._confirmed and self._voiced_ms >= self.settings.min_speech_ms:
                self._confirmed = True
                self._sink.on_speech_confirmed(self._onset_ms, at_ms + FRAME_MS)
        else:
            self._silence_ms += FRAME_MS
            if not self._confirmed and self._silence_ms >= self.settings.onset_gap_ms:
                self._in_speech = False
                self._audio.clear()
                self._sink.on_speech_abandoned(self._onset_ms, at_ms + FRAME_MS)
                return
            if self._confirmed and self._silence_ms >= self.settings.end_silence_ms:
                self._deliver()
                self._in_speech = False
                return
        if self._confirmed and len(self._audio) >= self._max_bytes:
            self._deliver()
            self._start_ms = at_ms + FRAME_MS

    def _begin(self, at_ms: float, ulaw: bytes) -> None:
        self.voiced_frames += 1
        self._in_speech = True
        self._confirmed = False
        self._onset_ms = at_ms
        self._start_ms = at_ms - len(self._pre_roll) * FRAME_MS
        self._audio.clear()
        for frame in self._pre_roll:
            self._audio.extend(frame)
        self._pre_roll.clear()
        self._audio.extend(ulaw)
        self._voiced_ms = FRAME_MS
        self._silence_ms = 0
        self._last_voiced_end_ms = at_ms + FRAME_MS
        self._sink.on_speech_onset(at_ms)
        if self._voiced_ms >= self.settings.min_speech_ms:
            self._confirmed = True
            self._sink.on_speech_confirmed(at_ms, at_ms + FRAME_MS)

    def _deliver(self) -> None:
        """Hand over the utterance, keeping at most ``pre_roll_ms`` of its trailing silence."""
        tail_ms = max(0.0, min(self._silence_ms, self.settings.pre_roll_ms))
        keep = len(self._audio) - int((self._silence_ms - tail_ms) * ULAW_BYTES_PER_MS)
        end_ms = self._start_ms + keep / ULAW_BYTES_PER_MS
        pcm = ulaw_to_pcm16(bytes(self._audio[: max(0, keep)]))
        self._audio.clear()
        self._voiced_ms = 0
        self._silence_ms = 0
        self._sink.on_speech_input(SpeechInput(pcm, self._start_ms, end_ms))
