"""The listener: the caller's inbound frames → speech onset, confirmation and whole utterances.

Runs synchronously inside the media-frame handler (one VAD call per 20 ms frame, no tasks, no
allocations beyond the µ-law decode while the line is quiet): hundreds of calls share one event
loop. All times are call-clock ms (inbound ``media.timestamp``), so endpointing behaves the same
when the simulated caller runs 20x faster than real time.

States: quiet → *onset* (first voiced frame) → *confirmed* once ``min_speech_ms`` of voiced audio
accumulated → utterance delivered after ``end_silence_ms`` of silence. An onset that goes quiet
for ``onset_gap_ms`` before confirmation was noise (a cough, a click, a short "mm"): abandoned.

While the bot is audible (``bot_audible``: a prompt playing, told by the conductor) an onset is
*judged*: webrtcvad + the energy floor call every cough and breath speech, and there a false
"speech" cuts the prompt. So a frame then counts as voiced only if webrtcvad says speech *and*
silero (``ivr_bridge.audio.silero``) agrees; silero is fed from the onset's pre-roll on, so it
has context, and frames it vetoes count as silence, so noise is abandoned after
``onset_gap_ms`` as before. silero is a window or two slower than webrtcvad to call a word's
start, so on its first agreement the voiced frames just before it (up to ``LOOKBACK_MS``) are
credited too: real speech confirms within ``min_speech_ms`` + about one window. Speech too
quiet to be the caller (``confirm_floor``: someone else in the room) never confirms. After a
rejected onset the listener stays *wary* until ``onset_gap_ms`` of webrtcvad silence: the rest
of the cough must not raise a new onset (pausing the bot again), so a new one needs silero too.

Listening ahead (``call.lookahead``, when a dialog installed one as ``ahead``): once a confirmed
utterance has been silent ``probe_after_ms`` the utterance so far is handed over to be
recognised (``on_pause``); voice after that pause supersedes it (``on_resumed``); and when the
words already answer, ``end_early`` ends the utterance after ``answered_silence_ms`` (a
complete answer) or ``sentence_silence_ms`` (a sentence that looks done) instead of
``end_silence_ms``. Nothing else changes: without an ``ahead`` the listener behaves as before.

When the bot is silent nothing is judged (webrtcvad alone, as before): nothing can be cut, a
recogniser downstream already turns noise into "no match", and a soft "yes" silero missed would
cost the caller a whole reprompt. It also keeps silero's cost (~60-100 µs per window, an engine
borrowed for the onset) to the few onsets that overlap a prompt.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from ivr_bridge.audio.codec import ULAW_BYTES_PER_MS, rms_pcm16, ulaw_to_pcm16
from ivr_bridge.audio.silero import SileroPool, SpeechConfirmer, shared_pool
from ivr_bridge.audio.vad import FRAME_BYTES, FRAME_MS, VoiceActivityDetector
from ivr_bridge.call.inputs import SpeechInput
from ivr_bridge.call.lookahead import Verdict


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    min_speech_ms: int = 200
    """Voiced audio needed before an onset counts as speech (and may interrupt the bot)."""
    end_silence_ms: int = 600
    """Silence that ends an utterance."""
    answered_silence_ms: int = 200
    """Silence that ends an utterance whose words answer the prompt (a menu option)."""
    sentence_silence_ms: int = 450
    """Silence that ends an utterance that ends as a sentence (an LLM turn): longer than the
    pauses callers make mid-sentence, shorter than the full wait."""
    probe_after_ms: int = 40
    """Silence after which the utterance so far is recognised ahead (with an ``ahead``)."""
    onset_gap_ms: int = 140
    """Silence that abandons an unconfirmed onset as noise (the bot then resumes)."""
    pre_roll_ms: int = 200
    """Audio kept from before the onset so a recogniser hears the first syllable whole."""
    max_utterance_ms: int = 15_000
    """An utterance is cut (and delivered) at this length; the next one starts at once."""
    vad_aggressiveness: int = 2
    energy_floor: int = 300
    """RMS (16-bit PCM) below which a frame is silence whatever webrtcvad says."""
    confirm: Literal["silero", "off"] = "silero"
    """Who must agree with webrtcvad while the bot is audible (``off``: nobody)."""
    confirm_threshold: float = 0.5
    """silero speech probability at or above which it agrees a frame is speech."""
    confirm_floor: int = 1000
    """While the bot is audible, an onset confirms only once one of its frames reached this
    RMS, and frames under half of it count as silence: someone else in the room or a TV is
    speech silero rightly calls speech, but ~-10 dB and more under a caller on the phone."""


LOOKBACK_MS = 100
"""Voiced audio just before silero's first agreement that is credited with it: silero calls
a word's start a window or two after webrtcvad (longer on a fricative: the "s" of "stop").
Until then those frames count as silence, and an onset waits this much longer for silero."""


class ListenerSink(Protocol):
    """Who hears about the caller's speech (the call conductor)."""

    def on_speech_onset(self, at_ms: float) -> None: ...

    def on_speech_confirmed(self, onset_ms: float, at_ms: float) -> None: ...

    def on_speech_abandoned(self, onset_ms: float, at_ms: float) -> None: ...

    def on_speech_input(self, speech: SpeechInput) -> None: ...


