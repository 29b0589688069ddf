"""An offline stand-in for Twilio's Calls API: it takes ``calls.create`` exactly as
twilio-python sends it, rings, and plays the callee.

Each callee is a *persona* (by phone number): a person who answers and follows a caller script
through the simulated caller (voice webhook, signed stream, after-stream request: the same path
an inbound call takes, with ``Direction=outbound-api``), a line that is busy, one that rings out,
a number that fails, or one Twilio refuses at once (HTTP 400 with error 21211, as for an
invalid number). Status callbacks (``initiated``, ``ringing``, ``in-progress``, then the final
status) and the asynchronous answering-machine result are signed with the account's auth token
and sent in Twilio's order, or (when asked) held to the end of the call and shuffled, and sent
twice, as the real ones sometimes arrive.

Every create request is stamped on one monotonic clock (``create_times``) so a test can measure
the rate it was dialled at, and ``GET Calls/{sid}.json`` / ``GET Calls.json?To=`` answer the
reconciler's questions.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import math
import random
import struct
import tempfile
import time
import wave
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web
from yarl import URL

from ivr_bridge.sim.scenario import caller_voice
from ivr_bridge.sim.scenario.call import run_call, sign
from ivr_bridge.sim.scenario.hearing import BotTranscriber
from ivr_bridge.sim.scenario.result import CallResult
from ivr_bridge.sim.scenario.script import CallerScript
from ivr_bridge.sim.twilio import protocol
from ivr_bridge.sim.twilio.clock import VirtualClock
from ivr_bridge.sim.twilio.relay import RelayedCall, RelayError

API = "/2010-04-01/Accounts/{account}"
PersonaKind = Literal[
    "human", "hang_up_early", "voicemail", "busy", "no_answer", "failed", "invalid", "app"
]
"""``hang_up_early``: answers "Hello?", says "Sorry, not now." over the bot's first words and
hangs up. ``app``: the number is answered by a voice app (its ``voice_url``, like a Twilio
number's Voice URL), connected to the dialler's own ``<Connect><Stream>`` (see
:mod:`ivr_bridge.sim.twilio.relay`)."""
BEEP_MS = 500
"""The answering machine's tone after its greeting (1 kHz)."""
AMD_DECISION_MS = 300
"""How long after the tone ends the machine verdict is known."""
DEFAULT_GREETING = (
    "Hi, you have reached Ana. I can't take your call right now. "
    "Please leave a message after the tone."
)
E164_DIGITS = range(8, 16)
FIRST_MEDIA_MS = 120
"""Line time of the callee's first media frame after the stream starts."""
FINAL = ("completed", "busy", "no-answer", "failed")
"""Sent whatever events were asked for (Twilio always reports how a call ended)."""


@dataclass(frozen=True, slots=True)
class Persona:
    kind: PersonaKind = "human"
    ring_ms: int = 2_000
    """How long it rings before anyone answers (or the line gives up)."""
    script: CallerScript | None = None
    """What the person does once connected (``human``)."""
    answered_by: str | None = None
    """The answering-machine result reported (default: ``human``; ``machine_end_beep`` for a
    ``voicemail`` persona)."""

    @property
    def verdict(self) -> str:
        if self.answered_by is not None:
            return self.answered_by
        return "machine_end_beep" if self.kind == "voicemail" else "human"

    amd_ms: int = 2_500
    """Call time after the answer at which that result is known (``voicemail``: set from the
    greeting's length, so the verdict comes just after the tone, as DetectMessageEnd's does)."""
    greeting: str = DEFAULT_GREETING
    """What a ``voicemail`` persona's machine says before the tone."""
    seed: int = 0
    """Draws the callee's line noise, lost packets and jitter (see ``run_call``)."""
    voice_url: str | None = None
    """``app``: the webhook that answers the number."""


@dataclass
class StandInCall:
    sid: str
    to: str
    from_: str
    form: dict[str, Any]
    persona: Persona
    created_at: float
    status: str = "queued"
    duration_s: int | None = None
    answered_by: str | None = None
    result: CallResult | None = None
    beep_end_ms: float | None = None
    """Voicemail: line time at which the machine's tone ended (a message starts after it)."""
    created_mono: float = 0.0
    """``time.monotonic()`` of the create request (the event loop's clock too)."""
    line: VirtualClock | None = None
    """The answered call's line clock (call time 0 = the stream opened)."""
    relay: RelayedCall | None = None
    """``app`` numbers: the two streams this call connects."""
    relay_error: str | None = None

    def dial_to_first_audio_s(self) -> float | None:
        """Real seconds from the create request to the first bot audio the callee heard,
        ringing included (None: nobody answered, the bot never spoke, or the caller's clock
        slipped before it, which makes the conversion back to real time unknowable)."""
        line = self.line
        if self.result is None or line is None or line.started_at is None:
            return None
        if not self.result.recorder.utterances or line.slipped_ms > 0:
            return None
        first = self.result.recorder.utterances[0].start_ms
        return line.started_at + line.real_seconds(first) - self.created_mono

    callbacks: list[dict[str, str]] = field(default_factory=list)

    def resource(self, account: str) -> dict[str, Any]:
        created = format_datetime(datetime.fromtimestamp(self.created_at, UTC), usegmt=True)
        return {
            "sid": self.sid,
            "account_sid": account,
            "to": self.to,
            "from": self.from_,
            "status": self.status,
            "direction": "outbound-api",
            "date_created": created,
            "date_updated": created,
            "duration": None if self.duration_s is None else str(self.duration_s),
            "answered_by": self.answered_by,
            "api_version": "2010-04-01",
            "uri": f"{API.format(account=account)}/Calls/{self.sid}.json",
        }


class TwilioRestStandIn:
    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        personas: Callable[[str], Persona],
        speed: float = 1.0,
        shuffle_callbacks: bool = False,
        duplicate_callbacks: bool = False,
        seed: int = 0,
        transcriber: BotTranscriber | None = None,
        out_dir: Path | None = None,
    ) -> None:
        """``shuffle_callbacks``: a call's status callbacks are held until it ends, then sent
        in a random order (``completed`` may come before ``ringing``); ``duplicate_callbacks``:
        each is sent twice, as Twilio's retries do. ``transcriber``: what callees hear is
        transcribed (for ``bot_said`` checks and ``if_bot_said`` steps); ``out_dir``: each
        answered call's recording and transcript go to ``out_dir/<number>/<n>``."""
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.personas = personas
        self.speed = speed
        self.shuffle = shuffle_callbacks
        self.duplicate = duplicate_callbacks
        self._random = random.Random(seed)
        self.transcriber = transcriber
        self.out_dir = out_dir
        self.calls: dict[str, StandInCall] = {}
        self.create_times: list[float] = []
        """``time.monotonic()`` of every accepted create request."""
        self.refused: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._beep_path: Path | None = None
        self._beep_dir: tempfile.TemporaryDirectory[str] | None = None
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        base = API.format(account="{account}")
        app.router.add_post(base + "/Calls.json", self._create)
        app.router.add_get(base + "/Calls.json", self._list)
        app.router.add_get(base + "/Calls/{sid}.json", self._fetch)
        app.router.add_post(base + "/Calls/{sid}.json", self._update)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{bound[1]}"
        self._http = aiohttp.ClientSession()
        return self.base_url

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._beep_dir is not None:
            self._beep_dir.cleanup()

    async def settled(self, timeout_s: float = 60.0) -> None:
        """Wait until every call placed so far has ended and sent its callbacks."""
        async with asyncio.timeout(timeout_s):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- the REST API ------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        if request.match_info["account"] != self.account_sid:
            return False
        header = request.headers.get("Authorization", "")
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        return hmac.compare_digest(header, expected)

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {"code": code, "message": message, "more_info": "", "status": status}, status=status
        )

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        form = await request.post()
        fields: dict[str, Any] = {
            k: form.getall(k) if k == "StatusCallbackEvent" else form[k] for k in set(form.keys())
        }
        to, from_ = str(fields.get("To", "")), str(fields.get("From", ""))
        if not fields.get("Url") and not fields.get("Twiml"):
            return self._error(400, 21205, "Url parameter is required")
        if not from_:
            return self._error(400, 21603, "A 'From' phone number is required")
        persona = self.personas(to)
        digits = to[1:]
        if persona.kind == "invalid" or not (
            to.startswith("+") and digits.isdigit() and len(digits) in E164_DIGITS
        ):
            self.refused.append(fields)
            return self._error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        call = StandInCall(
            protocol.new_sid("CA"), to, from_, fields, persona, created_at=time.time()
        )
        self.calls[call.sid] = call
        call.created_mono = time.monotonic()
        self.create_times.append(call.created_mono)
        self._spawn(self._play(call))
        return web.json_response(call.resource(self.account_sid), status=201)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        call = self.calls.get(request.match_info["sid"])
        if call is None:
            return self._error(404, 20404, "The requested resource was not found")
        return web.json_response(call.resource(self.account_sid))

    async def _update(self, request: web.Request) -> web.Response:
        """``calls(sid).update(twiml=...)`` / ``status="completed"`` (relayed calls only)."""
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        call = self.calls.get(request.match_info["sid"])
        if call is None:
            return self._error(404, 20404, "The requested resource was not found")
        if call.status != "in-progress" or call.relay is None:
            return self._error(400, 21220, "Call is not in-progress. Cannot redirect.")
        form = await request.post()
        twiml = form.get("Twiml")
        status = form.get("Status")
        self._spawn(
            call.relay.update(
                str(twiml) if twiml is not None else None,
                str(status) if status is not None else None,
            )
        )
        return web.json_response(call.resource(self.account_sid))

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        to, from_ = request.query.get("To"), request.query.get("From")
        found = [
            c.resource(self.account_sid)
            for c in sorted(self.calls.values(), key=lambda c: -c.created_at)
            if (to is None or c.to == to) and (from_ is None or c.from_ == from_)
        ]
        return web.json_response(
            {
                "calls": found,
                "page": 0,
                "page_size": 50,
                "next_page_uri": None,
                "uri": request.path_qs,
            }
        )

    # -- one call ----------------------------------------------------------------------------

    async def _wait(self, call_ms: float) -> None:
        await asyncio.sleep(call_ms / 1000 / self.speed)

    async def _play(self, call: StandInCall) -> None:
        persona = call.persona
        pending: list[tuple[str, dict[str, str]]] = []
        seq = 0

        def status(name: str, **extra: str) -> None:
            nonlocal seq
            call.status = name
            if name in self._events(call) or name in FINAL:
                pending.append(
                    ("status", {"CallStatus": name, "SequenceNumber": str(seq), **extra})
                )
                seq += 1

        ring_timeout_ms = 1000 * int(call.form.get("Timeout", 60))
        status("initiated")
        status("ringing")
        await self._flush(call, pending)
        if persona.kind == "failed":
            status("failed")
        elif persona.kind == "busy":
            await self._wait(min(persona.ring_ms, 500))
            status("busy", CallDuration="0")
        elif persona.kind == "no_answer" or persona.ring_ms >= ring_timeout_ms:
            await self._wait(ring_timeout_ms)
            status("no-answer", CallDuration="0")
        else:
            await self._wait(persona.ring_ms)
            status("in-progress")
            await self._flush(call, pending)
            answered = time.monotonic()
            if persona.kind == "app":
                await self._relay(call)
                call.duration_s = max(1, round((time.monotonic() - answered) * self.speed))
                status("completed", CallDuration=str(call.duration_s))
                await self._flush(call, pending, final=True)
                return
            script, amd_ms = await self._script(call)
            line = call.line = VirtualClock(self.speed)
            amd = asyncio.create_task(self._amd(call, amd_ms, line))
            try:
                call.result = await self._converse(call, script, line)
            finally:
                amd.cancel()  # a call over before its verdict gets none
                await asyncio.gather(amd, return_exceptions=True)
            duration = max(1, round((time.monotonic() - answered) * self.speed))
            call.duration_s = duration
            status("completed", CallDuration=str(duration))
        await self._flush(call, pending, final=True)

    async def _relay(self, call: StandInCall) -> None:
        """Connect the dialler's stream to the number's app until one side hangs up."""
        assert self._http is not None and call.persona.voice_url is not None
        try:
            twiml, base = await self._caller_twiml(call)
            call.relay = RelayedCall(
                call_sid=call.sid,
                account_sid=self.account_sid,
                auth_token=self.auth_token,
                http=self._http,
                from_=call.from_,
                to=call.to,
                caller_twiml=twiml,
                caller_base_url=base,
                app_url=call.persona.voice_url,
                speed=self.speed,
            )
            await call.relay.run(time_limit_s=float(call.form.get("TimeLimit", 14_400)))
        except (RelayError, aiohttp.ClientError, ET.ParseError) as exc:
            call.relay_error = str(exc)

    async def _caller_twiml(self, call: StandInCall) -> tuple[str, str]:
        """The dialler's TwiML: given inline (``Twiml``) or fetched from its ``Url``."""
        inline = call.form.get("Twiml")
        if inline:
            return str(inline), ""
        assert self._http is not None
        url = str(call.form["Url"])
        params = {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": "in-progress",
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
        }
        async with self._http.post(
            url, data=params, headers=sign(self.auth_token, url, params)
        ) as r:
            if r.status != 200:
                raise RelayError(f"the call's Url answered HTTP {r.status}")
            return await r.text(), url

    def _events(self, call: StandInCall) -> set[str]:
        asked = call.form.get("StatusCallbackEvent") or []
        names = {str(e) for e in (asked if isinstance(asked, list) else [asked])}
        return {"in-progress" if n == "answered" else n for n in names}

    async def _amd(self, call: StandInCall, amd_ms: float, line: VirtualClock) -> None:
        """The verdict at ``amd_ms`` of *line* time: Twilio decides on the audio it hears, so
        a caller that falls behind (its clock slips) delays the verdict with it."""
        if str(call.form.get("AsyncAmd", "")).lower() != "true":
            return
        while not line.started:  # noqa: ASYNC110 - the line starts inside run_call
            await asyncio.sleep(0.005)
        while line.now_ms() < amd_ms:
            await line.sleep_until(amd_ms)
        call.answered_by = call.persona.verdict
        url = str(call.form.get("AsyncAmdStatusCallback") or "")
        if url:
            await self._send(
                call,
                url,
                {
                    "AnsweredBy": call.persona.verdict,
                    "MachineDetectionDuration": str(round(amd_ms)),
                },
            )

    async def _script(self, call: StandInCall) -> tuple[CallerScript, float]:
        """The callee's script, and when the machine verdict is known (call ms after answer)."""
        persona = call.persona
        if persona.kind == "hang_up_early":
            # Gone a moment into the bot's first words, whenever they come: a fixed silence
            # would race the bridge's first audio on a loaded machine.
            steps: list[Any] = [
                {"say": "Hello?"},
                {"barge_in": {"after_ms": 300, "say": "Sorry, not now."}},
                "hangup",
            ]
            return CallerScript.model_validate({"steps": steps}), persona.amd_ms
        if persona.kind != "voicemail":
            script = persona.script or CallerScript.model_validate(
                {"steps": [{"say": "Hello?"}, "wait_for_bot", "hangup"]}
            )
            return script, persona.amd_ms
        # A suite's voicemail persona brings its own checks (what the message must say) and
        # machine voice; its steps are the machine's, always.
        base = persona.script or CallerScript()
        voice = base.caller.voice
        speech = await caller_voice.synthesize(persona.greeting, voice, 8000, base.caller.rate)
        greeting_ms = len(speech) / 16
        call.beep_end_ms = FIRST_MEDIA_MS + greeting_ms + BEEP_MS
        machine = CallerScript.model_validate(
            {
                "steps": [
                    {"say": persona.greeting},
                    {"play": str(self._beep())},
                    {"silence": 30_000},  # recording whatever is said, until the bot hangs up
                    "hangup",
                ]
            }
        )
        script = base.model_copy(update={"steps": machine.steps})
        return script, call.beep_end_ms + AMD_DECISION_MS

    def _beep(self) -> Path:
        if self._beep_path is None:
            self._beep_dir = tempfile.TemporaryDirectory(prefix="ivr-standin-")
            path = Path(self._beep_dir.name) / "beep.wav"
            samples = [
                round(12_000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(8 * BEEP_MS)
            ]
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(8000)
                out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
            self._beep_path = path
        return self._beep_path

    async def _converse(
        self, call: StandInCall, script: CallerScript, line: VirtualClock
    ) -> CallResult | None:
        return await run_call(
            voice_url=str(call.form["Url"]),
            ws_url=None,
            script=script,
            auth_token=self.auth_token,
            speed=self.speed,
            account_sid=self.account_sid,
            call_sid=call.sid,
            first_media_ms=FIRST_MEDIA_MS,
            clock=line,
            transcriber=self.transcriber,
            out_dir=self._call_dir(call),
            seed=call.persona.seed,
            webhook_fields={
                "From": call.from_,
                "To": call.to,
                "Direction": "outbound-api",
                "Caller": call.from_,
                "Called": call.to,
            },
        )

    def _call_dir(self, call: StandInCall) -> Path | None:
        if self.out_dir is None:
            return None
        earlier = sum(
            1
            for c in self.calls.values()
            if c.to == call.to and c.created_mono <= call.created_mono
        )
        return self.out_dir / call.to.lstrip("+") / str(earlier)

    async def _flush(
        self, call: StandInCall, pending: list[tuple[str, dict[str, str]]], *, final: bool = False
    ) -> None:
        if self.shuffle and not final:
            return  # held until the call ends
        url = str(call.form.get("StatusCallback") or "")
        batch, pending[:] = list(pending), []
        if self.duplicate:
            batch += batch
        if self.shuffle:
            self._random.shuffle(batch)
        for _, fields in batch:
            if url:
                await self._send(call, url, fields)

    async def _send(self, call: StandInCall, url: str, fields: dict[str, str]) -> None:
        form = {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.from_,
            "To": call.to,
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
            "Timestamp": format_datetime(datetime.now(UTC), usegmt=True),
            "CallbackSource": "call-progress-events",
            **fields,
        }
        call.callbacks.append(form)
        assert self._http is not None
        try:
            headers = sign(self.auth_token, url, form)
            async with self._http.post(URL(url, encoded=True), data=form, headers=headers) as r:
                await r.read()
        except aiohttp.ClientError:
            pass  # Twilio does not retry a status callback either
