"""The aiohttp application and its lifecycle: routes, embedded speech server, graceful drain."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ivr_bridge.audio.silero import shared_pool
from ivr_bridge.call.app import AppFactory
from ivr_bridge.call.registry import HangUpNow
from ivr_bridge.campaign.script import load_scripts
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.config import Settings
from ivr_bridge.dialog.flow import load_flows_dir
from ivr_bridge.dialog.llm_step import llm_configuration_problem
from ivr_bridge.dialog.reminder import REMINDER_APP, reminder_app_factory
from ivr_bridge.metrics import BridgeMetrics, multiprocess_dir, render_all_workers
from ivr_bridge.recognition import warm_up_recognizers
from ivr_bridge.records.webhook import open_call_webhook
from ivr_bridge.server.call_metrics import CallMetrics
from ivr_bridge.server.call_records import open_record_keeper
from ivr_bridge.server.campaign_api import add_campaign_api_routes
from ivr_bridge.server.campaign_metrics import CampaignMetrics
from ivr_bridge.server.campaign_webhooks import add_campaign_routes
from ivr_bridge.server.control import add_control_routes
from ivr_bridge.server.loop_lag import loop_lag_probe_ctx
from ivr_bridge.server.media_stream import media_stream
from ivr_bridge.server.operator_pages import add_operator_routes
from ivr_bridge.server.outbound import open_campaigns, start_dialling
from ivr_bridge.server.readiness import SpeechPathHealth
from ivr_bridge.server.shared_state import open_shared_state
from ivr_bridge.server.state import STATE, WEBHOOK_MAX_BYTES, BridgeState
from ivr_bridge.server.stream_tokens import StreamTokens, derive_key
from ivr_bridge.server.twilio_webhooks import (
    AFTER_STREAM_PATH,
    MEDIA_PATH,
    VOICE_PATH,
    after_stream_webhook,
    voice_webhook,
)
from ivr_bridge.server.voice_check import check_voices
from ivr_bridge.speech.lmnt.client import connect_lmnt
from ivr_bridge.speech.lmnt.url import session_url
from ivr_bridge.speech.session import SpeechSession, SpeechSessionError
from ivr_bridge.telephony.twilio.signature import TwilioSignatureChecker

if TYPE_CHECKING:
    from ivr_bridge.speechserver.app import RunningSpeechServer

log = structlog.get_logger(__name__)

SHUTDOWN_WORDS = (
    "We're sorry, this line has to close for maintenance now. Please call again in a minute. "
    "Goodbye."
)
"""What a call still running when a drain's grace is nearly over hears before it ends."""
FINAL_WORDS_S = 8.0
"""The end of the grace that is kept for those words."""
AFTER_STREAM_WAIT_S = 5.0
"""After the last stream closed, how long a drain waits for Twilio's after-stream requests."""

PLACEHOLDER_KEY = "ivr-bridge-no-key"
"""Sent to keyless LMNT-compatible servers (ours accepts any non-empty key on loopback)."""
SILERO_ENGINES_AT_START = 4
"""silero engines created (in a thread) before the first call: one per onset judged at the same
moment; the pool grows in a thread beyond that (``ivr_bridge.audio.silero``)."""


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "status": "draining" if state.draining else "ok",
            "active_calls": len(state.active_calls),
            "pid": os.getpid(),
            "replica": state.shared.replica if state.shared is not None else None,
        }
    )


