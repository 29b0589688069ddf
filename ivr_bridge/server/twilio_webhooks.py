"""Twilio's HTTP webhooks: the voice webhook that answers a call, and ``<Connect action>``.

Both are form-encoded and signed; the signature is checked over the public URL (rebuilt from
``IVR_PUBLIC_URL``, since a TLS-terminating proxy hides the real one) and every form parameter.
"""

from __future__ import annotations

import asyncio
from typing import NoReturn

import structlog
from aiohttp import web

from ivr_bridge.call.app import AppUnavailable
from ivr_bridge.server.state import STATE, WEBHOOK_MAX_BYTES, BridgeState
from ivr_bridge.server.stream_tokens import TOKEN_PARAMETER
from ivr_bridge.telephony.twilio import twiml
from ivr_bridge.telephony.twilio.signature import websocket_url

log = structlog.get_logger(__name__)

MEDIA_PATH = "/twilio/media"
AFTER_STREAM_PATH = "/twilio/after-stream"
VOICE_PATH = "/twilio/voice"
SIGNATURE_HEADER = "X-Twilio-Signature"
TWIML_TYPE = "application/xml"
BODY_READ_S = 5.0
TRANSFER_FAILED = "Sorry, we could not connect your call. Please call again later. Goodbye."
LOST_CALL = "Sorry, we lost track of your call. Please call again. Goodbye."
"""Said when Twilio asks what to do after a stream and no replica knows: the stream broke (its
replica died) or the outcome could not be stored."""
PASSED_THROUGH = ("From", "To", "Direction")
"""Webhook form fields handed to the stream as ``<Parameter>``s (they are not in ``start``)."""


async def signed_form(request: web.Request, state: BridgeState, route: str) -> dict[str, str]:
    """The form of a request Twilio signed; 403 otherwise.

    Work for a stranger is bounded before the signature can be checked (it covers the body):
    no header, no read; bodies are capped (``client_max_size``); at most
    ``UNAUTHENTICATED_READS`` bodies are read at once, each within ``BODY_READ_S``."""
    signature = request.headers.get(SIGNATURE_HEADER)
    if state.signatures.enabled and not signature:
        _refuse_signature(state, route)
    if request.content_length is not None and request.content_length > WEBHOOK_MAX_BYTES:
        # Declared too big: refused unread, and the connection dropped rather than drained.
        raise web.HTTPRequestEntityTooLarge(
            max_size=WEBHOOK_MAX_BYTES,
            actual_size=request.content_length,
            headers={"Connection": "close"},
        )
    if state.body_reads.locked():
        raise web.HTTPServiceUnavailable(text="busy; try again\n")
    async with state.body_reads:
        try:
            async with asyncio.timeout(BODY_READ_S):
                form = await request.post()
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="request body too slow\n") from None
    # raw_path: Twilio signs the URL exactly as requested, percent-encoding included; the form
    # goes in as the multi-dict it is, so a repeated field is signed as Twilio signed it.
    if not state.signatures.valid_webhook(request.raw_path, form, signature):  # type: ignore[arg-type]
        _refuse_signature(state, route)
    return {k: str(v) for k, v in form.items()}


def _refuse_signature(state: BridgeState, route: str) -> NoReturn:
    state.metrics.signature_rejections.labels(route=route).inc()
    log.warning("rejected webhook: bad or missing X-Twilio-Signature", route=route)
    raise web.HTTPForbidden(text="invalid X-Twilio-Signature\n", headers={"Connection": "close"})


def _twiml_response(body: str) -> web.Response:
    return web.Response(text=body, content_type=TWIML_TYPE)


async def voice_webhook(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.draining:
        raise web.HTTPServiceUnavailable(text="shutting down; not answering new calls\n")
    params = await signed_form(request, state, "voice")
    call_sid = params.get("CallSid", "")
    query = dict(request.query)
    flow_name = query.pop("flow", state.settings.flow)
    parameters = {"flow": flow_name}
    parameters.update({k: params[k] for k in PASSED_THROUGH if params.get(k)})
    parameters.update(query)  # ?app=NAME picks the call's app; ?name=Ann&time=3pm for a reminder
    try:
        state.apps.check(parameters)
    except AppUnavailable as exc:
        log.error("voice webhook named an unusable app or flow", call_sid=call_sid, error=str(exc))
        return _twiml_response(twiml.say_and_hangup("Sorry, this number is not set up correctly."))
    token = state.stream_tokens.issue(call_sid, parameters)
    if token is not None:  # the stream's start must show it was this call, answered here
        parameters[TOKEN_PARAMETER] = token
    public = state.public_url
    try:
        body = twiml.connect_stream(
            stream_url=websocket_url(public, MEDIA_PATH),
            action_url=public + AFTER_STREAM_PATH,
            parameters=parameters,
        )
    except ValueError as exc:
        log.error("cannot build stream TwiML", call_sid=call_sid, error=str(exc))
        return _twiml_response(twiml.say_and_hangup("Sorry, this call cannot be connected."))
    log.info("answering call", call_sid=call_sid, flow=flow_name)
    return _twiml_response(body)


async def after_stream_webhook(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = await signed_form(request, state, "after-stream")
    call_sid = params.get("CallSid", "")
    outcome = await state.outcomes.take(call_sid)
    if outcome is None:
        log.warning(
            "no outcome recorded for the call (its stream broke, or its replica could not "
            "store it): apologising and hanging up",
            call_sid=call_sid,
        )
        return _twiml_response(twiml.say_and_hangup(LOST_CALL))
    log.info("after-stream", call_sid=call_sid, action=outcome.action, number=outcome.number)
    if outcome.action == "dial" and outcome.number:
        try:
            return _twiml_response(twiml.dial(outcome.number))
        except ValueError as exc:  # a flow or model gave an unusable number: say so, not a 500
            log.error("cannot transfer the call", call_sid=call_sid, error=str(exc))
            return _twiml_response(twiml.say_and_hangup(TRANSFER_FAILED))
    if outcome.action == "apologise" and outcome.message:
        return _twiml_response(
            twiml.say_and_hangup(
                outcome.message, voice=outcome.say_voice, language=outcome.say_language
            )
        )
    return _twiml_response(twiml.hangup())
