"""Voice activity on the caller's line: one webrtcvad decision per 20 ms µ-law frame.

Telephone audio already is 8 kHz, which webrtcvad accepts as is, so a frame costs one µ-law
decode and one VAD call: no resampling, no buffering on the normal path. An energy floor in
front of webrtcvad stops quiet line hiss and comfort noise (which webrtcvad happily calls
speech) from pausing the bot.
"""

from __future__ import annotations

import webrtcvad

from ivr_bridge.audio.codec import SAMPLE_RATE, ULAW_BYTES_PER_MS, rms_pcm16, ulaw_to_pcm16

FRAME_MS = 20
FRAME_BYTES = FRAME_MS * ULAW_BYTES_PER_MS
"""One Twilio media frame of µ-law (160 bytes)."""


class VoiceActivityDetector:
    """Speech or not, per 20 ms frame. Holds one webrtcvad instance (cheap; one per call)."""

    def __init__(self, *, aggressiveness: int = 2, energy_floor: int = 300) -> None:
        if not 0 <= aggressiveness <= 3:
            raise ValueError("aggressiveness is 0 (least) .. 3 (most aggressive)")
        self._vad = webrtcvad.Vad(aggressiveness)
        self._energy_floor = energy_floor
        self._partial = bytearray()
        """Bytes of an odd-sized frame waiting for the rest of their 20 ms."""

    def is_speech(self, ulaw: bytes) -> bool:
        """Classify one 20 ms frame (160 bytes of µ-law)."""
        pcm = ulaw_to_pcm16(ulaw)
        if rms_pcm16(pcm) < self._energy_floor:
            return False
        return bool(self._vad.is_speech(pcm, SAMPLE_RATE))

    def frames(self, ulaw: bytes) -> list[bytes]:
        """Cut arbitrary-sized audio into whole 20 ms frames, carrying the remainder over.

        Twilio sends 20 ms frames, so this is the rare path: the caller checks the size first.
        """
        self._partial.extend(ulaw)
        whole = len(self._partial) - len(self._partial) % FRAME_BYTES
        out = [bytes(self._partial[i : i + FRAME_BYTES]) for i in range(0, whole, FRAME_BYTES)]
        del self._partial[:whole]
        return out
