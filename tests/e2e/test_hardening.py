"""Hardening, end to end: what a failing peer, a lossy line or an attacker must not cost a call."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import structlog
from structlog.testing import capture_logs
from yarl import URL

from ivr_bridge.call.app import DialogApp
from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.server.media_stream import START_TIMEOUT_S
from ivr_bridge.sim import CallResult, parse_script, run_call
from ivr_bridge.telephony.twilio.signature import sign_request, websocket_url
from tests.e2e.conftest import AUTH_TOKEN
from tests.e2e.scrape import metric
from tests.e2e.twilio_peer import connected, media, new_call_sid, run_session, start

PROMPT = (
    "Thank you for calling. Your order has shipped and will arrive on Thursday. "
    "If you need anything else, please call us again."
)


async def _say_prompt(call: CallControl) -> None:
    await call.say(PROMPT, barge_in=BargeInPolicy("none"))
    await call.hangup()


async def test_lost_mark_echoes_never_slow_playback_below_real_time(
    make_bridge: Callable[..., Any],
) -> None:
    """A Twilio whose mark echoes never arrive must still hear the prompt at real time (it used
    to come in 300 ms bursts every ~1.6 s: a 7.7 s greeting took 41.8 s), paced, not dumped."""
    bridge = await make_bridge(apps={"prompt": lambda p: DialogApp(_say_prompt, name="prompt")})
    session = await run_session(
        bridge.base_url, AUTH_TOKEN, parameters={"app": "prompt"}, echo_marks=False
    )
    assert session.closed_by_server
    audio_s = len(session.audio) / 8000
    assert audio_s > 4.0, "the whole prompt"
    first, last = session.media_arrivals[0][0], session.media_arrivals[-1][0]
    spread_s = last - first
    # Real time: the last frame goes out about one lead (300 ms) before the audio ends. Floor:
    # a loaded machine may release late, but nowhere near 5x slower.
    assert spread_s <= audio_s * 1.25 + 1.0, (spread_s, audio_s)
    assert spread_s >= audio_s - 1.0, (spread_s, audio_s)  # paced, not all sent at once


async def test_a_stream_whose_start_never_comes_is_closed_and_counted(
    make_bridge: Callable[..., Any],
) -> None:
    """Media every 20 ms but no usable ``start``: not a call, and it must not hold a socket (it
    used to stay open for ever and delay shutdown by 10 s)."""
    bridge = await make_bridge()
    url = websocket_url(bridge.base_url, "/twilio/media")
    headers = {"X-Twilio-Signature": sign_request(AUTH_TOKEN, url)}
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        opened = loop.time()
        await ws.send_str(connected())
        await ws.send_str('{"event": "start", "sequenceNumber": "1"}')  # unusable
        chunk = 0
        while not ws.closed and loop.time() - opened < 15:
            chunk += 1
            await ws.send_str(media(chunk + 1, chunk))
            with contextlib.suppress(TimeoutError):
                msg = await ws.receive(timeout=0.02)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
        closed_after = loop.time() - opened
        code = ws.close_code
    assert code == 1008, code
    # The bridge's timer starts when it accepts the socket, a little before our clock does.
    assert START_TIMEOUT_S - 0.5 <= closed_after <= START_TIMEOUT_S + 3  # + a floor, busy box
    assert await metric(bridge.base_url, 'ivr_streams_refused_total{reason="no_usable_start"}') == 1
    assert not bridge.state.streams


async def _start_stream(bridge: Any, start_frame: str) -> int | None:
    """A correctly signed upgrade (the header is replayable), then this ``start``."""
    url = websocket_url(bridge.base_url, "/twilio/media")
    headers = {"X-Twilio-Signature": sign_request(AUTH_TOKEN, url)}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_str(connected())
        await ws.send_str(start_frame)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["event"] == "media":
                return None  # it became a call
        return ws.close_code


async def test_a_captured_upgrade_signature_opens_no_call_without_the_webhook(
    make_bridge: Callable[..., Any],
) -> None:
    """Twilio signs the upgrade over the URL alone: the start must prove its call was
    answered by the voice webhook (a token for that CallSid and those parameters, once)."""
    bridge = await make_bridge()
    sid = new_call_sid()
    forged = {"flow": "support_line.yaml"}
    assert await _start_stream(bridge, start(forged, call_sid=sid)) == 1008  # no token
    assert await _start_stream(bridge, start(forged, call_sid=sid, auth_token="guess")) == 1008
    valid = start(forged, call_sid=sid, auth_token=AUTH_TOKEN)
    other_sid = json.loads(valid)
    other_sid["start"]["callSid"] = new_call_sid()  # the same token for another call
    assert await _start_stream(bridge, json.dumps(other_sid)) == 1008
    assert await _start_stream(bridge, valid) is None  # the real one starts a call
    assert await _start_stream(bridge, valid) == 1008  # and only once
    for reason, count in [("no_token", 1), ("bad_token", 2), ("replayed_start", 1)]:
        name = f'ivr_streams_refused_total{{reason="{reason}"}}'
        assert await metric(bridge.base_url, name) == count, reason


async def _raw(bridge: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = bridge.base_url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_an_unsigned_webhook_is_refused_before_its_body_is_read(
    make_bridge: Callable[..., Any],
) -> None:
    """200 unsigned 1 MiB posts used to cost 381 MB that was never returned: no signature
    header, no read, and no body Twilio would never send (over 64 kB) is accepted."""
    bridge = await make_bridge()
    reader, writer = await _raw(bridge)
    writer.write(
        b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\n"
    )  # the body is never sent: only a server that does not wait for it can answer
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status.startswith(b"HTTP/1.1 403"), status
    form = {"CallSid": "CA1", "pad": "x" * 70_000}
    url = bridge.base_url + "/twilio/voice"
    headers = {"X-Twilio-Signature": sign_request(AUTH_TOKEN, url, form)}
    async with aiohttp.ClientSession() as http, http.post(url, data=form, headers=headers) as resp:
        assert resp.status == 413


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionError:
        return True


async def test_idle_and_dribbling_sockets_are_closed_but_a_long_call_is_not(
    make_bridge: Callable[..., Any],
) -> None:
    bridge = await make_bridge(idle_socket_s=1.0)
    loop = asyncio.get_running_loop()
    idle_reader, _idle = await _raw(bridge)  # sends nothing at all
    drip_reader, drip = await _raw(bridge)
    started = loop.time()
    call = asyncio.create_task(
        run_session(bridge.base_url, AUTH_TOKEN, parameters={"app": "prompt"})
    )
    bridge.state.apps.add("prompt", lambda p: DialogApp(_say_prompt, name="prompt"))
    drip.write(b"POST /twilio/voice HTTP/1.1\r\n")
    with contextlib.suppress(ConnectionError):  # the bridge hanging up on it is the point
        for _ in range(8):  # a header a little at a time, never finished
            await asyncio.sleep(0.25)
            drip.write(b"X")
            await drip.drain()
    assert await _closed_by_peer(idle_reader)
    assert await _closed_by_peer(drip_reader)
    assert loop.time() - started <= 1.0 + 4  # the idle limit, plus a floor for a busy machine
    session = await asyncio.wait_for(call, 30)
    assert len(session.audio) / 8000 > 4.0  # a call far longer than the idle limit, whole


async def test_an_oversized_parameter_is_refused_politely_at_the_webhook_and_at_start(
    make_bridge: Callable[..., Any],
) -> None:
    """A 64 kB <Parameter> used to reach the speech session as one 65,603-character prompt."""
    bridge = await make_bridge()
    url = bridge.base_url + "/twilio/voice?name=" + "A" * 4000  # fits a URL, not a Parameter
    form = {"CallSid": new_call_sid()}
    headers = {"X-Twilio-Signature": sign_request(AUTH_TOKEN, url, form)}
    async with aiohttp.ClientSession() as http:
        async with http.post(URL(url, encoded=True), data=form, headers=headers) as resp:
            body = await resp.text()
    assert resp.status == 200 and "<Say>" in body and "<Stream" not in body
    big = start({"name": "A" * 65_000}, call_sid=new_call_sid(), auth_token=AUTH_TOKEN)
    assert await _start_stream(bridge, big) == 1008  # not a call: malformed, then closed
    assert await metric(bridge.base_url, 'ivr_malformed_frames_total{kind="validation"}') >= 1


async def _speak_then_press(bridge: Any, gap_ms: int) -> tuple[CallResult, list[dict[str, Any]]]:
    script = parse_script(
        "steps:\n"
        "  - wait_for_bot\n"
        '  - say: "well"\n'
        f"  - silence: {gap_ms}\n"  # still inside the bridge's 600 ms end-of-utterance wait
        '  - press: "1"\n'
        "  - wait_for_bot: {timeout_ms: 15000}\n"
        "  - hangup\n",
        "talk_then_key.yaml",
    )
    result = await run_call(
        voice_url=bridge.base_url + "/twilio/voice?flow=support_line.yaml",
        ws_url=None,
        script=script,
        auth_token=AUTH_TOKEN,
        speed=4.0,
    )
    return result, result.events


ACCOUNT_PROMPT = "Please enter your account number, then press the pound key."


@pytest.mark.parametrize("calls", [1, 25])
async def test_a_key_pressed_right_after_speaking_never_silences_the_next_prompt(
    make_bridge: Callable[..., Any], calls: int
) -> None:
    """The key came within the end-of-utterance wait: the prompt it started used to be cut at
    once as 'the caller is talking', leaving 60 s of dead air (4, 6 and 17 times at 5, 10 and
    25 calls). Under load too: 25 calls, keys 0.2-0.6 s after the speech. Judged on the
    bridge's own decisions (a loaded machine may be slow to speak, never right to cut)."""
    bridge = await make_bridge(flow="support_line.yaml")
    gaps = [200 + (400 * n) // max(1, calls - 1) for n in range(calls)]
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        results = await asyncio.gather(*(_speak_then_press(bridge, gap) for gap in gaps))
    cut_for_talking = [e for e in logs if e.get("event") == "caller talking at prompt"]
    assert not cut_for_talking, cut_for_talking[:3]
    for result, _ in results:
        mine = [e for e in logs if e.get("call_sid") == result.call_sid]
        # It was said: in full, or up to where the caller hung up (a caller on a loaded machine
        # may take a stall for the prompt's end and leave; the line says what they heard).
        prompt = [
            e
            for e in mine
            if e.get("event") == "bot says"
            and (
                e["text"] == ACCOUNT_PROMPT
                or (e.get("by") == "hangup" and e["text"] and ACCOUNT_PROMPT.startswith(e["text"]))
            )
        ]
        assert prompt, [(e.get("event"), e.get("text")) for e in mine][-12:]
        cuts = [
            e
            for e in mine
            if e.get("event") == "barge in" and e["utterance"] >= prompt[0]["utterance"]
        ]
        assert not cuts, cuts  # and never cut: no gather was left silent
