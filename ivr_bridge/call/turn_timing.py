"""Where a turn's answer spends its time: the caller stops talking → the bot's first audio out.

The caller hears one number, the silence after they spoke; fixing it needs each piece of it.
The conductor stamps the moments it sees, all on the call clock (one clock, so the pieces add
up to the whole), and when the first audio of the answer goes to Twilio the turn is reported:

- ``endpointing``: the caller's voice stopped → the utterance was delivered (the end-of-speech
  wait; for a key, 0);
- ``recognition``: delivered → the words were known (0 when they were recognised ahead, at the
  pause, before the utterance was delivered; absent for keys);
- ``reply``: words known → the first text of the answer went to the speech service (the flow's
  next step, or the model's first token in an LLM turn, or a filler if the model was slow);
- ``tts``: that text → its first audio back from the speech service;
- ``release``: first audio → its first frame sent to Twilio (the playback queue);
- ``total``: voice stopped → first frame sent.

Pure: no clock of its own, no I/O; the report goes to a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PHASES = ("endpointing", "recognition", "reply", "tts", "release", "total")


@dataclass(slots=True)
class _Turn:
    voice_end_ms: float
    delivered_ms: float
    words_ms: float | None = None
    text_ms: float | None = None
    audio_ms: float | None = None


class TurnTiming:
    def __init__(self, report: Callable[[dict[str, int]], None]) -> None:
        """``report``: told each answered turn's phases in ms (``PHASES``; ``recognition``
        missing for a key)."""
        self._report = report
        self._turn: _Turn | None = None
        self._keyed = False

    def caller_turn(self, voice_end_ms: float, delivered_ms: float, *, keys: bool = False) -> None:
        """The caller's turn ended (an utterance delivered, a key pressed): a new answer is due."""
        self._turn = _Turn(voice_end_ms, max(delivered_ms, voice_end_ms))
        self._keyed = keys
        if keys:
            self._turn.words_ms = self._turn.delivered_ms

    def words_known(self, at_ms: float) -> None:
        """The dialog has the words of the utterance (a recognition result resolved)."""
        turn = self._turn
        if turn is not None and turn.words_ms is None:
            turn.words_ms = max(at_ms, turn.delivered_ms)

    def text_sent(self, at_ms: float) -> None:
        turn = self._turn
        if turn is not None and turn.text_ms is None:
            turn.text_ms = at_ms

    def first_audio(self, at_ms: float) -> None:
        turn = self._turn
        if turn is not None and turn.text_ms is not None and turn.audio_ms is None:
            turn.audio_ms = at_ms

    def released(self, at_ms: float) -> None:
        """A frame went to Twilio: the first one after a caller turn answers it."""
        turn = self._turn
        if turn is None or turn.text_ms is None:
            return  # audio already queued before the turn (a prompt still playing), or a play
        self._turn = None
        words = turn.words_ms if turn.words_ms is not None else turn.delivered_ms
        text = max(turn.text_ms, words)
        audio = max(turn.audio_ms if turn.audio_ms is not None else at_ms, text)
        phases = {
            "endpointing": turn.delivered_ms - turn.voice_end_ms,
            "recognition": words - turn.delivered_ms,
            "reply": text - words,
            "tts": audio - text,
            "release": max(0.0, at_ms - audio),
            "total": at_ms - turn.voice_end_ms,
        }
        if self._keyed:
            del phases["recognition"]
        self._report({k: round(max(0.0, v)) for k, v in phases.items()})
