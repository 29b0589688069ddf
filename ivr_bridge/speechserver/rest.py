"""LMNT's REST surface: voice list/info and one-shot synthesis (streamed bytes or JSON).

Every response carries a ``request-id`` header (the SDK stamps it onto parsed models) and every
error uses LMNT's envelope ``{"error": {"type", "message"}}``, which the SDK maps to
``APIStatusError.type``. ``mp3``/``aac``/``webm`` need encoders we do not ship and are refused;
the default format is ``wav`` (LMNT's is mp3).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ivr_bridge.speechserver.audio_format import encode, pcm_wav_file, ulaw_wav_header
from ivr_bridge.speechserver.keys import CONFIG_KEY, SYNTH_KEY
from ivr_bridge.speechserver.protocol import (
    SAMPLE_RATES,
    ErrorType,
    LmntRequestRefused,
    new_request_id,
    rest_error,
)
from ivr_bridge.speechserver.synth import MAX_TEXT_CHARS, Synthesis, SynthesisError
from ivr_bridge.speechserver.text_buffer import TextBuffer
from ivr_bridge.speechserver.voices import get_voice, list_voices

log = structlog.get_logger(__name__)

REST_FORMATS = ("wav", "ulaw", "pcm_s16le", "pcm_f32le")
_STATUS: dict[ErrorType, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "payment_required_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "internal_server_error": 500,
}
_CONTENT_TYPES = {
    "wav": "audio/wav",
    "ulaw": "audio/wav",
    "pcm_s16le": "application/octet-stream",
    "pcm_f32le": "application/octet-stream",
}
REQUEST_ID_KEY = web.RequestKey("request_id", str)


class SpeechRequest(BaseModel):
    """Body of ``POST /v1/ai/speech`` and ``/v1/ai/speech/bytes`` (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    voice: str
    format: str = "wav"
    sample_rate: int | None = None
    language: str | None = None
    return_timestamps: bool = False
    speed: float = Field(default=1.0, gt=0.2, le=4.0)

    def effective_sample_rate(self) -> int:
        if self.sample_rate is not None:
            return self.sample_rate
        return 8000 if self.format == "ulaw" else 24000


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id on every response; refusals and HTTP errors as LMNT's error envelope."""
    request_id = new_request_id()
    request[REQUEST_ID_KEY] = request_id
    try:
        response = await handler(request)
    except LmntRequestRefused as exc:
        response = _error_response(exc.error_type, exc.message, request_id)
    except SynthesisError as exc:
        log.error("rest_synthesis_failed", request_id=request_id, error=str(exc))
        response = _error_response("internal_server_error", f"synthesis failed: {exc}", request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind: ErrorType = "not_found_error" if exc.status == 404 else "invalid_request_error"
        response = _error_response(kind, exc.reason, request_id, status=exc.status)
    if not response.prepared:
        response.headers["request-id"] = request_id
    return response


def _error_response(
    error_type: ErrorType, message: str, request_id: str, status: int | None = None
) -> web.Response:
    body = rest_error(error_type, message, request_id)
    return web.json_response(body, status=status or _STATUS[error_type])


def _check_key(request: web.Request) -> None:

    if not request.app[CONFIG_KEY].accepts_key(request.headers.get("X-API-Key", "")):
        raise LmntRequestRefused("authentication_error", "invalid or missing X-API-Key")


async def list_voices_handler(request: web.Request) -> web.Response:
    _check_key(request)
    owner = request.query.get("owner", "all")
    starred = request.query.get("starred", "false").lower() == "true"
    voices = [] if owner == "me" or starred else [v.to_api() for v in list_voices()]
    return web.json_response(voices)


async def voice_info_handler(request: web.Request) -> web.Response:
    _check_key(request)
    voice = get_voice(request.match_info["voice_id"])
    if voice is None:
        raise LmntRequestRefused(
            "not_found_error", f"voice {request.match_info['voice_id']!r} not found"
        )
    return web.json_response(voice.to_api())


async def _parse_speech_request(request: web.Request) -> SpeechRequest:
    _check_key(request)
    try:
        if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            data: Any = dict(await request.post())
        else:
            data = await request.json()
        body = SpeechRequest.model_validate(data)
    except (json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise LmntRequestRefused("invalid_request_error", f"{where}: {first['msg']}") from exc
        raise LmntRequestRefused("invalid_request_error", "body must be JSON") from exc
    if body.format not in REST_FORMATS:
        raise LmntRequestRefused(
            "invalid_request_error",
            f"format {body.format!r} is not supported; use one of {', '.join(REST_FORMATS)}",
        )
    if body.effective_sample_rate() not in SAMPLE_RATES:
        raise LmntRequestRefused(
            "invalid_request_error", f"sample_rate {body.sample_rate} not supported"
        )
    if get_voice(body.voice) is None:
        raise LmntRequestRefused("not_found_error", f"voice {body.voice!r} not found")
    return body


def _sentences(text: str) -> list[str]:
    buffer = TextBuffer()
    parts = buffer.append(text)
    rest = buffer.flush()
    return [*parts, rest] if rest else parts


async def _synthesize(request: web.Request, body: SpeechRequest, text: str) -> Synthesis:

    return await request.app[SYNTH_KEY].synthesize(
        text, body.voice, body.effective_sample_rate(), speed=body.speed, language=body.language
    )


async def speech_bytes_handler(request: web.Request) -> web.StreamResponse:
    """Stream audio sentence by sentence as it is synthesised (``wav`` is sent whole)."""
    body = await _parse_speech_request(request)
    rate = body.effective_sample_rate()
    response = web.StreamResponse(headers={"request-id": request[REQUEST_ID_KEY]})
    response.content_type = _CONTENT_TYPES[body.format]
    sentences = _sentences(body.text)
    if body.format == "wav":
        pcm = b"".join([(await _synthesize(request, body, s)).pcm16 for s in sentences])
        await response.prepare(request)
        await response.write(pcm_wav_file(pcm, rate))
    else:
        # The first sentence is synthesised before the headers go out, so a synthesis failure
        # still reaches the client as an error envelope (later ones can only cut the stream).
        first = await _synthesize(request, body, sentences[0]) if sentences else None
        await response.prepare(request)
        if body.format == "ulaw":
            await response.write(ulaw_wav_header(rate))
        if first is not None:
            await response.write(encode(first.pcm16, body.format))
        for sentence in sentences[1:]:
            result = await _synthesize(request, body, sentence)
            await response.write(encode(result.pcm16, body.format))
    await response.write_eof()
    return response


async def speech_detailed_handler(request: web.Request) -> web.Response:
    """Whole clip as base64 plus word timestamps measured from the start of the clip."""
    body = await _parse_speech_request(request)
    rate = body.effective_sample_rate()
    pcm = b""
    stamps: list[dict[str, Any]] = []
    for sentence in _sentences(body.text):
        result = await _synthesize(request, body, sentence)
        offset = len(pcm) / 2 / rate
        stamps += [
            {"text": w.text, "start": round(offset + w.start_s, 4), "duration": w.duration_s}
            for w in result.words
        ]
        pcm += result.pcm16
    audio = _container(pcm, rate, body.format)
    reply: dict[str, Any] = {"audio": base64.b64encode(audio).decode("ascii")}
    if body.return_timestamps:
        reply["timestamps"] = stamps
    return web.json_response(reply)


def _container(
    pcm: bytes, rate: int, fmt: Literal["wav", "ulaw", "pcm_s16le", "pcm_f32le"] | str
) -> bytes:
    if fmt == "wav":
        return pcm_wav_file(pcm, rate)
    if fmt == "ulaw":
        return ulaw_wav_header(rate) + encode(pcm, fmt)
    return encode(pcm, fmt)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/ai/voice/list", list_voices_handler)
    app.router.add_get("/v1/ai/voice/{voice_id}", voice_info_handler)
    app.router.add_post("/v1/ai/speech/bytes", speech_bytes_handler)
    app.router.add_post("/v1/ai/speech", speech_detailed_handler)
