"""``POST /calls/{CallSid}/control``: events for a live call from outside its socket.

An operator's "hang up now" or "transfer now", a campaign's answering-machine result: each is
one JSON body, authenticated with ``Authorization: Bearer $IVR_CONTROL_TOKEN`` (compared in
constant time; the route is off, 404, when the token is unset), validated, and handed to the
call through the live-call registry. Answers: 202 delivered, 400 a body that names its problem,
401 a missing or wrong token, 404 no live call with that CallSid.

    {"action": "hangup"}
    {"action": "transfer", "to": "+14155550100"}
    {"action": "answered_by", "answered_by": "machine_end_beep"}
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ivr_bridge.call.inputs import AnsweredByValue
from ivr_bridge.call.registry import CallEvent, HangUpNow, MachineDetected, TransferNow
from ivr_bridge.server.state import STATE

log = structlog.get_logger(__name__)

CONTROL_PATH = "/calls/{call_sid}/control"
MAX_BODY_BYTES = 4096


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Hangup(_Action):
    action: Literal["hangup"]
    reason: str = Field(default="operator", max_length=100)


class _Transfer(_Action):
    action: Literal["transfer"]
    to: str = Field(pattern=r"^(\+[1-9][0-9]{6,14}|sips?:[^\s<>]{3,250})$")
    """E.164 (+14155550100) or a sip: URI."""
    reason: str = Field(default="operator", max_length=100)


class _AnsweredBy(_Action):
    action: Literal["answered_by"]
    answered_by: AnsweredByValue


_BODY: TypeAdapter[_Hangup | _Transfer | _AnsweredBy] = TypeAdapter(
    Annotated[_Hangup | _Transfer | _AnsweredBy, Field(discriminator="action")]
)


def _event(body: _Hangup | _Transfer | _AnsweredBy) -> CallEvent:
    if isinstance(body, _Hangup):
        return HangUpNow(body.reason)
    if isinstance(body, _Transfer):
        return TransferNow(body.to, body.reason)
    return MachineDetected(body.answered_by)


def authorised(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def control_call(request: web.Request) -> web.Response:
    state = request.app[STATE]
    token = state.settings.control_token
    if token is None:
        return _problem(404, "the control route is off; set IVR_CONTROL_TOKEN to turn it on")
    if not authorised(request, token.get_secret_value()):
        state.metrics.control_requests.labels(result="unauthorised").inc()
        log.warning("control request refused: missing or wrong bearer token")
        return web.json_response(
            {"error": "missing or wrong bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="ivr-bridge control"'},
        )
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _problem(413, f"body over {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        return _problem(413, f"body over {MAX_BODY_BYTES} bytes")
    try:
        body = _BODY.validate_python(json.loads(raw or b"null"))
    except (ValueError, ValidationError) as exc:
        state.metrics.control_requests.labels(result="bad_request").inc()
        return _problem(400, _describe(exc))
    call_sid = request.match_info["call_sid"]
    event = _event(body)
    if not await state.calls.deliver(call_sid, event):
        state.metrics.control_requests.labels(result="unknown_call").inc()
        return _problem(404, f"no live call {call_sid[:64]!r} on this bridge")
    state.metrics.control_requests.labels(result="delivered").inc()
    log.info("control event delivered", call_sid=call_sid, action=body.action)
    return web.json_response({"status": "delivered", "action": body.action}, status=202)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return (
            f"{where}: {first['msg']}; send one of "
            '{"action":"hangup"}, {"action":"transfer","to":"+14155550100"}, '
            '{"action":"answered_by","answered_by":"machine_end_beep"}'
        )
    return "body must be JSON"


def add_control_routes(app: web.Application) -> None:
    app.router.add_post(CONTROL_PATH, control_call)
