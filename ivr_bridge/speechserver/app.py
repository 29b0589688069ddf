"""The embedded LMNT-compatible speech server: aiohttp app, in-process start, and CLI entry.

``ivr-bridge serve`` starts it on a loopback port when ``LMNT_API_KEY`` is unset; on its own,
``ivr-bridge speech-server`` lets code written for the official ``lmnt`` SDK run against it with
``LMNT_BASE_URL=http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass

import structlog
from aiohttp import WSCloseCode, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from ivr_bridge.metrics import add_process_metrics
from ivr_bridge.speechserver.config import (
    SpeechServerConfig,
    SpeechServerConfigError,
    check_bind,
)
from ivr_bridge.speechserver.engines import Synthesizer, VoiceEngines
from ivr_bridge.speechserver.keys import (
    CONFIG_KEY,
    METRICS_KEY,
    SESSION_COUNT_KEY,
    SESSIONS_KEY,
    SYNTH_KEY,
)
from ivr_bridge.speechserver.pool import SynthesisPool, default_processes
from ivr_bridge.speechserver.prompt_cache import PromptCache
from ivr_bridge.speechserver.rest import add_routes, envelope_middleware
from ivr_bridge.speechserver.session import handle_stream

__all__ = [
    "CONFIG_KEY",
    "SESSIONS_KEY",
    "SYNTH_KEY",
    "RunningSpeechServer",
    "SpeechServerConfig",
    "SpeechServerConfigError",
    "add_arguments",
    "build_app",
    "run_from_args",
    "start_speech_server",
]

log = structlog.get_logger(__name__)

STREAM_PATH = "/v1/ai/speech/stream"


def build_app(config: SpeechServerConfig | None = None) -> web.Application:
    """The server as an aiohttp application (mountable, or run by :func:`start_speech_server`)."""
    app = web.Application(middlewares=[envelope_middleware])
    app[CONFIG_KEY] = config if config is not None else SpeechServerConfig()
    config = app[CONFIG_KEY]
    inner: Synthesizer
    if config.processes > 0:
        pool = SynthesisPool(config.processes, warm_neural=config.warm_neural)
        inner = pool
        app[POOL_KEY] = pool
        app.on_startup.append(_start_pool)
        app.on_cleanup.append(_stop_pool)
    else:
        engines = VoiceEngines()
        inner = engines
        app[ENGINES_KEY] = engines
        if config.warm_neural:
            app.on_startup.append(_warm_in_process)
    cache = PromptCache(inner, config.prompt_cache_mb * 1024 * 1024)
    app[SYNTH_KEY] = cache
    sessions: set[web.WebSocketResponse] = set()
    app[SESSIONS_KEY] = sessions
    registry = CollectorRegistry()
    add_process_metrics(registry, "speech_server")
    Gauge(
        "speech_server_sessions_open", "Speech-session sockets open", registry=registry
    ).set_function(lambda: len(sessions))
    Gauge(
        "speech_server_prompt_cache_hits",
        "Sentences served from the prompt cache (or a synthesis already under way)",
        registry=registry,
    ).set_function(lambda: cache.hits)
    Gauge(
        "speech_server_prompt_cache_misses", "Sentences synthesised", registry=registry
    ).set_function(lambda: cache.misses)
    app[METRICS_KEY] = registry
    app[SESSION_COUNT_KEY] = [0]
    app.router.add_get(STREAM_PATH, handle_stream)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    add_routes(app)
    app.on_shutdown.append(_close_sessions)
    return app


POOL_KEY: web.AppKey[SynthesisPool] = web.AppKey("synthesis_pool", SynthesisPool)
ENGINES_KEY: web.AppKey[VoiceEngines] = web.AppKey("voice_engines", VoiceEngines)


async def _start_pool(app: web.Application) -> None:
    await app[POOL_KEY].start()


async def _warm_in_process(app: web.Application) -> None:
    """The neural model loaded before the first session (~0.7 s, seconds under load), off the
    loop: a first prompt that waits for it reads as a stall to the bridge's speech watchdog."""
    await asyncio.to_thread(app[ENGINES_KEY].neural.prepare)


async def _stop_pool(app: web.Application) -> None:
    await asyncio.to_thread(app[POOL_KEY].shutdown)


async def _healthz(request: web.Request) -> web.Response:
    """For probes (Kubernetes, compose): up and answering; no key needed, nothing revealed."""
    return web.json_response({"status": "ok", "sessions": len(request.app[SESSIONS_KEY])})


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _close_sessions(app: web.Application) -> None:
    open_sockets: set[web.WebSocketResponse] = app[SESSIONS_KEY]
    for ws in list(open_sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


@dataclass
class RunningSpeechServer:
    """A started server; ``config`` is the live object sessions read, so tests may mutate it."""

    runner: web.AppRunner
    host: str
    port: int
    config: SpeechServerConfig

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_speech_server(
    config: SpeechServerConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSpeechServer:
    """Start listening (port 0 = any free port). Refuses a non-loopback host without keys."""
    config = config if config is not None else SpeechServerConfig()
    check_bind(config, host)
    # Stopping waits at most 2 s for handlers still running (a session mid-sentence, an upgrade
    # held by ``accept_delay_ms``), then cancels them: aiohttp's default is a minute.
    runner = web.AppRunner(
        build_app(config), handle_signals=False, access_log=None, shutdown_timeout=2.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = port
    for address in runner.addresses:
        if isinstance(address, tuple):
            bound_port = address[1]
            break
    server = RunningSpeechServer(runner=runner, host=host, port=bound_port, config=config)
    log.info(
        "speech_server_started",
        base_url=server.base_url,
        keys_configured=len(config.api_keys),
        realtime_factor=config.realtime_factor,
    )
    return server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for ``ivr-bridge speech-server``; unset flags fall back to ``IVR_SPEECH_*`` env."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        default=None,
        help="accepted API key (repeatable); env IVR_SPEECH_API_KEYS, comma-separated",
    )
    parser.add_argument("--wav-header", choices=("first", "every_flush", "none"), default=None)
    parser.add_argument("--realtime-factor", type=float, default=None)
    parser.add_argument("--first-audio-delay-ms", type=int, default=None)
    parser.add_argument("--chunk-ms", type=int, default=None)
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="synthesis worker processes (IVR_SPEECH_PROCESSES; default: one per core; "
        "0: one thread in this process)",
    )


def config_from_args(args: argparse.Namespace) -> SpeechServerConfig:
    overrides = {
        name: getattr(args, name)
        for name in (
            "api_keys",
            "wav_header",
            "realtime_factor",
            "first_audio_delay_ms",
            "chunk_ms",
            "processes",
        )
        if getattr(args, name, None) is not None
    }
    if "processes" not in overrides and "IVR_SPEECH_PROCESSES" not in os.environ:
        overrides["processes"] = default_processes()  # a server of its own: every core
    return SpeechServerConfig(**overrides)


def run_from_args(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM. Returns the process exit code (2 = refused configuration)."""
    try:
        config = config_from_args(args)
        check_bind(config, args.host)
    except (SpeechServerConfigError, ValueError) as exc:
        print(f"ivr-bridge speech-server: {exc}", flush=True)
        return 2
    try:
        asyncio.run(_serve_forever(config, args.host, args.port))
    except OSError as exc:
        print(f"ivr-bridge speech-server: cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    return 0


async def _serve_forever(config: SpeechServerConfig, host: str, port: int) -> None:
    server = await start_speech_server(config, host=host, port=port)
    print(f"LMNT-compatible speech server on {server.base_url} (LMNT_BASE_URL)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
