"""``dial`` targets: the tester places a real phone call to the agent's number over Twilio.

The call is created with twilio-python's async client (``calls.create`` with inline TwiML
``<Connect><Stream>`` back to the tester, no answering-machine detection, so the agent is never
taken for a machine, and a ``TimeLimit``, so a call that hangs costs at most that), and only to
numbers the suite's allow-list names. Twilio then opens a media stream to the tester's own
WebSocket server; its upgrade must carry a valid ``X-Twilio-Signature`` (403 otherwise), and the
stream is matched to the call by its ``CallSid``. Keys are sent by redirecting the call
(``<Play digits>`` then a new stream), the only way Twilio offers.

The REST base URL is a setting (``TWILIO_API_BASE_URL``), so all of it runs against the Twilio
REST stand-in, whose ``app`` numbers connect the call to a voice app exactly as Twilio would; for
real calls the tester needs a public ``wss://`` address (``IVR_TESTER_PUBLIC_URL``, e.g. a
tunnel) and the account's credentials.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from aiohttp import WSMsgType, web
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from ivr_bridge.errors import SimulationError
from ivr_bridge.sim.scenario.call import finish_result
from ivr_bridge.sim.scenario.hearing import BotTranscriber
from ivr_bridge.sim.scenario.llm_caller import check_script as check_llm_caller
from ivr_bridge.sim.scenario.recording import CallRecorder
from ivr_bridge.sim.scenario.result import CallResult
from ivr_bridge.sim.scenario.runner import ScriptRunner, prepare_audio
from ivr_bridge.sim.scenario.voice import synthesize_caller_speech
from ivr_bridge.sim.twilio.clock import VirtualClock
from ivr_bridge.sim.twilio.served import ServedCall
from ivr_bridge.sim.twilio.twiml import Verdict
from ivr_bridge.tester.suite import DialTarget, PlannedScenario

STREAM_PATH = "/tester/stream"
START_WAIT_S = 10.0
"""How long a new stream may take to send ``start`` (and its call to be known)."""


class DialError(SimulationError):
    """A call the tester could not place (credentials, allow-list, Twilio refused it)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    account_sid: str
    auth_token: str
    api_base_url: str

    @classmethod
    def from_env(cls) -> Credentials:
        sid = os.environ.get("TWILIO_ACCOUNT_SID", "")
        token = os.environ.get("TWILIO_AUTH_TOKEN", "")
        if not sid or not token:
            raise DialError(
                "a dial target places real calls: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
                "(and TWILIO_API_BASE_URL to use the Twilio REST stand-in)"
            )
        base = os.environ.get("TWILIO_API_BASE_URL", "https://api.twilio.com")
        return cls(sid, token, base.rstrip("/"))


