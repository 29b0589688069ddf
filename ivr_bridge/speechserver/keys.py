"""What the speech server's handlers share on the aiohttp app, in a module of its own.

The app builds these, the session and REST handlers read them: with the keys here, neither
handler module imports the app module that imports them.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from ivr_bridge.speechserver.config import SpeechServerConfig
from ivr_bridge.speechserver.engines import Synthesizer

CONFIG_KEY = web.AppKey("speech_config", SpeechServerConfig)
SYNTH_KEY: web.AppKey[Synthesizer] = web.AppKey("speech_synth")
SESSIONS_KEY: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("speech_sessions")
"""Open session sockets (each removes itself when done), closed with 1001 on shutdown."""
METRICS_KEY = web.AppKey("speech_metrics", CollectorRegistry)
SESSION_COUNT_KEY: web.AppKey[list[int]] = web.AppKey("speech_session_count")
"""Sessions opened so far (a one-item list, so handlers can count in place)."""
