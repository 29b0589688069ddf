"""A call the stand-in connects between two apps: the dialler's stream and the number's app.

When someone places a call with ``calls.create`` (TwiML ``<Connect><Stream>`` back to
themselves: the tester dialling a phone number) to a number whose persona is an ``app`` (a
voice webhook, like a Twilio number's Voice URL), Twilio connects two media streams: one to the
dialler, one to the app that answers the number. This plays Twilio on both: it fetches both
TwiMLs, opens both signed streams, and every 20 ms plays one frame of what each side sent into
the other (the receiving side hears silence when the sender has nothing), echoing each side's
marks when its audio has played and honouring ``clear`` as Twilio does.

A REST update of the dialler's call (``<Play digits>`` then ``<Connect><Stream>``: the only way
to send keys, since nothing can play DTMF into a stream) stops the dialler's stream, plays the
digits to the app as ``dtmf`` events, and opens a new stream to the dialler with a new
``streamSid``; ``Status=completed`` ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ivr_bridge.errors import SimulationError
from ivr_bridge.sim.twilio import protocol
from ivr_bridge.sim.twilio.clock import VirtualClock
from ivr_bridge.sim.twilio.jitter import PlayoutBuffer
from ivr_bridge.sim.twilio.signing import USER_AGENT, sign
from ivr_bridge.sim.twilio.twiml import (
    StreamInstruction,
    TwimlError,
    Verdict,
    find_stream,
    verdict_from_twiml,
)

log = structlog.get_logger(__name__)

DIGIT_MS = 250
"""How long ``<Play digits>`` takes per digit (tone and gap); ``w`` waits 500 ms."""


class RelayError(SimulationError):
    """A leg of the relayed call could not be set up."""


@dataclass
class _Leg:
    """One media stream the stand-in runs as Twilio."""

    name: str
    ws: ClientConnection
    ids: protocol.StreamIds
    stamper: protocol.SequenceStamper
    buffer: PlayoutBuffer = field(default_factory=PlayoutBuffer)
    chunk: int = 0
    closed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, message: dict[str, Any]) -> bool:
        async with self.lock:
            if self.closed:
                return False
            try:
                await self.ws.send(json.dumps(self.stamper.stamp(message)))
            except ConnectionClosed:
                self.closed = True
                return False
            return True

    async def stop(self) -> None:
        await self.send(protocol.stop(self.ids))
        self.closed = True
        with contextlib.suppress(Exception):
            await self.ws.close()


class RelayedCall:
    """Both legs of one call, from answer to hang-up."""

    def __init__(
        self,
        *,
        call_sid: str,
        account_sid: str,
        auth_token: str,
        http: aiohttp.ClientSession,
        from_: str,
        to: str,
        caller_twiml: str,
        caller_base_url: str,
        app_url: str,
        speed: float = 1.0,
    ) -> None:
        self.call_sid = call_sid
        self.app_call_sid = protocol.new_sid("CA")
        """The number's side is its own call leg, with its own CallSid."""
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.http = http
        self.from_, self.to = from_, to
        self.caller_twiml = caller_twiml
        self.caller_base_url = caller_base_url
        self.app_url = app_url
        self.clock = VirtualClock(speed)
        self.caller: _Leg | None = None
        self.app: _Leg | None = None
        self.digits_played: list[str] = []
        self.ended_by: str | None = None
        """``app`` (the number hung up), ``caller`` (the dialler's stream closed), ``rest``
        (``Status=completed``), ``time_limit``."""
        self.app_verdict: Verdict | None = None
        """How the app ended its side (its ``<Connect action>``'s TwiML), once the call is over."""
        self._app_action: str | None = None
        self._done = asyncio.Event()
        self._redirecting = False
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self, time_limit_s: float) -> None:
        """Connect both legs and relay until either side ends the call (or the time limit)."""
        app_stream = await self._app_stream()
        self.app = await self._open("app", app_stream, self.app_call_sid)
        self._app_action = app_stream.action_url
        caller_stream = self._caller_stream(self.caller_twiml)
        self.caller = await self._open("caller", caller_stream, self.call_sid)
        self._spawn(self._receive(self.app))
        self._spawn(self._receive(self.caller))
        ticker = asyncio.create_task(self._line(), name="relay-line")
        try:
            await asyncio.wait_for(self._done.wait(), timeout=time_limit_s / self.clock.speed)
        except TimeoutError:
            self.ended_by = "time_limit"
        finally:
            ticker.cancel()
            for leg in (self.caller, self.app):
                if leg is not None and not leg.closed:
                    await leg.stop()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(ticker, *self._tasks, return_exceptions=True)
        await self._after_app_stream()

    async def _after_app_stream(self) -> None:
        """What Twilio does when the app's ``<Connect>`` ends: ask its action URL what next
        (the app's verdict: a hang-up, a transfer, an apology)."""
        url = self._app_action
        if url is None:
            self.app_verdict = Verdict("hangup")
            return
        params = {
            "CallSid": self.app_call_sid,
            "AccountSid": self.account_sid,
            "From": self.from_,
            "To": self.to,
            "CallStatus": "completed" if self.ended_by == "caller" else "in-progress",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        try:
            headers = sign(self.auth_token, url, params)
            async with self.http.post(url, data=params, headers=headers) as response:
                body = await response.text()
        except aiohttp.ClientError as exc:
            self.app_verdict = Verdict("error", target=f"action URL failed: {exc}")
            return
        try:
            self.app_verdict = verdict_from_twiml(body)
        except TwimlError as exc:
            self.app_verdict = Verdict("error", target=str(exc))

    async def update(self, twiml: str | None, status: str | None) -> None:
        """The dialler's REST update: new TwiML for its leg, or ``completed``."""
        if status == "completed":
            self._end("rest")
            return
        if twiml is None:
            return
        root = ET.fromstring(twiml)
        digits = "".join(play.get("digits", "") for play in root.iter("Play"))
        stream = self._caller_stream(twiml)
        self._redirecting = True
        old = self.caller
        if old is not None:
            await old.stop()  # <Connect> ends: the dialler's stream stops
        for digit in digits:
            if digit == "w":
                await asyncio.sleep(0.5 / self.clock.speed)
                continue
            if self.app is not None:
                await self.app.send(protocol.dtmf(digit))
                self.digits_played.append(digit)
            await asyncio.sleep(DIGIT_MS / 1000 / self.clock.speed)
        leg = await self._open("caller", stream, self.call_sid)
        self._redirecting = False
        if self._done.is_set():  # the call ended while the digits played: nothing to stream
            await leg.stop()
            return
        self.caller = leg
        self._spawn(self._receive(leg))

    # --- legs ----------------------------------------------------------------------------------

    async def _app_stream(self) -> StreamInstruction:
        params = {
            "CallSid": self.app_call_sid,
            "AccountSid": self.account_sid,
            "From": self.from_,
            "To": self.to,
            "Caller": self.from_,
            "Called": self.to,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        headers = sign(self.auth_token, self.app_url, params)
        try:
            async with self.http.post(self.app_url, data=params, headers=headers) as response:
                body = await response.text()
                status = response.status
        except aiohttp.ClientError as exc:
            raise RelayError(f"the number's voice URL failed: {exc}") from exc
        if status != 200:
            raise RelayError(f"the number's voice URL answered HTTP {status}")
        stream = find_stream(body, self.app_url)
        if stream is None:
            raise RelayError("the number's TwiML has no <Connect><Stream>")
        return stream

    def _caller_stream(self, twiml: str) -> StreamInstruction:
        stream = find_stream(twiml, self.caller_base_url)
        if stream is None:
            raise RelayError("the call's TwiML has no <Connect><Stream>")
        return stream

    async def _open(self, name: str, stream: StreamInstruction, call_sid: str) -> _Leg:
        parts = urlsplit(stream.url)
        url = urlunsplit(parts._replace(query="")) if parts.query else stream.url
        headers = {"User-Agent": USER_AGENT, **sign(self.auth_token, url, {})}
        try:
            ws = await connect(url, additional_headers=headers, open_timeout=10)
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise RelayError(f"the {name} stream could not open: {exc}") from exc
        ids = protocol.StreamIds(self.account_sid, call_sid, protocol.new_sid("MZ"))
        leg = _Leg(name, ws, ids, protocol.SequenceStamper(ids.stream_sid))
        await ws.send(json.dumps(protocol.connected()))
        await leg.send(protocol.start(ids, stream.parameters))
        return leg

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _end(self, by: str) -> None:
        if self.ended_by is None:
            self.ended_by = by
        self._done.set()

    async def _receive(self, leg: _Leg) -> None:
        try:
            async for frame in leg.ws:
                try:
                    message = protocol.parse_server_message(frame, leg.ids.stream_sid)
                except protocol.ProtocolViolation as violation:
                    log.warning("relay_protocol_error", leg=leg.name, reason=violation.reason)
                    continue
                if isinstance(message, protocol.ServerMedia):
                    leg.buffer.push_audio(message.ulaw)
                elif isinstance(message, protocol.ServerMark):
                    for name in leg.buffer.push_mark(message.name):
                        await leg.send(protocol.mark(name))
                else:
                    for name in leg.buffer.clear().echoes:
                        await leg.send(protocol.mark(name))
        except ConnectionClosed:
            pass
        leg.closed = True
        if leg is self.app:
            self._end("app")
        elif leg is self.caller and not self._redirecting:
            self._end("caller")

    async def _line(self) -> None:
        """Every 20 ms: one frame of each side's audio into the other."""
        self.clock.start()
        t = 0.0
        silence = b"\xff" * protocol.FRAME_BYTES
        while True:
            await self.clock.sleep_until(t)
            for source, sink in ((self.app, self.caller), (self.caller, self.app)):
                if source is None or sink is None:
                    continue
                played = source.buffer.advance()
                for name in played.echoes:
                    await source.send(protocol.mark(name))
                audio = played.audio if played.bot_bytes else silence
                sink.chunk += 1
                await sink.send(protocol.media(sink.chunk, int(t), audio))
            t += protocol.FRAME_MS
