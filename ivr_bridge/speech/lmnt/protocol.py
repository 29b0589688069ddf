"""LMNT speech-session messages (API 1.1), both directions, as pydantic models.

Strict about what we send (exact field names and values the service documents), tolerant about
what we receive: unknown fields are ignored and unknown message types become
``UnknownServerMessage`` rather than an error, so a newer server does not break an older bridge.
Audio never appears here: it travels as binary WebSocket frames.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ivr_bridge.errors import LmntProtocolError

LMNT_API_VERSION = "1.1"


# ---------------------------------------------------------------- client -> server


class _ClientMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json(self) -> str:
        """The wire form: aliases, no unset optionals."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


class InitMessage(_ClientMessage):
    """First message of a session. The API key travels here and nowhere else.

    The key is a ``SecretStr`` so repr/str/default dumps print ``**********``; only ``to_json``
    (what goes on the socket) reveals it.
    """

    type: Literal["init"] = "init"
    # serialization_alias (not alias) keeps the Python names as constructor arguments.
    api_key: SecretStr = Field(serialization_alias="X-API-Key")
    lmnt_version: str = Field(default=LMNT_API_VERSION, serialization_alias="lmnt-version")
    voice: str
    format: Literal["ulaw"] = "ulaw"
    sample_rate: Literal[8000] = 8000
    return_timestamps: bool = True
    language: str = "en"

    def to_json(self) -> str:
        data = self.model_dump(by_alias=True, exclude_none=True)
        data["X-API-Key"] = self.api_key.get_secret_value()
        return json.dumps(data, ensure_ascii=False)


class TextMessage(_ClientMessage):
    type: Literal["text"] = "text"
    text: str


class FlushMessage(_ClientMessage):
    type: Literal["flush"] = "flush"
    nonce: int


class ResetMessage(_ClientMessage):
    type: Literal["reset"] = "reset"
    nonce: int


class FinishMessage(_ClientMessage):
    type: Literal["finish"] = "finish"


ClientMessage = InitMessage | TextMessage | FlushMessage | ResetMessage | FinishMessage


# ---------------------------------------------------------------- server -> client


class _ServerMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ReadyMessage(_ServerMessage):
    type: Literal["ready"] = "ready"
    request_id: str | None = None


class WordTimestamp(_ServerMessage):
    text: str
    start: float
    duration: float


class TimestampsMessage(_ServerMessage):
    type: Literal["timestamps"] = "timestamps"
    timestamps: list[WordTimestamp] = Field(default_factory=list)


class FlushCompleteMessage(_ServerMessage):
    type: Literal["flush_complete"] = "flush_complete"
    nonce: int


class ResetCompleteMessage(_ServerMessage):
    type: Literal["reset_complete"] = "reset_complete"
    nonce: int


class ErrorBody(_ServerMessage):
    type: str = "unknown_error"
    message: str = ""


class ErrorMessage(_ServerMessage):
    """``{"type":"error","error":{"type","message"},"request_id"}``; the socket closes after it."""

    type: Literal["error"] = "error"
    error: ErrorBody
    request_id: str | None = None


class UnknownServerMessage(_ServerMessage):
    """A message type this client does not know; kept so it can be logged, then ignored."""

    type: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


ServerMessage = (
    ReadyMessage
    | TimestampsMessage
    | FlushCompleteMessage
    | ResetCompleteMessage
    | ErrorMessage
    | UnknownServerMessage
)

_KNOWN: dict[str, type[_ServerMessage]] = {
    "ready": ReadyMessage,
    "timestamps": TimestampsMessage,
    "flush_complete": FlushCompleteMessage,
    "reset_complete": ResetCompleteMessage,
    "error": ErrorMessage,
}


def parse_server_message(text: str) -> ServerMessage:
    """Parse one JSON text frame from the server.

    A 1.0-style bare ``{"error": "..."}`` is read as an error envelope, because treating a refusal
    as an unknown message would leave the call waiting for audio that never comes.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LmntProtocolError(f"server sent invalid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise LmntProtocolError("server sent a JSON value that is not an object")
    msg_type = data.get("type")
    if msg_type in (None, "error") and isinstance(data.get("error"), str):
        request_id = data.get("request_id")
        return ErrorMessage(
            error=ErrorBody(message=data["error"]),
            request_id=request_id if isinstance(request_id, str) else None,
        )
    model = _KNOWN.get(msg_type) if isinstance(msg_type, str) else None
    if model is None:
        return UnknownServerMessage(type=msg_type if isinstance(msg_type, str) else None, raw=data)
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        raise LmntProtocolError(f"malformed {msg_type!r} message from server: {exc}") from exc
