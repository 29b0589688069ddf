"""Text to 16-bit PCM with word timings, via libespeak-ng on one dedicated worker thread.

espeak-ng keeps global state (voice, rate, pitch, callback), so every call is serialised on a
single-thread executor owned by the process-wide :func:`get_synthesizer`; the event loop only
awaits. Callers get :class:`Synthesis` at the sample rate they asked for (espeak renders 22050 Hz,
resampled with :func:`ivr_bridge.audio.codec.resample_pcm16`). Cancelling the awaiting task aborts
the synthesis in progress at the next espeak callback, so a reset never waits for a long sentence.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from ivr_bridge.audio.codec import resample_pcm16
from ivr_bridge.errors import SpeechError
from ivr_bridge.speechserver import espeak_lib
from ivr_bridge.speechserver.voices import VoiceProfile, get_voice, resolve_espeak_voice

log = structlog.get_logger(__name__)

MAX_TEXT_CHARS = 5000


@dataclass(frozen=True, slots=True)
class WordEvent:
    """One spoken word: ``start_s`` from the start of the synthesis, duration up to the next."""

    text: str
    start_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class Synthesis:
    pcm16: bytes
    """Little-endian signed 16-bit mono PCM."""
    sample_rate: int
    words: list[WordEvent] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.pcm16) / 2 / self.sample_rate


class SynthesisError(SpeechError):
    """espeak refused the request (unknown voice, library failure)."""


class SynthesisAborted(SpeechError):
    """Raised on the worker thread when the awaiting task was cancelled."""


@dataclass(slots=True)
class _Job:
    """State the espeak callback fills in; owned by the worker thread while it runs."""

    cancel: threading.Event
    stopped_early: bool = False
    """The callback told espeak to stop because the caller cancelled."""
    chunks: list[bytes] = field(default_factory=list)
    word_marks: list[tuple[int, int, int]] = field(default_factory=list)
    """(sample index, 1-based text position, length in characters) per espeak word event."""


class EspeakSynthesizer:
    """Serialises all espeak-ng work on one thread; safe to share across event loops."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._lib: Any = None
        self._native_rate = 0
        self._job: _Job | None = None
        self.aborted_jobs = 0
        """Syntheses cut short (or skipped) because their caller cancelled; for monitoring."""
        self._callback = espeak_lib.SynthCallback(self._on_audio)

    async def synthesize(
        self,
        text: str,
        voice: str,
        sample_rate: int,
        speed: float = 1.0,
        language: str | None = None,
    ) -> Synthesis:
        """Speak ``text`` with a catalogue voice id (or a raw espeak voice name like ``en+m3``).

        ``speed`` scales the voice's speaking rate (1.0 = normal); ``language`` (ISO 639-1) picks
        the espeak language when espeak has it, keeping the voice's variant.
        """
        if len(text) > MAX_TEXT_CHARS:
            raise SynthesisError(f"text longer than {MAX_TEXT_CHARS} characters")
        profile = get_voice(voice)
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, self._run, text, voice, profile, speed, language, sample_rate, cancel
        )
        try:
            return await future
        except asyncio.CancelledError:
            cancel.set()
            raise

    def prepare(self) -> None:
        """Load espeak-ng now, on the calling thread (a process that forks per synthesis)."""
        self._ensure_initialised()

    def synthesize_blocking(
        self,
        text: str,
        voice: str,
        sample_rate: int,
        speed: float = 1.0,
        language: str | None = None,
    ) -> Synthesis:
        """``synthesize`` on the calling thread (a synthesis worker process, whose only espeak
        user is that thread)."""
        if len(text) > MAX_TEXT_CHARS:
            raise SynthesisError(f"text longer than {MAX_TEXT_CHARS} characters")
        profile = get_voice(voice)
        return self._run(text, voice, profile, speed, language, sample_rate, threading.Event())

    def synthesize_now(self, text: str, voice: str, sample_rate: int, speed: float = 1.0) -> bytes:
        """Synthesise on the calling thread, blocking; 16-bit PCM at ``sample_rate``."""
        profile = get_voice(voice)
        result = self._run(text, voice, profile, speed, None, sample_rate, threading.Event())
        return result.pcm16

    def shutdown(self) -> None:
        """Stop the worker thread (tests and process exit only)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- worker thread only below ---

    def _ensure_initialised(self) -> None:
        if self._lib is not None:
            return
        lib = espeak_lib.load()
        rate = lib.espeak_Initialize(
            espeak_lib.AUDIO_OUTPUT_SYNCHRONOUS, 0, espeak_lib.data_path().encode(), 0
        )
        if rate <= 0:
            raise SynthesisError("espeak_Initialize failed")
        lib.espeak_SetSynthCallback(self._callback)
        espeak_lib.seed_random(lib)
        self._lib, self._native_rate = lib, rate
        log.info("espeak_initialised", sample_rate=rate)

    def _run(
        self,
        text: str,
        voice: str,
        profile: VoiceProfile | None,
        speed: float,
        language: str | None,
        sample_rate: int,
        cancel: threading.Event,
    ) -> Synthesis:
        if cancel.is_set():
            self.aborted_jobs += 1
            raise SynthesisAborted
        self._ensure_initialised()
        lib = self._lib
        self._select_voice(voice, profile, language)
        base_rate = profile.rate_wpm if profile else espeak_lib.DEFAULT_RATE_WPM
        rate = int(base_rate * max(0.25, min(speed, 4.0)))
        rate = max(espeak_lib.MIN_RATE_WPM, min(rate, espeak_lib.MAX_RATE_WPM))
        lib.espeak_SetParameter(espeak_lib.PARAM_RATE, rate, 0)
        # Always set pitch: espeak keeps the previous call's value otherwise.
        lib.espeak_SetParameter(espeak_lib.PARAM_PITCH, profile.pitch if profile else 50, 0)
        lib.espeak_SetParameter(espeak_lib.PARAM_RANGE, profile.pitch_range if profile else 50, 0)
        job = _Job(cancel=cancel)
        self._job = job
        # The callback is espeak's global state: point it at this instance for every request, so
        # a second instance (a test) can never leave espeak calling a callback since freed.
        lib.espeak_SetSynthCallback(self._callback)
        try:
            encoded = text.encode("utf-8") + b"\0"
            status = lib.espeak_Synth(
                encoded,
                len(encoded),
                0,
                espeak_lib.POS_CHARACTER,
                0,
                espeak_lib.ESPEAK_CHARS_UTF8,
                None,
                None,
            )
        finally:
            self._job = None
        if job.stopped_early:
            self.aborted_jobs += 1
            raise SynthesisAborted
        if cancel.is_set():
            raise SynthesisAborted
        if status != espeak_lib.EE_OK:
            raise SynthesisError(f"espeak_Synth failed with status {status}")
        return _finish(text, b"".join(job.chunks), self._native_rate, job.word_marks, sample_rate)

    def _select_voice(self, voice: str, profile: VoiceProfile | None, language: str | None) -> None:
        name = resolve_espeak_voice(profile, voice, language)
        if self._lib.espeak_SetVoiceByName(name.encode()) == espeak_lib.EE_OK:
            return
        if profile is None:
            raise SynthesisError(f"unknown voice {voice!r}")
        # Language not known to espeak by that name: fall back to the voice's own language,
        # selected by properties so the gender still matches.
        spec = espeak_lib.VoiceSpec(
            languages=profile.espeak_language.encode(),
            gender=profile.espeak_gender,
            age=0,
            variant=0,
        )
        log.warning("espeak_language_unavailable", language=language, voice=voice)
        if self._lib.espeak_SetVoiceByProperties(ctypes.byref(spec)) != espeak_lib.EE_OK:
            raise SynthesisError(f"espeak cannot select a voice for {voice!r}")

    def _on_audio(self, wav: Any, num_samples: int, events: Any) -> int:
        job = self._job
        if job is None:
            return 0
        if num_samples > 0 and wav:
            job.chunks.append(ctypes.string_at(wav, num_samples * 2))
        index = 0
        while events[index].type != espeak_lib.EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == espeak_lib.EVENT_WORD:
                job.word_marks.append((event.sample, event.text_position, event.length))
            index += 1
        if job.cancel.is_set():
            job.stopped_early = True
            return 1
        return 0


def _finish(
    text: str,
    pcm: bytes,
    native_rate: int,
    marks: list[tuple[int, int, int]],
    sample_rate: int,
) -> Synthesis:
    """Resample and turn word marks into words that tile the audio (last word runs to the end)."""
    out, _ = resample_pcm16(pcm, native_rate, sample_rate)
    total_s = len(out) / 2 / sample_rate
    starts = [min(sample / native_rate, total_s) for sample, _, _ in marks]
    words: list[WordEvent] = []
    for i, (_, position, length) in enumerate(marks):
        word = text[max(position - 1, 0) : max(position - 1, 0) + length].strip()
        if not word:
            continue
        end = starts[i + 1] if i + 1 < len(starts) else total_s
        words.append(WordEvent(word, round(starts[i], 4), round(max(end - starts[i], 0.0), 4)))
    return Synthesis(pcm16=out, sample_rate=sample_rate, words=words)


_synthesizer: EspeakSynthesizer | None = None
_synthesizer_lock = threading.Lock()


def get_synthesizer() -> EspeakSynthesizer:
    """The process-wide synthesizer (espeak-ng state is global, so there is exactly one)."""
    global _synthesizer
    with _synthesizer_lock:
        if _synthesizer is None:
            _synthesizer = EspeakSynthesizer()
        return _synthesizer