class PauseObserver(Protocol):
    """Who recognises ahead (``call.lookahead.LookAhead``)."""

    def on_pause(self, speech: SpeechInput, voiced_end_ms: float) -> None: ...

    def on_resumed(self) -> None: ...

    def on_delivered(self, speech: SpeechInput) -> None: ...


class Listener:
    def __init__(
        self,
        sink: ListenerSink,
        settings: ListenerSettings | None = None,
        *,
        bot_audible: Callable[[], bool] = lambda: False,
        on_rejected: Callable[[float, float], None] | None = None,
        pool: SileroPool | None = None,
    ) -> None:
        """``bot_audible``: is a prompt playing now (onsets then are judged); ``on_rejected``:
        told (onset ms, at ms) of each onset silero rejected; ``pool``: silero engines (the
        process-wide pool unless given)."""
        s = settings or ListenerSettings()
        self.settings = s
        self._sink = sink
        self._bot_audible = bot_audible
        self._on_rejected = on_rejected
        self._confirmer: SpeechConfirmer | None = None
        if s.confirm == "silero":
            self._confirmer = SpeechConfirmer(pool or shared_pool(), s.confirm_threshold)
        self._judged = False
        """The current onset needs silero's agreement (its engine is borrowed)."""
        self._wary = False
        """After a rejection, until webrtcvad hears ``onset_gap_ms`` of silence."""
        self._quiet_ms = 0
        self._vetoed = 0
        """Frames of this onset webrtcvad heard and silero vetoed."""
        self._vetoed_run_ms = 0
        self._peak = 0
        """Loudest frame (RMS) of this onset silero agreed on."""
        self.rejected_onsets = 0
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
        self.ahead: PauseObserver | None = None
        """Told of pauses and utterances (set while a dialog listens ahead)."""
        self._probed = False
        """This pause was handed to ``ahead``."""
        self._answered: Verdict | None = None
        """The words up to the current pause end the turn: a shorter end-of-utterance wait."""

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
        self._stop_judging()
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
        credit = FRAME_MS
        if self._judged or self._wary:
            voiced, credit = self._judge(voiced, ulaw)
        if not self._in_speech:
            if self._wary and (
                self._quiet_ms >= self.settings.onset_gap_ms or not self._bot_audible()
            ):
                self._stop_judging()
            if voiced:
                self._begin(at_ms, ulaw)
            else:
                self._pre_roll.append(ulaw)
            return
        self._audio.extend(ulaw)
        if voiced:
            if self._probed:
                self._probed, self._answered = False, None
                if self.ahead is not None:
                    self.ahead.on_resumed()
            self.voiced_frames += 1
            self._voiced_ms += credit
            self._silence_ms = 0
            self._last_voiced_end_ms = at_ms + FRAME_MS
            if not self._confirmed and self._voiced_ms >= self.settings.min_speech_ms:
                if self._judged and self._peak < self.settings.confirm_floor:
                    # Speech, but not the caller's (too quiet throughout): the bot must not
                    # stay paused while the TV talks on, so after a while it is rejected.
                    self._vetoed += 1
                    if self._voiced_ms >= 2 * self.settings.min_speech_ms:
                        self._abandon(at_ms + FRAME_MS)
                    return
                self._confirmed = True
                self._stop_judging()
                self._sink.on_speech_confirmed(self._onset_ms, at_ms + FRAME_MS)
        else:
            self._silence_ms += FRAME_MS
            gap_ms = self.settings.onset_gap_ms + min(self._vetoed_run_ms, LOOKBACK_MS)
            if not self._confirmed and self._silence_ms >= gap_ms:
                self._abandon(at_ms + FRAME_MS)
                return
            if self._confirmed and self._silence_ms >= self._end_wait_ms():
                self._deliver()
                self._in_speech = False
                return
            if (
                self._confirmed
                and not self._probed
                and self.ahead is not None
                and self._silence_ms >= self.settings.probe_after_ms
            ):
                self._probed = True
                self.ahead.on_pause(self._utterance(), self._last_voiced_end_ms)
        if self._confirmed and len(self._audio) >= self._max_bytes:
            self._deliver()
            self._start_ms = at_ms + FRAME_MS

    def end_early(self, voiced_end_ms: float, verdict: Verdict = "answered") -> None:
        """The words up to ``voiced_end_ms`` end the turn: if the caller has said nothing since,
        the utterance ends after the verdict's wait (now, if that has passed)."""
        if not (self._in_speech and self._confirmed) or self._last_voiced_end_ms > voiced_end_ms:
            return
        self._answered = verdict
        if self._silence_ms >= self._end_wait_ms():
            self._deliver()
            self._in_speech = False

    def _end_wait_ms(self) -> int:
        s = self.settings
        if self._answered == "answered":
            return s.answered_silence_ms
        return s.sentence_silence_ms if self._answered == "sentence" else s.end_silence_ms

    def close(self) -> None:
        """The call is over: a silero engine still borrowed goes back to the pool."""
        self._stop_judging()

    def _abandon(self, at_ms: float) -> None:
        self._in_speech = False
        self._audio.clear()
        self._sink.on_speech_abandoned(self._onset_ms, at_ms)
        if self._judged and self._vetoed:
            self._reject(at_ms)
        else:
            self._stop_judging()

    # --- Judging onsets while the bot is audible ----------------------------------------------

    def _judge(self, voiced: bool, ulaw: bytes) -> tuple[bool, int]:
        """webrtcvad's verdict on this frame and silero's together, and the ms it credits."""
        assert self._confirmer is not None
        pcm = ulaw_to_pcm16(ulaw)
        agrees = self._confirmer.feed(pcm) >= self._confirmer.threshold
        level = rms_pcm16(pcm)
        agrees = agrees and 2 * level >= self.settings.confirm_floor
        if not voiced:
            self._vetoed_run_ms = 0
            self._quiet_ms += FRAME_MS
            return False, FRAME_MS
        self._quiet_ms = 0
        if not agrees:
            self._vetoed += 1
            self._vetoed_run_ms += FRAME_MS
            return False, FRAME_MS
        credit = FRAME_MS + min(self._vetoed_run_ms, LOOKBACK_MS)
        self._vetoed_run_ms = 0
        self._peak = max(self._peak, level)
        return True, credit

    def _start_judging(self) -> bool:
        """Begin judging the onset now starting (the bot is audible); False if silero is off,
        already judging (a wary listener), or had no engine free (webrtcvad alone, then)."""
        if self._confirmer is None or not self._bot_audible():
            return False
        if not self._wary:  # (wary: silero already heard this frame; keep its stream going)
            pre_roll = [ulaw_to_pcm16(frame) for frame in self._pre_roll]
            if not self._confirmer.start(pre_roll):
                return False
            self._peak = 0
        self._wary = False
        self._judged = True
        self._vetoed = 0
        self._vetoed_run_ms = 0
        return True

    def _reject(self, at_ms: float) -> None:
        """silero vetoed the onset just abandoned: count it, stay wary of the same noise."""
        self.rejected_onsets += 1
        self._judged = False
        self._wary = True
        self._peak = 0
        if self._on_rejected is not None:
            self._on_rejected(self._onset_ms, at_ms)

    def _stop_judging(self) -> None:
        self._judged = self._wary = False
        self._quiet_ms = 0
        if self._confirmer is not None:
            self._confirmer.stop()

    # --- Utterances ---------------------------------------------------------------------------

    def _begin(self, at_ms: float, ulaw: bytes) -> None:
        credit = FRAME_MS
        agreed_already = self._wary  # a wary listener only begins on a frame silero agreed on
        if self._start_judging() and not agreed_already:
            voiced, credit = self._judge(True, ulaw)
            credit = credit if voiced else 0
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
        self._voiced_ms = credit
        self._silence_ms = 0 if credit else FRAME_MS
        self._last_voiced_end_ms = at_ms + FRAME_MS
        self._sink.on_speech_onset(at_ms)
        if self._voiced_ms >= self.settings.min_speech_ms:
            self._confirmed = True
            self._stop_judging()
            self._sink.on_speech_confirmed(at_ms, at_ms + FRAME_MS)

    def _utterance(self) -> SpeechInput:
        """The utterance so far, keeping at most ``pre_roll_ms`` of its trailing silence."""
        tail_ms = max(0.0, min(self._silence_ms, self.settings.pre_roll_ms))
        keep = len(self._audio) - int((self._silence_ms - tail_ms) * ULAW_BYTES_PER_MS)
        end_ms = self._start_ms + keep / ULAW_BYTES_PER_MS
        pcm = ulaw_to_pcm16(bytes(self._audio[: max(0, keep)]))
        return SpeechInput(pcm, self._start_ms, end_ms, speech_end_ms=end_ms - tail_ms)

    def _deliver(self) -> None:
        """Hand over the utterance (``_utterance``) and start afresh."""
        speech = self._utterance()
        self._audio.clear()
        self._voiced_ms = 0
        self._silence_ms = 0
        self._probed, self._answered = False, None
        if self.ahead is not None:
            self.ahead.on_delivered(speech)
        self._sink.on_speech_input(speech)
