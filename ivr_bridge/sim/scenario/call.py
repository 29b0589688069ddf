"""One simulated Twilio call, end to end: webhook → TwiML → signed stream → script → action URL.

``run_call`` is the library entry point (tests, the demo, the load generator). It needs nothing
from the server's own code: requests are signed with twilio-python's ``RequestValidator`` and every
message is built from the protocol reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from yarl import URL

from ivr_bridge.sim.scenario.llm_caller import check_script as check_llm_caller
from ivr_bridge.sim.scenario.recording import CallRecorder
from ivr_bridge.sim.scenario.result import CallResult, check_expectations, timing_slack_ms
from ivr_bridge.sim.scenario.runner import ScriptRunner, prepare_audio
from ivr_bridge.sim.scenario.script import CallerScript, Expectations, ScriptError
from ivr_bridge.sim.scenario.voice import CallerSpeech, synthesize_caller_speech
from ivr_bridge.sim.twilio import protocol
from ivr_bridge.sim.twilio.clock import VirtualClock
from ivr_bridge.sim.twilio.line import LineConditions, speech_level
from ivr_bridge.sim.twilio.session import StreamSession, StreamStats
from ivr_bridge.sim.twilio.signing import USER_AGENT, sign
from ivr_bridge.sim.twilio.twiml import (
    StreamInstruction,
    TwimlError,
    Verdict,
    find_stream,
    verdict_after_connect,
    verdict_from_twiml,
)

log = structlog.get_logger(__name__)

Transcriber = Callable[[bytes, int], Awaitable[str]]
"""(16-bit PCM, sample rate) → text; used to check what the bot said."""

API_VERSION = "2010-04-01"


def call_params(
    ids: protocol.StreamIds,
    script: CallerScript,
    status: str,
    overrides: dict[str, str] | None = None,
) -> dict[str, str]:
    """The form parameters Twilio posts for an inbound call (``overrides`` make it another:
    an outbound call has ``Direction=outbound-api`` and our number as ``From``)."""
    caller = script.caller
    return {
        "CallSid": ids.call_sid,
        "AccountSid": ids.account_sid,
        "From": caller.from_number,
        "To": caller.to,
        "Caller": caller.from_number,
        "Called": caller.to,
        "CallStatus": status,
        "Direction": "inbound",
        "ApiVersion": API_VERSION,
        **(overrides or {}),
    }


async def _post_twiml(
    http: aiohttp.ClientSession, url: str, params: dict[str, str], auth_token: str | None
) -> tuple[int, str]:
    headers = {"User-Agent": USER_AGENT, **sign(auth_token, url, params)}
    # encoded=True: request exactly the URL that was signed (yarl would otherwise re-quote it).
    async with http.post(URL(url, encoded=True), data=params, headers=headers) as response:
        return response.status, await response.text()


async def run_call(
    *,
    voice_url: str | None,
    ws_url: str | None,
    script: CallerScript,
    auth_token: str | None,
    speed: float = 1.0,
    out_dir: Path | None = None,
    account_sid: str | None = None,
    custom_parameters: dict[str, str] | None = None,
    caller_speech: CallerSpeech | None = None,
    transcriber: Transcriber | None = None,
    first_media_ms: int = 120,
    utterance_gap_ms: float = 500.0,
    open_timeout_s: float = 10.0,
    call_sid: str | None = None,
    webhook_fields: dict[str, str] | None = None,
    clock: VirtualClock | None = None,
    seed: int = 0,
) -> CallResult:
    """Place one simulated call and return what happened.

    Exactly one of ``voice_url`` (start at the voice webhook, like Twilio) and ``ws_url`` (direct
    mode: open that stream with no webhook, for servers that are not ours) is given. ``seed``
    draws the persona's noise, lost packets and jitter (the same seed, the same line).
    """
    if (voice_url is None) == (ws_url is None):
        raise ValueError("give exactly one of voice_url and ws_url")
    if script.branches and transcriber is None:
        raise ScriptError(
            f"script {script.name or '(unnamed)'}: if_bot_said and converse need the bot's words: "
            "run with a transcriber (ivr-bridge call --transcribe)"
        )
    check_llm_caller(script)  # a converse step's model settings, before anything dials
    ids = protocol.StreamIds(
        account_sid=account_sid or protocol.new_sid("AC"),
        call_sid=call_sid or protocol.new_sid("CA"),
        stream_sid=protocol.new_sid("MZ"),
    )
    recorder = CallRecorder(utterance_gap_ms=utterance_gap_ms)
    audio = await prepare_audio(script, caller_speech or synthesize_caller_speech)
    persona = script.caller
    line = None
    if persona.noise is not None or persona.line.impaired:
        level = speech_level([clip for key, clip in audio.items() if key[0] == "say"])
        # ~25 ms of numpy for the noise: off the loop that carries the other calls' lines
        line = await asyncio.to_thread(
            LineConditions, persona.noise, persona.line, seed, speech_rms=level
        )
    clock = clock or VirtualClock(speed)  # given: someone else times events on the line too
    stats = None
    timeout = aiohttp.ClientTimeout(total=open_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        if voice_url is not None:
            params = call_params(ids, script, "ringing", webhook_fields)
            status, twiml = await _post_twiml(http, voice_url, params, auth_token)
            recorder.event(0, "webhook", url=voice_url, status=status)
            instruction: StreamInstruction | None = None
            if status != 200:
                verdict = Verdict("error", target=f"voice webhook answered HTTP {status}")
            else:
                try:
                    instruction = find_stream(twiml, voice_url)
                except TwimlError as exc:
                    verdict = Verdict("error", target=str(exc), twiml=twiml)
                else:
                    if instruction is None:
                        verdict = verdict_from_twiml(twiml)
        else:
            twiml = ""
            instruction = StreamInstruction(
                url=ws_url or "",
                parameters=dict(custom_parameters or script.parameters),
                action_url=None,
            )
        if instruction is not None:
            session, verdict = await _stream(
                instruction,
                ids,
                clock,
                recorder,
                script,
                audio,
                auth_token,
                first_media_ms,
                open_timeout_s,
                line,
                transcriber,
                caller_speech or synthesize_caller_speech,
            )
            if session is not None:
                stats = session.stats
                verdict = (
                    await _after_stream(
                        http,
                        session,
                        instruction,
                        twiml,
                        ids,
                        script,
                        auth_token,
                        recorder,
                        direct=voice_url is None,
                        webhook_fields=webhook_fields,
                    )
                    or verdict
                )
    if line is not None:
        recorder.event(recorder.line_end_ms, "line", seed=seed, frames_lost=line.frames_lost)
    return await finish_result(
        recorder,
        verdict,
        stats,
        call_sid=ids.call_sid,
        stream_sid=ids.stream_sid,
        speed=speed,
        expect=script.expect,
        transcriber=transcriber,
        out_dir=out_dir,
    )


async def finish_result(
    recorder: CallRecorder,
    verdict: Verdict,
    stats: StreamStats | None,
    *,
    call_sid: str,
    stream_sid: str,
    speed: float,
    expect: Expectations,
    transcriber: Transcriber | None,
    out_dir: Path | None,
) -> CallResult:
    """A call that is over, judged: its utterances transcribed, its checks run, its files
    written (any transport's call ends here)."""
    recorder.event(recorder.line_end_ms, "verdict", kind=verdict.kind, target=verdict.target)
    if transcriber is not None:
        for utterance in recorder.utterances:
            pcm = recorder.heard_pcm16(utterance.start_ms, utterance.end_ms)
            utterance.text = (await transcriber(pcm, 8000)).strip()
    recorder.finish()
    result = CallResult(
        call_sid=call_sid,
        stream_sid=stream_sid,
        verdict=verdict,
        recorder=recorder,
        stats=stats,
        speed=speed,
        expectations=check_expectations(
            expect, verdict, recorder, stats, slack_ms=timing_slack_ms(stats, speed)
        ),
    )
    if out_dir is not None:
        await asyncio.to_thread(result.write, out_dir)
    return result


async def _stream(
    instruction: StreamInstruction,
    ids: protocol.StreamIds,
    clock: VirtualClock,
    recorder: CallRecorder,
    script: CallerScript,
    audio: dict[tuple[str, str], bytes],
    auth_token: str | None,
    first_media_ms: int,
    open_timeout_s: float,
    line: LineConditions | None = None,
    transcriber: Transcriber | None = None,
    speech: CallerSpeech | None = None,
) -> tuple[StreamSession | None, Verdict]:
    """Open the signed stream and run the script on it until one side ends it."""
    url = instruction.url
    parts = urlsplit(url)
    if parts.scheme != "wss":
        recorder.event(0, "warning", reason=f"stream URL is {parts.scheme}://; Twilio needs wss://")
    if parts.query:
        recorder.event(0, "warning", reason="stream URL has a query string; Twilio drops it")
        url = urlunsplit(parts._replace(query=""))
    headers = {"User-Agent": USER_AGENT, **sign(auth_token, url, {})}
    try:
        ws = await connect(url, additional_headers=headers, open_timeout=open_timeout_s)
    except InvalidStatus as exc:
        status = exc.response.status_code
        recorder.event(0, "upgrade_rejected", status=status)
        return None, Verdict("error", target=f"stream upgrade answered HTTP {status}")
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        recorder.event(0, "upgrade_failed", reason=str(exc))
        return None, Verdict("error", target=f"stream upgrade failed: {exc}")
    session = StreamSession(
        ws,
        ids,
        clock,
        recorder,
        instruction.parameters,
        first_media_ms=first_media_ms,
        max_duration_ms=script.caller.max_duration_ms,
        line=line,
    )
    runner = asyncio.create_task(
        ScriptRunner(session, script, recorder, audio, transcriber, speech).run()
    )
    try:
        await session.run()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await ws.close()
    return session, Verdict("stream_closed")


async def _after_stream(
    http: aiohttp.ClientSession,
    session: StreamSession,
    instruction: StreamInstruction,
    twiml: str,
    ids: protocol.StreamIds,
    script: CallerScript,
    auth_token: str | None,
    recorder: CallRecorder,
    *,
    direct: bool,
    webhook_fields: dict[str, str] | None = None,
) -> Verdict | None:
    """What Twilio does once the stream is over: nothing after a hangup, else the action URL."""
    if session.closed_by in ("caller", "max_duration"):
        return Verdict("caller_hangup", target=session.closed_by)
    if session.closed_by == "error":
        return Verdict("error", target="the simulated line failed")
    if direct:
        return Verdict("stream_closed")
    if instruction.action_url is None:
        return verdict_after_connect(twiml)
    url = instruction.action_url
    params = call_params(ids, script, "in-progress", webhook_fields)
    t = session.line_ms  # the call's own clock stopped with the stream: stamp at its end
    try:
        if instruction.action_method == "GET":
            # A GET carries the parameters in the query, and the signature covers the full URL.
            full = url + ("&" if "?" in url else "?") + urlencode(params)
            async with http.get(full, headers=sign(auth_token, full, {})) as response:
                status, body = response.status, await response.text()
        else:
            status, body = await _post_twiml(http, url, params, auth_token)
    except aiohttp.ClientError as exc:
        recorder.event(t, "action_request", url=url, error=str(exc))
        return Verdict("error", target=f"action URL failed: {exc}")
    recorder.event(t, "action_request", url=url, status=status)
    if status != 200:
        return Verdict("error", target=f"action URL answered HTTP {status}")
    return verdict_from_twiml(body)