async def readyz(request: web.Request) -> web.Response:
    """503 while draining or while the speech path is down: send new calls elsewhere."""
    state = request.app[STATE]
    speech = state.speech_health
    problems = []
    if state.draining:
        problems.append("draining: shutting down, not answering new calls")
    if speech is not None and not speech.up:
        problems.append(f"speech path down: {speech.reason}")
    body = {"ready": not problems, "problems": problems, "active_calls": len(state.active_calls)}
    return web.json_response(body, status=503 if problems else 200)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.campaign_metrics is not None:
        await state.campaign_metrics.refresh()
    directory = multiprocess_dir()
    if directory is not None:  # one of several workers: report them all
        body = await asyncio.to_thread(render_all_workers, directory)
    else:
        body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(state: BridgeState) -> web.Application:
    app = web.Application(client_max_size=WEBHOOK_MAX_BYTES)
    app[STATE] = state
    app.router.add_post(VOICE_PATH, voice_webhook)
    app.router.add_post(AFTER_STREAM_PATH, after_stream_webhook)
    app.router.add_get(MEDIA_PATH, media_stream)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    add_control_routes(app)
    add_campaign_routes(app)
    add_campaign_api_routes(app)
    add_operator_routes(app, lambda: state.records, state.settings.operator_token)
    app.cleanup_ctx.append(loop_lag_probe_ctx)
    app.cleanup_ctx.append(_speech_probe_ctx)
    return app


async def _speech_probe_ctx(app: web.Application) -> AsyncIterator[None]:
    health = app[STATE].speech_health
    if health is None:
        yield
        return
    async with health.probing():
        yield


