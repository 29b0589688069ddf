"""Grammar recognition with pocketsphinx: small JSGF grammars, decoded off the event loop.

Why the shape:
- pocketsphinx ships only a 16 kHz en-US acoustic model. Telephone audio (8 kHz) is upsampled to
  16 kHz rather than re-parameterising the front end for 8 kHz: on our measurements the 16 kHz
  model with an empty upper band beats the same model with an 8 kHz filterbank by a wide margin.
- Digital silence (µ-law 0xFF decodes to exact zeros) wrecks the decoder's feature normalisation,
  so a fixed, quiet noise floor is mixed in, like the hiss of a real line.
- A ``Decoder`` is not thread-safe and loading one takes ~0.1 s, so each executor thread owns one
  decoder and keeps the grammars it compiled as named searches in a bounded LRU.
- Confidence is a heuristic likelihood ratio: the same audio is decoded a second time with a free
  phone loop (``allphone``, no grammar), and the grammar path's score is compared with it. Speech
  that is in the grammar scores about as well as the phone loop (log-score ratio 0.65-1.2 on our
  synthetic voices); other speech forced into the grammar mostly scores worse (1.2-1.6). The
  ratio maps linearly onto 0..1 (``_confidence``); below ``REJECT_BELOW`` the choice is dropped.
  pocketsphinx's lattice posterior (``bestpath``) was tried first: with filler loops it cost
  0.3-2 s per utterance and picked worse paths, so the lattice pass is off.
- A hypothesis that does not parse as a complete grammar sentence (the decoder returns the best
  partial path when nothing reached the end) and silence give no choice and confidence 0.
"""

from __future__ import annotations

import asyncio
import math
import random
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from ivr_bridge.audio.codec import mix_pcm16, resample_pcm16, rms_pcm16
from ivr_bridge.recognition.grammar import (
    GrammarPlan,
    clean_hypothesis,
    digits_jsgf,
    match_choice,
    match_digits,
    plan_grammar,
    plan_to_jsgf,
)
from ivr_bridge.recognition.models import (
    GrammarChoice,
    GrammarError,
    Recognition,
    RecognizerUnavailable,
)

log = structlog.get_logger(__name__)

ENGINE = "pocketsphinx"
MODEL_RATE = 16000
SILENCE_RMS = 40
"""Below this RMS (16-bit) the utterance is treated as silence without decoding."""
NOISE_FLOOR_RMS = 24
REJECT_BELOW = 0.25
"""Confidence under which a matched phrase is reported as no match (log-score ratio above 1.25).

Measured on measure.py (9 voices, both menus, µ-law): 3/127 correct answers fall below it and
5/54 out-of-grammar utterances score above it (highest 0.39). Flows wanting fewer false accepts
set a higher ``min_confidence``."""
_PHONE_LOOP = "__phones__"
DECODER_OPTIONS: dict[str, Any] = {"loglevel": "FATAL", "bestpath": False, "wip": 0.01}
"""wip 0.01 (default 0.65) inserts fewer filler words: on measure.py out-of-grammar acceptance
fell from 6/24 to 0/24 at the same menu accuracy. No lattice pass (see the module docstring)."""
_DIGITS_KEY = ("__digits__",)


def _load_pocketsphinx() -> Any:
    try:
        import pocketsphinx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RecognizerUnavailable(
            f"grammar recognition needs pocketsphinx: pip install 'pocketsphinx>=5.1' ({exc})"
        ) from None
    return pocketsphinx


@dataclass(slots=True)
class _CompiledGrammar:
    search: str
    plan: GrammarPlan | None
    """None for the digits grammar."""


