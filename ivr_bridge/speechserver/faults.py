"""Fault injection for the embedded speech server: the failures a bridge must survive, on cue.

Each knob lives on ``SpeechServerConfig`` (``IVR_SPEECH_FAULT_*``), read per session so a test can
change it between calls:

- ``fault_error_after_ms`` / ``fault_close_after_ms``: after that much session audio, an error
  envelope (then close), or a close with ``fault_close_code``;
- ``fault_stall_after_ms``: after that much audio the session goes silent for good (no audio, no
  acknowledgements) while its socket stays open and answers pings: a hung synthesiser;
- ``fault_ignore_reset``: ``reset`` drops text and audio but is never acknowledged;
- ``fault_first_sessions``: the faults hit only the first N sessions this server opens (a
  transient failure a fresh session recovers from); unset, every session.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr_bridge.speechserver.config import SpeechServerConfig


@dataclass(frozen=True, slots=True)
class Faults:
    config: SpeechServerConfig
    active: bool
    """This session is one the faults apply to."""

    @classmethod
    def for_session(cls, config: SpeechServerConfig, session_number: int) -> Faults:
        first = config.fault_first_sessions
        return cls(config, first is None or session_number <= first)

    def error_due(self, sent_ms: float) -> bool:
        after = self.config.fault_error_after_ms
        return self.active and after is not None and sent_ms >= after

    def close_due(self, sent_ms: float) -> bool:
        after = self.config.fault_close_after_ms
        return self.active and after is not None and sent_ms >= after

    def stall_due(self, sent_ms: float) -> bool:
        after = self.config.fault_stall_after_ms
        return self.active and after is not None and sent_ms >= after

    @property
    def ignores_reset(self) -> bool:
        return self.active and self.config.fault_ignore_reset
