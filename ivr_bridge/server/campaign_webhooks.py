"""Twilio's callbacks for outbound calls: call status and the answering-machine verdict.

Both are signed like every Twilio request and go straight to the campaign store, which makes
them idempotent (a duplicate, late or out-of-order callback changes nothing it should not). The
machine verdict also goes to the live call through the call registry, so the reminder on the
line learns who answered while it is still talking: with several replicas that call may be on
another one, which is what the registry's interface leaves room for.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from ivr_bridge.call.inputs import ANSWERED_BY
from ivr_bridge.call.registry import MachineDetected
from ivr_bridge.server.state import STATE
from ivr_bridge.server.twilio_webhooks import signed_form

log = structlog.get_logger(__name__)

STATUS_PATH = "/twilio/campaign/status"
AMD_PATH = "/twilio/campaign/amd"
AMD_HOLD_S = 60.0
"""A verdict for a call whose stream has not reached this bridge yet waits this long for it."""


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and len(value) <= 15 else None


async def status_callback(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await signed_form(request, state, "campaign-status")
    store = state.campaigns
    if store is None:
        raise web.HTTPNotFound(text="no campaigns on this bridge\n")
    call_sid, status = form.get("CallSid", ""), form.get("CallStatus", "")
    if not call_sid or not status:
        raise web.HTTPBadRequest(text="CallSid and CallStatus are required\n")
    known = await store.apply_status(
        call_sid,
        status,
        attempt_id=_int(request.query.get("attempt")),
        sequence=_int(form.get("SequenceNumber")),
        now=time.time(),
        duration_s=_int(form.get("CallDuration")),
        error_code=_int(form.get("ErrorCode")),
        answered_by=form.get("AnsweredBy") if form.get("AnsweredBy") in ANSWERED_BY else None,
    )
    if not known:
        log.warning(
            "status callback for a call no campaign placed",
            call_sid=call_sid,
            status=status,
            attempt=request.query.get("attempt"),
        )
    state.metrics.campaign_callbacks.labels(kind="status", known=str(known).lower()).inc()
    return web.Response(status=204)


async def amd_callback(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await signed_form(request, state, "campaign-amd")
    store = state.campaigns
    if store is None:
        raise web.HTTPNotFound(text="no campaigns on this bridge\n")
    call_sid, answered_by = form.get("CallSid", ""), form.get("AnsweredBy", "")
    if not call_sid or answered_by not in ANSWERED_BY:
        raise web.HTTPBadRequest(text="CallSid and a known AnsweredBy are required\n")
    live = await state.calls.deliver(call_sid, MachineDetected(answered_by), hold_s=AMD_HOLD_S)
    known = await store.apply_amd(
        call_sid,
        answered_by,
        _int(form.get("MachineDetectionDuration")),
        now=time.time(),
        attempt_id=_int(request.query.get("attempt")),
    )
    log.info("answering machine verdict", call_sid=call_sid, answered_by=answered_by, live=live)
    state.metrics.campaign_callbacks.labels(kind="amd", known=str(known).lower()).inc()
    state.metrics.amd_results.labels(answered_by=answered_by).inc()
    return web.Response(status=204)


def add_campaign_routes(app: web.Application) -> None:
    app.router.add_post(STATUS_PATH, status_callback)
    app.router.add_post(AMD_PATH, amd_callback)