class _Worker:
    """One decoder and its compiled grammars; used only by the thread that created it."""

    def __init__(self, ps: Any, max_grammars: int) -> None:
        config = ps.Config(
            hmm=ps.get_model_path("en-us/en-us"),
            dict=ps.get_model_path("en-us/cmudict-en-us.dict"),
            lm=None,
            samprate=MODEL_RATE,
            **DECODER_OPTIONS,
        )
        self.decoder = ps.Decoder(config)
        self.decoder.add_allphone_file(_PHONE_LOOP, ps.get_model_path("en-us/en-us-phone.lm.bin"))
        self._grammars: OrderedDict[tuple[object, ...], _CompiledGrammar] = OrderedDict()
        self._max_grammars = max_grammars
        self._counter = 0

    def grammar(
        self, key: tuple[object, ...], choices: Sequence[GrammarChoice]
    ) -> _CompiledGrammar:
        compiled = self._grammars.get(key)
        if compiled is not None:
            self._grammars.move_to_end(key)
            return compiled
        if key == _DIGITS_KEY:
            plan, jsgf = None, digits_jsgf()
        else:
            plan = self._pronounceable(plan_grammar(choices))
            jsgf = plan_to_jsgf(plan)
        self._counter += 1
        compiled = _CompiledGrammar(f"g{self._counter}", plan)
        self.decoder.add_jsgf_string(compiled.search, jsgf)
        self._grammars[key] = compiled
        while len(self._grammars) > self._max_grammars:
            _, evicted = self._grammars.popitem(last=False)
            self.decoder.remove_search(evicted.search)
        return compiled

    def _pronounceable(self, plan: GrammarPlan) -> GrammarPlan:
        """Drop phrases with words missing from the dictionary; fail if a choice loses all."""
        unknown = {w for w in plan.words if self.decoder.lookup_word(w) is None}
        if not unknown:
            return plan

        def known(phrase: str) -> bool:
            return not unknown.intersection(phrase.split())

        phrases = {p: c for p, c in plan.phrases.items() if known(p)}
        lost = set(plan.phrases.values()) - set(phrases.values())
        if lost:
            raise GrammarError(
                f"choices {sorted(lost)} have no phrase the recogniser can pronounce; "
                f"unknown words: {sorted(unknown)}"
            )
        log.warning("grammar_words_unknown", words=sorted(unknown))
        return GrammarPlan(
            phrases,
            tuple(f for f in plan.leading if known(f)),
            tuple(f for f in plan.trailing if known(f)),
        )

    def decode(self, search: str, pcm16_16k: bytes) -> tuple[str, float]:
        """Text of the best grammar path and its confidence ("" and 0 when there is none)."""
        text, grammar_score = self._best(search, pcm16_16k)
        if not text:
            return "", 0.0
        _, free_score = self._best(_PHONE_LOOP, pcm16_16k)
        return text, _confidence(grammar_score, free_score)

    def _best(self, search: str, audio: bytes) -> tuple[str, float]:
        decoder = self.decoder
        decoder.activate_search(search)
        decoder.start_utt()
        decoder.process_raw(audio, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        if hyp is None:
            return "", 0.0
        return hyp.hypstr, float(hyp.best_score)


def _confidence(grammar_score: float, free_score: float) -> float:
    """Map the grammar/phone-loop score ratio onto 0..1 (see the module docstring).

    The bindings report ``best_score`` as a probability-like value in (0, 1]; the ratio of their
    logarithms is 1 when the grammar explains the audio as well as free phones do.
    """
    if not 0.0 < grammar_score < 1.0 or not 0.0 < free_score < 1.0:
        return 0.0
    ratio = math.log(grammar_score) / math.log(free_score)
    return max(0.0, min(1.0, (1.4 - ratio) / 0.6))


class GrammarRecognizer:
    """Recognises one of a few expected phrases; safe to share across calls and event loops."""

    engine = ENGINE

    def __init__(self, *, max_workers: int = 1, max_grammars: int = 32) -> None:
        self._ps = _load_pocketsphinx()
        self._max_grammars = max_grammars
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="sphinx")
        self._local = threading.local()
        self._noise = _noise_floor(MODEL_RATE, NOISE_FLOOR_RMS)

    async def recognize(
        self, pcm16: bytes, sample_rate: int, choices: Sequence[GrammarChoice]
    ) -> Recognition:
        """Which choice the caller said (``choice`` None for silence, noise or anything else)."""
        plan_grammar(choices)  # fail fast, on the caller's task, for an unusable grammar
        key: tuple[object, ...] = tuple((c.id, tuple(c.phrases)) for c in choices)
        return await self._run(pcm16, sample_rate, key, tuple(choices))

    async def recognize_digits(self, pcm16: bytes, sample_rate: int) -> Recognition:
        """A number spoken digit by digit: ``choice`` is the digit string ("123") or None."""
        return await self._run(pcm16, sample_rate, _DIGITS_KEY, ())

    async def _run(
        self,
        pcm16: bytes,
        sample_rate: int,
        key: tuple[object, ...],
        choices: tuple[GrammarChoice, ...],
    ) -> Recognition:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._recognize_sync, pcm16, sample_rate, key, choices
        )

    async def warm_up(self) -> None:
        """Load a decoder now, so the first spoken menu does not wait for the acoustic model."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._worker)

    def close(self) -> None:
        """Stop the worker threads (tests and process exit only)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- executor threads only below ---

    def _worker(self) -> _Worker:
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            worker = _Worker(self._ps, self._max_grammars)
            self._local.worker = worker
        return worker

    def _recognize_sync(
        self,
        pcm16: bytes,
        sample_rate: int,
        key: tuple[object, ...],
        choices: tuple[GrammarChoice, ...],
    ) -> Recognition:
        started = time.perf_counter()
        if len(pcm16) < 2 or rms_pcm16(pcm16[: len(pcm16) // 2 * 2]) < SILENCE_RMS:
            return Recognition("", None, 0.0, ENGINE, _ms_since(started), "only silence")
        worker = self._worker()
        compiled = worker.grammar(key, choices)
        audio = self._prepare(pcm16, sample_rate)
        text, confidence = worker.decode(compiled.search, audio)
        if compiled.plan is None:
            choice = match_digits(text)
        else:
            choice = match_choice(text, compiled.plan)
        reason = ""
        if choice is None:
            reason = rejection_without_match(text, compiled.plan is None)
        elif confidence < REJECT_BELOW:
            reason = (
                f"matched {choice!r} but the decoder's confidence {confidence:.2f} is below "
                f"its rejection threshold {REJECT_BELOW:.2f}"
            )
        if reason:
            # Reported low even when the words matched, so a caller's own phrase matching on
            # ``text`` sees that the recogniser did not believe it.
            choice, confidence = None, min(confidence, REJECT_BELOW / 2)
        return Recognition(
            " ".join(text.split()), choice, confidence, ENGINE, _ms_since(started), reason
        )

    def _prepare(self, pcm16: bytes, sample_rate: int) -> bytes:
        """Trimmed 16 kHz PCM with the noise floor mixed in (see the module docstring)."""
        pcm = trim_silence(pcm16[: len(pcm16) // 2 * 2], sample_rate)
        audio, _ = resample_pcm16(pcm, sample_rate, MODEL_RATE)
        noise = self._noise * (len(audio) // len(self._noise) + 1)
        return mix_pcm16(audio, noise[: len(audio)])


def rejection_without_match(text: str, digits: bool) -> str:
    """Why a decode selected nothing: no words at all, or words that are not one answer."""
    if not clean_hypothesis(text):
        return "no words decoded"
    if digits:
        return "not a number read digit by digit"
    return "no menu option's words in it (fillers aside)"


def trim_silence(pcm16: bytes, sample_rate: int, margin_ms: int = 40) -> bytes:
    """Cut leading/trailing quiet audio (keeping ``margin_ms``; 0 measured best, 40 and 100 worse).

    Utterances cut by VAD carry hundreds of ms of line silence; left in, the decoder spends it on
    filler words and the phone loop explains it better than the grammar, so both the answer and
    the confidence suffer (measured: "agent please" with 300 ms silence each side decoded as
    "uh goodbye please"). Quiet = frame RMS under 1/20 of the loudest 20 ms frame. With the trim,
    padded and unpadded utterances score the same (25/30 on a 4-option menu, 5 voices).
    """
    frame = sample_rate // 50 * 2
    levels = [rms_pcm16(pcm16[i : i + frame]) for i in range(0, len(pcm16) - frame + 1, frame)]
    if not levels:
        return pcm16
    threshold = max(SILENCE_RMS, max(levels) // 20)
    loud = [i for i, level in enumerate(levels) if level >= threshold]
    if not loud:
        return pcm16
    margin = margin_ms // 20
    start = max(0, loud[0] - margin) * frame
    end = min(len(levels), loud[-1] + 1 + margin) * frame
    return pcm16[start:end] if end < len(levels) * frame else pcm16[start:]


def _noise_floor(sample_rate: int, rms: int) -> bytes:
    """One second of fixed Gaussian noise (seeded: recognition stays deterministic)."""
    rng = random.Random(8000)
    samples = [max(-32768, min(32767, round(rng.gauss(0.0, rms)))) for _ in range(sample_rate)]
    return struct.pack(f"<{len(samples)}h", *samples)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


_recognizer: GrammarRecognizer | None = None
_recognizer_lock = threading.Lock()


def get_grammar_recognizer() -> GrammarRecognizer:
    """The process-wide grammar recogniser (created on first use)."""
    global _recognizer
    with _recognizer_lock:
        if _recognizer is None:
            _recognizer = GrammarRecognizer()
        return _recognizer
