"""A minimal Twilio-shaped peer for protocol-level assertions on every frame the bridge sends.

The full simulated caller lives in ``ivr_bridge.sim``; this one exists so the foundation tests can
look at raw frames without any playback model in between. It echoes each mark as soon as it
arrives (as if playback were instant), which Twilio also does when nothing is buffered.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ivr_bridge.server.stream_tokens import TOKEN_PARAMETER, derive_key, issue
from ivr_bridge.telephony.twilio.signature import sign_request, websocket_url

CALL_SID = "CA" + "0" * 32
STREAM_SID = "MZ" + "1" * 32
ACCOUNT_SID = "AC" + "2" * 32


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start(
    parameters: dict[str, str] | None = None,
    *,
    call_sid: str = CALL_SID,
    auth_token: str | None = None,
) -> str:
    """A ``start``; with ``auth_token``, carrying the stream token the voice webhook would have
    given this call (the bridge refuses a start without one)."""
    parameters = dict(parameters or {})
    if auth_token is not None:
        parameters[TOKEN_PARAMETER] = issue(derive_key(auth_token), call_sid, parameters)
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": STREAM_SID,
            "start": {
                "accountSid": ACCOUNT_SID,
                "streamSid": STREAM_SID,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "customParameters": parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


def media(seq: int, chunk: int, audio: bytes = b"\xff" * 160) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "streamSid": STREAM_SID,
            "media": {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(100 + 20 * chunk),
                "payload": base64.b64encode(audio).decode(),
            },
        }
    )


@dataclass
class SessionLog:
    frames: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    closed_by_server: bool = False
    media_arrivals: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic time, bytes) of each media frame as it arrived."""

    @property
    def events(self) -> list[str]:
        return [f["event"] for f in self.frames]


async def run_session(
    base_url: str,
    auth_token: str,
    *,
    parameters: dict[str, str] | None = None,
    extra: list[str | bytes] | None = None,
    mid_call: list[str] | None = None,
    echo_marks: bool = True,
    call_sid: str = CALL_SID,
) -> SessionLog:
    """Open a signed stream, send connected/start (+extra frames), echo marks until closed.

    ``mid_call`` frames go out once the first bot audio arrives, i.e. while the call is running.
    ``echo_marks=False`` plays a Twilio whose mark echoes are all lost.
    """
    url = websocket_url(base_url, "/twilio/media")
    headers = {"X-Twilio-Signature": sign_request(auth_token, url)}
    result = SessionLog()
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_str(connected())
        await ws.send_str(start(parameters, call_sid=call_sid, auth_token=auth_token))
        for frame in extra or []:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"bridge sent a non-text frame: {msg.type}")
            frame = json.loads(msg.data)
            result.frames.append(frame)
            if frame["event"] == "media":
                if not result.audio:
                    for pending in mid_call or []:
                        await ws.send_str(pending)
                audio = base64.b64decode(frame["media"]["payload"])
                result.audio.extend(audio)
                result.media_arrivals.append((time.monotonic(), len(audio)))
            elif frame["event"] == "mark" and echo_marks:
                await ws.send_str(
                    json.dumps(
                        {
                            "event": "mark",
                            "sequenceNumber": "9",
                            "streamSid": STREAM_SID,
                            "mark": frame["mark"],
                        }
                    )
                )
        result.closed_by_server = ws.close_code is not None
    return result


def stop() -> str:
    return json.dumps(
        {
            "event": "stop",
            "sequenceNumber": "99",
            "streamSid": STREAM_SID,
            "stop": {"accountSid": ACCOUNT_SID, "callSid": CALL_SID},
        }
    )


async def hang_up_mid_prompt(
    base_url: str, auth_token: str, *, how: str = "stop", parameters: dict[str, str] | None = None
) -> None:
    """Open a signed stream, wait for the first bot audio, then hang up as a caller does:
    ``stop`` then close (Twilio's way), or drop the socket with no ``stop`` (a lost line)."""
    url = websocket_url(base_url, "/twilio/media")
    headers = {"X-Twilio-Signature": sign_request(auth_token, url)}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        await ws.send_str(connected())
        await ws.send_str(start(parameters, call_sid=new_call_sid(), auth_token=auth_token))
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data)["event"] == "media":
                break
        else:
            raise AssertionError("the bridge closed before any audio")
        if how == "stop":
            await ws.send_str(stop())
        await ws.close()
