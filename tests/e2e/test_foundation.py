"""Foundation, end to end: a real bridge, the real speech server, a Twilio-shaped peer."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import aiohttp
import pytest
import structlog

from ivr_bridge.call.outcomes import CallOutcome
from ivr_bridge.logs import configure_logging
from ivr_bridge.server.app import RunningBridge
from ivr_bridge.telephony.twilio.models import OutboundMark, OutboundMedia
from ivr_bridge.telephony.twilio.signature import sign_request, websocket_url
from tests.e2e.conftest import AUTH_TOKEN
from tests.e2e.twilio_peer import CALL_SID, STREAM_SID, media, run_session

VOICE_FORM = {
    "CallSid": CALL_SID,
    "AccountSid": "AC" + "2" * 32,
    "From": "+15005550006",
    "To": "+15005550001",
    "CallStatus": "ringing",
    "Direction": "inbound",
    "ApiVersion": "2010-04-01",
}


async def _post(bridge: RunningBridge, path: str, form: dict[str, str], signature: str | None):
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(bridge.base_url + path, data=form, headers=headers) as resp:
            return resp.status, await resp.text()


async def test_signed_voice_webhook_returns_connect_stream_twiml(bridge: RunningBridge) -> None:
    url = bridge.base_url + "/twilio/voice"
    status, body = await _post(
        bridge, "/twilio/voice", VOICE_FORM, sign_request(AUTH_TOKEN, url, VOICE_FORM)
    )
    assert status == 200
    root = ET.fromstring(body)
    assert [child.tag for child in root] == ["Connect"]  # nothing after </Connect>
    connect = root[0]
    assert connect.get("action") == bridge.base_url + "/twilio/after-stream"
    stream = connect.find("Stream")
    assert stream is not None
    assert stream.get("url") == websocket_url(bridge.base_url, "/twilio/media")
    assert stream.get("url", "").startswith("ws://")
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["flow"] == "welcome.yaml"
    assert params["From"] == "+15005550006"
    assert params["To"] == "+15005550001"


@pytest.mark.parametrize("signature", [None, "bm90LWEtc2lnbmF0dXJl"])
async def test_unsigned_or_wrongly_signed_webhooks_are_refused(
    bridge: RunningBridge, signature: str | None
) -> None:
    for path in ("/twilio/voice", "/twilio/after-stream"):
        status, _ = await _post(bridge, path, VOICE_FORM, signature)
        assert status == 403


async def test_signature_over_other_params_is_refused(bridge: RunningBridge) -> None:
    url = bridge.base_url + "/twilio/voice"
    signature = sign_request(AUTH_TOKEN, url, {**VOICE_FORM, "From": "+19999999999"})
    status, _ = await _post(bridge, "/twilio/voice", VOICE_FORM, signature)
    assert status == 403


@pytest.mark.parametrize("scheme", ["wrong", "https"])
async def test_websocket_upgrade_with_bad_signature_is_refused_before_upgrade(
    bridge: RunningBridge, scheme: str
) -> None:
    ws_url = websocket_url(bridge.base_url, "/twilio/media")
    if scheme == "https":
        signature = sign_request(AUTH_TOKEN, bridge.base_url + "/twilio/media")
    else:
        signature = sign_request("not-the-token", ws_url)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(ws_url, headers={"X-Twilio-Signature": signature})
    assert info.value.status == 403


async def test_a_call_hears_the_greeting_then_the_bridge_closes_and_hangs_up(
    bridge: RunningBridge,
) -> None:
    session = await run_session(bridge.base_url, AUTH_TOKEN, parameters={"flow": "welcome.yaml"})
    assert session.closed_by_server
    assert session.frames, "the bridge sent nothing"
    for frame in session.frames:
        assert frame["event"] in ("media", "mark"), frame
        assert frame["streamSid"] == STREAM_SID
        model = OutboundMedia if frame["event"] == "media" else OutboundMark
        model.model_validate(frame)  # strictly the wire shape Twilio accepts
    assert b"RIFF" not in session.audio and b"WAVE" not in session.audio
    seconds = len(session.audio) / 8000
    assert seconds > 3.0, f"greeting too short to be the flow's text: {seconds:.1f}s"
    assert session.events[-1] == "mark", "the stream must end with a mark so the goodbye is heard"
    names = [f["mark"]["name"] for f in session.frames if f["event"] == "mark"]
    assert len(names) == len(set(names)) and all(names)

    status, body = await _post(
        bridge,
        "/twilio/after-stream",
        {"CallSid": CALL_SID, "AccountSid": VOICE_FORM["AccountSid"]},
        sign_request(
            AUTH_TOKEN,
            bridge.base_url + "/twilio/after-stream",
            {"CallSid": CALL_SID, "AccountSid": VOICE_FORM["AccountSid"]},
        ),
    )
    assert status == 200
    assert [child.tag for child in ET.fromstring(body)] == ["Hangup"]


async def test_malformed_frames_are_counted_and_the_call_goes_on(bridge: RunningBridge) -> None:
    garbage: list[str | bytes] = [
        "not json",
        '{"event":"media","media":{}}',
        '{"event":"sparkles"}',
        b"\x00\x01binary",
        media(2, 1),
    ]
    session = await run_session(bridge.base_url, AUTH_TOKEN, extra=garbage)
    assert len(session.audio) > 8000
    assert session.closed_by_server
    async with aiohttp.ClientSession() as http, http.get(bridge.base_url + "/metrics") as resp:
        text = await resp.text()
    malformed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ivr_malformed_frames_total{")
    )
    assert malformed == 4
    assert 'ivr_malformed_frames_total{kind="binary"} 1.0' in text
    assert 'ivr_frames_in_total{event="media"} 1.0' in text


async def test_dead_speech_service_apologises_instead_of_dead_air(make_bridge) -> None:
    bridge = await make_bridge(lmnt_base_url="http://127.0.0.1:9")  # nothing listens there
    session = await run_session(bridge.base_url, AUTH_TOKEN)
    assert session.closed_by_server
    assert session.audio == b""
    form = {"CallSid": CALL_SID}
    status, body = await _post(
        bridge,
        "/twilio/after-stream",
        form,
        sign_request(AUTH_TOKEN, bridge.base_url + "/twilio/after-stream", form),
    )
    assert status == 200
    root = ET.fromstring(body)
    assert [child.tag for child in root] == ["Say", "Hangup"]


async def test_healthz_reports_ok(bridge: RunningBridge) -> None:
    async with aiohttp.ClientSession() as http, http.get(bridge.base_url + "/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"


async def test_call_logs_carry_call_ids_and_never_secrets(make_bridge) -> None:
    buffer = io.StringIO()
    saved = structlog.get_config()
    configure_logging("json", "debug", stream=buffer)
    try:
        bridge = await make_bridge(lmnt_api_key="lmnt-secret-key-987654321")
        await run_session(bridge.base_url, AUTH_TOKEN)
    finally:
        structlog.configure(**saved)
    text = buffer.getvalue()
    assert "lmnt-secret-key" not in text and "987654321" not in text
    assert AUTH_TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    call_lines = [
        line for line in lines if line["event"] in ("bot says", "first media sent", "end")
    ]
    assert len(call_lines) >= 3
    for line in call_lines:
        assert line["call_sid"] == CALL_SID and line["stream_sid"] == STREAM_SID


async def test_a_bad_media_payload_mid_call_costs_one_frame_not_the_call(
    bridge: RunningBridge,
) -> None:
    bad = json.loads(media(2, 1))
    bad["media"]["payload"] = "not*base64!"
    session = await run_session(bridge.base_url, AUTH_TOKEN, mid_call=[json.dumps(bad)])
    assert len(session.audio) > 3 * 8000, "the greeting was cut short"
    text = await _metrics(bridge)
    assert 'ivr_malformed_frames_total{kind="validation"} 1.0' in text
    assert 'ivr_calls_total{ending="bridge"} 1.0' in text  # the flow ended it, not the caller


async def test_an_unusable_transfer_number_apologises_instead_of_a_500(
    bridge: RunningBridge,
) -> None:
    await bridge.state.outcomes.record(CALL_SID, CallOutcome("dial", number="call-bob"))
    form = {"CallSid": CALL_SID}
    url = bridge.base_url + "/twilio/after-stream"
    status, body = await _post(
        bridge, "/twilio/after-stream", form, sign_request(AUTH_TOKEN, url, form)
    )
    assert status == 200
    assert [child.tag for child in ET.fromstring(body)] == ["Say", "Hangup"]


async def _metrics(bridge: RunningBridge) -> str:
    async with aiohttp.ClientSession() as http, http.get(bridge.base_url + "/metrics") as resp:
        return await resp.text()


async def test_keys_pressed_are_masked_in_logs(bridge: RunningBridge) -> None:
    buffer = io.StringIO()
    saved = structlog.get_config()
    configure_logging("json", "info", stream=buffer)
    dtmf = {"event": "dtmf", "sequenceNumber": "3", "streamSid": STREAM_SID}
    press = json.dumps({**dtmf, "dtmf": {"track": "inbound_track", "digit": "7"}})
    try:
        await run_session(bridge.base_url, AUTH_TOKEN, mid_call=[press])
    finally:
        structlog.configure(**saved)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    [logged] = [line for line in lines if line["event"] == "dtmf"]
    assert logged["digit"] == "•"
