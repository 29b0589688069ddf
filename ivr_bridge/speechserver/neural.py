"""The neural voice: hibari-tts (Apache-2.0, ONNX, ~100x real time on one core) behind the same
``synthesize`` call as espeak.

Why a second engine: espeak-ng is robotic, and after 8 kHz µ-law a speech recogniser gets 44 % of
its words wrong against 3 % for hibari — callers (and the tester's own ears) understand the
neural voice. Only the ``heart`` voice ships inside the wheel; every other hibari voice downloads
on first use, so this module asks for the bundled file and never for a download.

hibari gives no word timings, so each word gets a share of the voiced audio in proportion to its
letters: close enough for LMNT-style ``durations`` and for marks, which only need order and sum.
One worker thread per process, like espeak: onnxruntime is told to use one thread, so a burst of
prompts queues instead of starving the event loop's core.
"""

from __future__ import annotations

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import structlog

from ivr_bridge.audio.codec import resample_pcm16
from ivr_bridge.speechserver.synth import MAX_TEXT_CHARS, Synthesis, SynthesisError, WordEvent

log = structlog.get_logger(__name__)

BUNDLED_VOICE = "heart"
"""The only hibari voice inside the wheel; the others would download (and must not)."""
SENTENCE_PAUSE_S = 0.25
"""Silence between sentences of one request (hibari renders each sentence on its own)."""
_SILENCE_FLOOR = 0.01
"""Samples quieter than this (full scale 1.0) at either end of a sentence are trimmed."""
_WORD = re.compile(r"\S+")


class NeuralVoiceUnavailable(SynthesisError):
    """hibari-tts (or its bundled voice) is not installed; the message names the fix."""


class NeuralSynthesizer:
    """hibari's ``heart`` voice on one dedicated thread; loads the model on first use (~1 s)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hibari")
        self._model: Any = None
        self._load_lock = threading.Lock()

    async def synthesize(
        self,
        text: str,
        voice: str,
        sample_rate: int,
        speed: float = 1.0,
        language: str | None = None,
    ) -> Synthesis:
        """English text in the bundled voice (the router has checked voice and language)."""
        if len(text) > MAX_TEXT_CHARS:
            raise SynthesisError(f"text longer than {MAX_TEXT_CHARS} characters")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, text, sample_rate, speed)

    def synthesize_blocking(self, text: str, sample_rate: int, speed: float = 1.0) -> Synthesis:
        """``synthesize`` on the calling thread (a synthesis worker process)."""
        if len(text) > MAX_TEXT_CHARS:
            raise SynthesisError(f"text longer than {MAX_TEXT_CHARS} characters")
        return self._run(text, sample_rate, speed)

    def prepare(self) -> None:
        """Load the model and speak once (a server that wants its first prompt fast): the first
        synthesis after loading takes ~0.6 s (phonemizer and inference set-up), more under
        load, which the bridge's speech watchdog would take for a stalled service."""
        self._ensure_loaded()
        self._run("Hello.", 8000, 1.0)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- worker thread only below ---

    def _ensure_loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                self._model = load_bundled_voice()
            return self._model

    def _run(self, text: str, sample_rate: int, speed: float) -> Synthesis:
        model = self._ensure_loaded()
        native = int(model.sample_rate)
        pause = np.zeros(int(SENTENCE_PAUSE_S * native), np.float32)
        pieces: list[np.ndarray] = []
        words: list[WordEvent] = []
        offset = 0
        rng = np.random.default_rng(0)  # the same text always sounds the same
        for sentence in model.split_sentences(text):
            for phonemes in model.phonemize(sentence):
                audio = _trim(model.from_ids(model.ids(phonemes), max(0.5, min(speed, 2.0)), rng))
                if audio.size == 0:
                    continue
                if pieces:
                    pieces.append(pause)
                    offset += pause.size
                words += _share_words(sentence, offset / native, audio.size / native)
                pieces.append(audio)
                offset += audio.size
                sentence = ""  # a sentence split in parts: its words go with the first part
        joined = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        pcm = (np.clip(joined, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        out, _ = resample_pcm16(pcm, native, sample_rate)
        scale = (len(out) / 2 / sample_rate) / (offset / native) if offset else 1.0
        words = [
            WordEvent(w.text, round(w.start_s * scale, 4), round(w.duration_s * scale, 4))
            for w in words
        ]
        return Synthesis(pcm16=out, sample_rate=sample_rate, words=words)


def load_bundled_voice() -> Any:
    """hibari's model for the bundled voice, refusing anything that would download."""
    try:
        from hibari import Hibari
        from hibari.voices import voice_path
    except ImportError as exc:
        raise NeuralVoiceUnavailable(
            f"the neural voice needs hibari-tts ({exc}); pip install hibari-tts==0.2.1, "
            f"or pick an espeak voice (leah, lily, ava, brandon, daniel, morgan)"
        ) from None
    try:
        path = voice_path(BUNDLED_VOICE, download_missing=False)
    except (FileNotFoundError, ValueError) as exc:
        raise NeuralVoiceUnavailable(f"hibari's bundled voice is missing: {exc}") from None
    model = Hibari(voice=BUNDLED_VOICE, model=path, threads=1)
    log.info("neural_voice_loaded", voice=BUNDLED_VOICE, sample_rate=model.sample_rate)
    return model


def _trim(audio: np.ndarray) -> np.ndarray:
    """Drop the near-silence hibari leaves around a sentence (it reads as dead air on a line)."""
    loud = np.flatnonzero(np.abs(audio) > _SILENCE_FLOOR)
    if loud.size == 0:
        return np.zeros(0, np.float32)
    return audio[loud[0] : loud[-1] + 1].astype(np.float32)


def _share_words(sentence: str, start_s: float, duration_s: float) -> list[WordEvent]:
    """The sentence's words over its audio, each in proportion to its letters."""
    found = _WORD.findall(sentence)
    letters = sum(len(w) for w in found)
    if not letters:
        return []
    events, at = [], start_s
    for word in found:
        share = duration_s * len(word) / letters
        events.append(WordEvent(word, round(at, 4), round(share, 4)))
        at += share
    return events
