"""Fuzz: thousands of hostile Twilio frames into live calls cost frames, never a call or a
traceback.

Hypothesis draws frames of every shape the hardening issue named, and more: text that is not
JSON, binary frames, media whose timestamp has thousands of digits, is far in the future, is not
a number, whose payload is not base64 or is 1 byte or 10 kB; keys that are not keys; marks of
names never sent; a second start; unknown events; missing and mistyped fields. Each example opens
a live call, interleaves its hostile frames with a real line's media, then checks the call is
still up and still talking, and ends it with ``stop``. Derandomised: the same frames every run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr_bridge.call.app import DialogApp
from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.config import Settings
from ivr_bridge.server.app import start_bridge
from ivr_bridge.speechserver.app import start_speech_server
from ivr_bridge.telephony.twilio.signature import sign_request, websocket_url
from tests.e2e.conftest import AUTH_TOKEN, FLOWS_DIR
from tests.e2e.twilio_peer import STREAM_SID, connected, media, new_call_sid, start, stop

EXAMPLES = 10
FRAMES_PER_EXAMPLE = 220  # 2,200 hostile frames in all

_numbers = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(str),
    st.integers(min_value=4300, max_value=6000).map(lambda n: "9" * n),  # int() would refuse
    st.just(str(10**15)),  # far in the future
    st.text(max_size=20),
    st.integers(min_value=-(10**6), max_value=-1),
    st.none(),
)
_payloads = st.one_of(
    st.binary(max_size=2000).map(lambda b: base64.b64encode(b).decode()),
    st.just(base64.b64encode(b"\xff").decode()),  # one byte, not a 20 ms frame
    st.just(base64.b64encode(b"\x7f" * 10_000).decode()),  # 1.25 s in one frame
    st.text(max_size=200),  # not base64
)
_media = st.fixed_dictionaries(
    {
        "event": st.just("media"),
        "sequenceNumber": _numbers,
        "streamSid": st.one_of(st.just(STREAM_SID), st.text(max_size=40)),
        "media": st.fixed_dictionaries(
            {
                "track": st.sampled_from(["inbound", "outbound", "", "x" * 300]),
                "chunk": _numbers,
                "timestamp": _numbers,
                "payload": _payloads,
            }
        ),
    }
)
_other = st.one_of(
    st.fixed_dictionaries(
        {
            "event": st.just("dtmf"),
            "sequenceNumber": _numbers,
            "streamSid": st.just(STREAM_SID),
            "dtmf": st.fixed_dictionaries(
                {"track": st.just("inbound_track"), "digit": st.text(max_size=4)}
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "event": st.just("mark"),
            "sequenceNumber": _numbers,
            "streamSid": st.just(STREAM_SID),
            "mark": st.fixed_dictionaries({"name": st.text(max_size=100)}),
        }
    ),
    st.fixed_dictionaries(  # a second start, well formed or not
        {
            "event": st.just("start"),
            "sequenceNumber": _numbers,
            "streamSid": st.just(STREAM_SID),
            "start": st.dictionaries(st.text(max_size=12), st.text(max_size=30), max_size=5),
        }
    ),
    st.fixed_dictionaries({"event": st.text(max_size=30)}),  # unknown events
    st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=4),
)
_frame = st.one_of(
    _media.map(json.dumps),
    _other.map(json.dumps),
    st.text(max_size=300),  # not JSON at all
    st.binary(max_size=300),  # a binary frame
    st.just("[" * 5000),  # deeply nested garbage
)


async def _talk_forever(call: CallControl) -> None:
    while True:
        await call.say("Still here, and still listening.", barge_in=BargeInPolicy("any"))
        await call.next_input(500)


class Failures(logging.Handler):
    """Every log record with a traceback, from any logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


async def _scenario(frames: list[str | bytes]) -> tuple[bool, int, dict[str, Any]]:
    speech = await start_speech_server(host="127.0.0.1", port=0)
    bridge = await start_bridge(
        Settings(
            twilio_auth_token=AUTH_TOKEN,
            lmnt_base_url=speech.base_url,
            lmnt_api_key="k",
            flows_dir=FLOWS_DIR,
            port=0,
            log_level="warning",
        ),
        apps={"talk": lambda p: DialogApp(_talk_forever, name="talk")},
        default_app="talk",
    )
    url = websocket_url(bridge.base_url, "/twilio/media")
    headers = {"X-Twilio-Signature": sign_request(AUTH_TOKEN, url)}
    media_after = 0
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
            await ws.send_str(connected())
            await ws.send_str(start({}, call_sid=new_call_sid(), auth_token=AUTH_TOKEN))
            for n, frame in enumerate(frames):
                await ws.send_str(media(n + 2, n + 1))  # the real line goes on
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_str(frame)
                await _drain(ws)
            for n in range(50):  # a second more of line: the bot must still be talking
                await ws.send_str(media(len(frames) + n + 2, len(frames) + n + 1))
                media_after += await _drain(ws, 0.02)
            alive = not ws.closed and len(bridge.state.active_calls) == 1
            await ws.send_str(stop())
        metrics = _malformed(bridge)
    finally:
        await bridge.stop()
        await speech.stop()
    return alive, media_after, metrics


async def _drain(ws: aiohttp.ClientWebSocketResponse, wait_s: float = 0.0) -> int:
    """Read what the bridge sent (echoing nothing); returns how many media frames."""
    count = 0
    while True:
        try:
            msg = await ws.receive(timeout=wait_s or 0.001)
        except TimeoutError:
            return count
        if msg.type != aiohttp.WSMsgType.TEXT:
            return count
        count += json.loads(msg.data).get("event") == "media"


def _malformed(bridge: Any) -> dict[str, Any]:
    family = bridge.state.metrics.malformed_frames
    return {
        labels[0]: value
        for metric in family.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
        for labels, value in [(tuple(sample.labels.values()), sample.value)]
    }


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(st.lists(_frame, min_size=FRAMES_PER_EXAMPLE, max_size=FRAMES_PER_EXAMPLE))
def test_hostile_frames_cost_frames_never_the_call_nor_a_traceback(
    frames: list[str | bytes],
) -> None:
    failures = Failures()
    logging.getLogger().addHandler(failures)
    try:
        alive, media_after, malformed = asyncio.run(_scenario(frames))
    finally:
        logging.getLogger().removeHandler(failures)
    assert alive, "the call was lost"
    assert media_after > 0, "the call went silent"
    assert "internal" not in malformed, malformed  # no frame reached an unexpected error
    assert not failures.records, [r.getMessage() for r in failures.records[:3]]