@dataclass
class RunningBridge:
    base_url: str
    state: BridgeState
    runner: web.AppRunner
    speech_server: object | None = None
    """The embedded speech server, when this bridge started one."""

    async def drain(self, grace_s: float) -> None:
        """Stop answering new calls; let active ones finish within ``grace_s``, the last of it
        spent ending the overrunning ones with words; then wait (briefly) until Twilio has
        collected every call's outcome, so a transfer or hang-up decided during the drain is
        carried out. Returns within ``grace_s`` + ``AFTER_STREAM_WAIT_S`` + teardown
        (``grace_s=0``: at once)."""
        state = self.state
        state.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        words_s = min(FINAL_WORDS_S, grace_s / 2)
        log.info("draining", calls=len(state.active_calls), grace_s=grace_s)
        await self._wait_calls(deadline - words_s)
        if state.active_calls:
            log.warning(
                "grace nearly over: ending the calls still running", calls=len(state.active_calls)
            )
            state.final_words = SHUTDOWN_WORDS
            for stream in list(state.streams):
                stream.on_event(HangUpNow("shutdown", SHUTDOWN_WORDS))
            await self._wait_calls(deadline)
        pending = set(state.active_calls)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("grace period over; closed calls still running", calls=len(pending))
            await asyncio.wait(pending, timeout=5.0)
        for stream in list(state.streams):  # sockets that never became calls
            await stream.close_going_away()
        await self._wait_outcomes_collected(min(AFTER_STREAM_WAIT_S, grace_s))

    async def _wait_calls(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        while self.state.active_calls and loop.time() < until:
            await asyncio.wait(set(self.state.active_calls), timeout=until - loop.time())

    async def _wait_outcomes_collected(self, limit_s: float) -> None:
        """Twilio requests ``<Connect action>`` once a stream closes; answer it before exiting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        # Polled: the store may be shared (Redis), with no event here to wait on.
        while (left := await self.state.outcomes.outstanding()) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if left:
            log.warning("exiting with call outcomes Twilio never asked for", outcomes=left)

    async def stop(self, grace_s: float = 0.0) -> None:
        await self.drain(grace_s)
        lingering = self.state.after_call
        if lingering:  # bounded on their own; give them a moment, then let go
            await asyncio.wait(set(lingering), timeout=1.0)
            for task in list(lingering):
                task.cancel()
            await asyncio.gather(*lingering, return_exceptions=True)
        await self.runner.cleanup()
        # The last calls' records written and sent, together: each record reached the webhook's
        # queue when its call ended, so neither waits for the other (5 s bound, not 10).
        closing = [
            c.close() for c in (self.state.record_keeper, self.state.call_webhook) if c is not None
        ]
        await asyncio.gather(*closing)
        if self.state.shared is not None:
            await self.state.shared.close()
        if self.speech_server is not None:
            await self.speech_server.stop()  # type: ignore[attr-defined]


async def start_embedded_speech(voice: str, processes: int) -> RunningSpeechServer:
    """The LMNT-compatible speech server on loopback, ready for ``voice``: synthesising in
    ``processes`` worker processes (0: threads in this process; ``IVR_SPEECH_PROCESSES``
    overrides), its neural model loaded before the first call when the voice needs it."""
    import os

    from ivr_bridge.speechserver.app import SpeechServerConfig, start_speech_server
    from ivr_bridge.speechserver.engines import speaks_neural

    config = SpeechServerConfig()
    if "IVR_SPEECH_PROCESSES" not in os.environ:
        config.processes = processes
    config.warm_neural = speaks_neural(voice, None)
    return await start_speech_server(config, host="127.0.0.1", port=0)


async def start_bridge(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    *,
    apps: Mapping[str, AppFactory] | None = None,
    default_app: str | None = None,
    campaigns: CampaignStore | None = None,
    reuse_port: bool = False,
    speech_processes: int = 0,
) -> RunningBridge:
    """Start the bridge (and the embedded speech server when no LMNT endpoint is configured).

    ``apps`` adds call apps by name (a call picks one with its ``app`` parameter, e.g.
    ``/twilio/voice?app=NAME``); ``default_app`` runs when a call names none (else: flows).
    ``campaigns``: the store outbound calls report to; it adds the ``reminder`` app and the
    campaign callback routes. ``reuse_port``: share the port with sibling workers
    (SO_REUSEPORT; the kernel spreads connections over them). ``speech_processes``: synthesis
    worker processes of the embedded speech server (0: threads in this process)."""
    host = host or settings.host
    port = settings.port if port is None else port
    flows = load_flows_dir(settings.flows_dir, settings.flow)  # any broken flow stops startup
    await check_voices(settings, flows)  # so does a voice the speech server does not have
    if settings.vad_confirm == "silero":  # fails here, naming the package, if it is missing
        await shared_pool().warm(SILERO_ENGINES_AT_START)
    speech_server = None
    if settings.uses_embedded_speech:
        speech_server = await start_embedded_speech(settings.voice, speech_processes)
        base_url, api_key = speech_server.base_url, PLACEHOLDER_KEY
        log.warning(
            "LMNT_API_KEY is not set: speaking through the embedded LMNT-compatible speech server. "
            "Set LMNT_API_KEY (and LMNT_BASE_URL for a self-hosted endpoint) to use another one.",
            speech_url=base_url,
            voice=settings.voice,
        )
    else:
        base_url = settings.effective_lmnt_base_url
        api_key = (
            settings.lmnt_api_key.get_secret_value() if settings.lmnt_api_key else PLACEHOLDER_KEY
        )

    metrics = BridgeMetrics()
    speech_health = SpeechPathHealth(session_url(base_url))

    async def open_speech(voice: str, language: str | None = None) -> SpeechSession:
        try:
            session = await connect_lmnt(
                base_url=base_url,
                api_key=api_key,
                voice=voice,
                language=language or settings.language,
                on_first_audio_latency=metrics.tts_first_audio.observe,
                on_closed=metrics.speech_sessions_open.dec,
                open_timeout=settings.tts_connect_timeout_ms / 1000,
            )
        except SpeechSessionError as exc:
            if exc.error_type == "connection_error":
                speech_health.report(False, exc.message)
            raise
        speech_health.report(True)
        metrics.speech_sessions_open.inc()
        return session

    shared = await open_shared_state(settings, metrics)  # Redis when IVR_REDIS_URL is set
    state = BridgeState(
        settings=settings,
        signatures=TwilioSignatureChecker(None, "http://placeholder"),
        outcomes=shared.outcomes,
        calls=shared.calls,
        shared=shared,
        metrics=metrics,
        open_speech=open_speech,
        default_flow=flows[settings.flow],
        flows=flows,
        speech_health=speech_health,
    )
    if campaigns is not None:
        state.campaigns = campaigns
        state.campaign_metrics = CampaignMetrics(campaigns, metrics)
        state.reminder_scripts = load_scripts(settings.flows_dir)  # a broken one stops startup
        state.apps.add(
            REMINDER_APP,
            reminder_app_factory(campaigns, state.reminder_scripts, lambda: state.flow_services),
        )
    for name, factory in (apps or {}).items():
        state.apps.add(name, factory)
    if default_app is not None:
        state.apps.default = default_app
    state.call_metrics = CallMetrics(
        metrics.registry, flows={f.name for f in flows.values()} | set(state.apps.factories)
    )
    state.call_webhook = open_call_webhook(settings, on_result=state.call_metrics.webhook_result)
    state.record_keeper = open_record_keeper(
        settings,
        sinks=[state.call_webhook] if state.call_webhook is not None else None,
        metrics=state.call_metrics,
    )
    state.records = state.record_keeper.store
    if state.call_webhook is not None:
        state.call_webhook.start()
    state.record_keeper.start()
    runner = web.AppRunner(
        build_app(state),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=2.0,
        # A socket that sends no request (or dribbles one) for this long is closed: Twilio
        # sends whole requests at once, a stranger holding sockets open gets nothing.
        keepalive_timeout=settings.idle_socket_s,
        # A refused request's unread body is not drained (read and thrown away) but the
        # connection closed: a stranger's megabytes are never read at all.
        lingering_time=0,
        read_bufsize=16 * 1024,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    bound_port = runner.addresses[0][1]
    local_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{bound_port}"
    public_url = settings.public_url or local_url
    state.public_url = public_url
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    state.signatures = TwilioSignatureChecker(token, public_url)
    state.stream_tokens = StreamTokens(derive_key(token) if token else None)
    if not state.signatures.enabled:
        log.warning(
            "TWILIO_AUTH_TOKEN is not set: X-Twilio-Signature validation is OFF and anyone who "
            "can reach this server can open calls. Set TWILIO_AUTH_TOKEN in production."
        )
    problem = llm_configuration_problem(flows.values(), state.flow_services)
    if problem is not None:
        log.warning(
            "flows with an 'llm' step will apologise and follow their on_unavailable branch "
            "until the LLM is configured",
            problem=problem,
        )
    log.info(
        "bridge listening",
        url=local_url,
        public_url=public_url,
        flow=settings.flow,
        pid=os.getpid(),
    )
    return RunningBridge(local_url, state, runner, speech_server)


async def serve(settings: Settings, *, reuse_port: bool = False, dial: bool = True) -> None:
    """Run until SIGTERM/SIGINT, then drain gracefully (bounded by ``IVR_SHUTDOWN_GRACE_S``).

    ``reuse_port`` and ``dial=False``: one of several workers on a port, where only the first
    runs the campaign dispatcher (``ivr_bridge.server.workers``)."""
    # Load the recognisers (off the event loop) before answering anything: the first caller who
    # speaks must not wait for a model, and loading one under load costs live calls their audio.
    await warm_up_recognizers()
    campaigns = await open_campaigns(settings)
    from ivr_bridge.speechserver.pool import default_processes

    bridge = await start_bridge(
        settings,
        campaigns=campaigns,
        reuse_port=reuse_port,
        speech_processes=0 if reuse_port else default_processes(),
    )
    dialling = None
    try:
        if campaigns is not None and settings.dispatcher and dial:
            dialling = start_dialling(
                settings,
                campaigns,
                bridge.state.public_url,
                bridge.state.metrics,
                pacer=bridge.state.shared.pacer(campaigns) if bridge.state.shared else None,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutdown requested")
    finally:
        if dialling is not None:
            await dialling.stop()  # no new calls during the drain
        await bridge.stop(settings.shutdown_grace_s)
        if campaigns is not None:
            await campaigns.close()


__all__ = ["RunningBridge", "build_app", "serve", "start_bridge"]