class Dialler:
    """Places calls and serves the streams Twilio opens back to the tester."""

    def __init__(self, credentials: Credentials, public_url: str | None) -> None:
        self.credentials = credentials
        self._public = public_url.rstrip("/") if public_url else None
        self._validator = RequestValidator(credentials.auth_token)
        self._http = AsyncTwilioHttpClient(timeout=15)
        self._client = Client(
            credentials.account_sid, credentials.auth_token, http_client=self._http
        )
        self._client.api.base_url = credentials.api_base_url
        self._calls: dict[str, ServedCall] = {}
        self._known = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.stream_url = ""
        self.refused_upgrades = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_get(STREAM_PATH, self._stream)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        base = self._public or f"ws://{host}:{bound}"
        self.stream_url = (
            base.replace("https://", "wss://").replace("http://", "ws://") + STREAM_PATH
        )

    async def close(self) -> None:
        await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the calls -----------------------------------------------------------------------------

    def _connect_twiml(self, before: str = "") -> str:
        return (
            f"<Response>{before}<Connect><Stream url={quoteattr(self.stream_url)} /></Connect>"
            "</Response>"
        )

    async def call(
        self,
        scenario: PlannedScenario,
        target: DialTarget,
        *,
        transcriber: BotTranscriber | None,
        out_dir: Path | None,
    ) -> CallResult:
        """Dial the scenario's number and run its caller script on the call."""
        script = scenario.script
        check_llm_caller(script)
        audio = await prepare_audio(script, synthesize_caller_speech)
        try:
            created = await self._client.calls.create_async(
                to=target.to,
                from_=target.from_number,
                twiml=self._connect_twiml(),
                timeout=target.ring_timeout_s,
                time_limit=target.time_limit_s,
            )
        except TwilioRestException as exc:
            raise DialError(f"Twilio refused the call to {target.to}: {exc.msg}") from None
        sid = str(created.sid)
        recorder = CallRecorder()
        clock = VirtualClock(1.0)

        async def press(digit: str) -> None:
            before = f"<Play digits={quoteattr(digit)} />"
            await self._client.calls(sid).update_async(twiml=self._connect_twiml(before))

        served = ServedCall(
            sid, clock, recorder, max_duration_ms=target.time_limit_s * 1000, press_keys=press
        )
        async with self._known:
            self._calls[sid] = served
            self._known.notify_all()
        runner = asyncio.create_task(
            ScriptRunner(
                served, script, recorder, audio, transcriber, synthesize_caller_speech
            ).run()
        )
        try:
            async with asyncio.timeout(target.ring_timeout_s + START_WAIT_S):
                await served.answered()
            async with asyncio.timeout(target.time_limit_s + START_WAIT_S):
                await served.run()
        except TimeoutError:
            why = "the call did not end in time" if served.streams else "nobody answered"
            recorder.event(served.line_ms, "warning", reason=why)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            self._calls.pop(sid, None)
            if not served.ended:
                await served.hangup("caller")
                await self._end(sid)
        return await _result(served, recorder, scenario, transcriber, out_dir)

    async def _end(self, sid: str) -> None:
        try:
            await self._client.calls(sid).update_async(status="completed")
        except TwilioRestException:
            pass  # already over

    # --- the streams ---------------------------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not self._validator.validate(self.stream_url, {}, signature):
            self.refused_upgrades += 1
            return web.Response(status=403, text="invalid X-Twilio-Signature")
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        start = await _read_start(ws)
        if start is None:
            await ws.close()
            return ws
        sid = str((start.get("start") or {}).get("callSid", ""))
        served = await self._wait_for_call(sid)
        if served is None:
            await ws.close()
            return ws
        await served.serve(ws, start)
        return ws

    async def _wait_for_call(self, sid: str) -> ServedCall | None:
        deadline = time.monotonic() + START_WAIT_S
        async with self._known:
            while sid not in self._calls:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._known.wait(), left)
                except TimeoutError:
                    return None
            return self._calls[sid]


async def _read_start(ws: web.WebSocketResponse) -> dict[str, Any] | None:
    """Skip ``connected``; return the ``start`` message (None if the stream ends first)."""
    try:
        async with asyncio.timeout(START_WAIT_S):
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                if data.get("event") == "start":
                    return dict(data)
    except (TimeoutError, ValueError):
        return None
    return None


async def _result(
    served: ServedCall,
    recorder: CallRecorder,
    scenario: PlannedScenario,
    transcriber: BotTranscriber | None,
    out_dir: Path | None,
) -> CallResult:
    if served.closed_by in ("caller", "max_duration"):
        verdict = Verdict("caller_hangup", target=served.closed_by)
    elif served.streams == 0:
        verdict = Verdict("error", target="the call was never answered (no stream came)")
    else:
        verdict = Verdict("hangup")  # the far end ended the call: all a caller can tell
    return await finish_result(
        recorder,
        verdict,
        served.stats,
        call_sid=served.call_sid,
        stream_sid="",
        speed=1.0,
        expect=scenario.script.expect,
        transcriber=transcriber,
        out_dir=out_dir,
    )


@asynccontextmanager
async def open_dialler(public_url: str | None) -> AsyncIterator[Dialler]:
    dialler = Dialler(Credentials.from_env(), public_url)
    await dialler.start()
    try:
        yield dialler
    finally:
        await dialler.close()
