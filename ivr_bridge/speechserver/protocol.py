"""LMNT speech-session wire messages (API 1.1 / 1.2) and the error envelope, as pydantic models.

Inbound models are tolerant of unknown fields (clients add things); outbound messages are built
by the small helpers at the bottom so every frame we emit has exactly LMNT's shape.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ivr_bridge.errors import LmntProtocolError

SUPPORTED_VERSIONS = ("1.1", "1.2")
SESSION_FORMATS = ("ulaw", "pcm_s16le", "pcm_f32le")
SAMPLE_RATES = (8000, 16000, 24000)

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "payment_required_error",
    "rate_limit_error",
    "internal_server_error",
]


class LmntRequestRefused(LmntProtocolError):
    """A client request the speech server refuses; carries the LMNT error type for the envelope."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message, error_type)
        self.error_type: ErrorType = error_type


class InitMessage(BaseModel):
    """First client frame. ``type`` is optional: both official SDKs omit it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: Literal["init"] = "init"
    api_key: str = Field(default="", alias="X-API-Key")
    lmnt_version: str | None = Field(default=None, alias="lmnt-version")
    voice: str = ""
    format: str = "pcm_s16le"
    sample_rate: int | None = None
    return_timestamps: bool = False
    language: str | None = None
    speed: float = Field(default=1.0, gt=0.2, le=4.0)

    @property
    def effective_sample_rate(self) -> int:
        if self.sample_rate is not None:
            return self.sample_rate
        return 8000 if self.format == "ulaw" else 24000


class TextMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class FlushMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["flush"]
    nonce: int | None = None


class ResetMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["reset"]
    nonce: int | None = None


class FinishMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["finish"]


ClientMessage = TextMessage | FlushMessage | ResetMessage | FinishMessage
_BY_TYPE: dict[str, type[BaseModel]] = {
    "text": TextMessage,
    "flush": FlushMessage,
    "reset": ResetMessage,
    "finish": FinishMessage,
}


def _load_object(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LmntRequestRefused(
            "invalid_request_error", f"message is not valid JSON: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise LmntRequestRefused("invalid_request_error", "message must be a JSON object")
    return data


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    return f"{where}: {first['msg']}"


def parse_init(raw: str) -> InitMessage:
    """Validate the init frame: version, format, sample rate. Key and voice are checked later."""
    data = _load_object(raw)
    if data.get("type", "init") != "init":
        raise LmntRequestRefused(
            "invalid_request_error", "the first message must be the init message"
        )
    version = data.get("lmnt-version")
    if version not in SUPPORTED_VERSIONS:
        got = "missing" if version is None else f"{version!r}"
        raise LmntRequestRefused(
            "invalid_request_error",
            f"lmnt-version {got} is not supported; this server speaks "
            f"{' and '.join(SUPPORTED_VERSIONS)}",
        )
    try:
        init = InitMessage.model_validate(data)
    except ValidationError as exc:
        raise LmntRequestRefused("invalid_request_error", _describe(exc)) from exc
    if init.format not in SESSION_FORMATS:
        raise LmntRequestRefused(
            "invalid_request_error",
            f"format {init.format!r} is not supported; use one of {', '.join(SESSION_FORMATS)}",
        )
    if init.effective_sample_rate not in SAMPLE_RATES:
        raise LmntRequestRefused(
            "invalid_request_error",
            f"sample_rate {init.sample_rate} is not supported; use one of "
            f"{', '.join(map(str, SAMPLE_RATES))}",
        )
    return init


def parse_client_message(raw: str) -> ClientMessage:
    data = _load_object(raw)
    model = _BY_TYPE.get(str(data.get("type")))
    if model is None:
        raise LmntRequestRefused(
            "invalid_request_error", f"unknown message type {data.get('type')!r}"
        )
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise LmntRequestRefused("invalid_request_error", _describe(exc)) from exc


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


def ready(request_id: str) -> dict[str, Any]:
    return {"type": "ready", "request_id": request_id}


def flush_complete(nonce: int | None) -> dict[str, Any]:
    return {"type": "flush_complete", "nonce": nonce}


def reset_complete(nonce: int | None) -> dict[str, Any]:
    return {"type": "reset_complete", "nonce": nonce}


def timestamps(words: list[tuple[str, float, float]]) -> dict[str, Any]:
    return {
        "type": "timestamps",
        "timestamps": [
            {"text": text, "start": round(start, 4), "duration": round(duration, 4)}
            for text, start, duration in words
        ],
    }


def session_error(error_type: ErrorType, message: str, request_id: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def rest_error(error_type: ErrorType, message: str, request_id: str) -> dict[str, Any]:
    """REST envelope; the SDK reads ``body["error"]["type"]``."""
    return {"error": {"type": error_type, "message": message}, "request_id": request_id}
