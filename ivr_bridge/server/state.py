"""Everything the HTTP handlers share, held in one typed object on the aiohttp app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from ivr_bridge.call.conductor import PlaybackSettings
from ivr_bridge.call.outcomes import OutcomeStore
from ivr_bridge.config import Settings
from ivr_bridge.dialog.flow import Flow, FlowError, load_flow, resolve_flow_path
from ivr_bridge.metrics import BridgeMetrics
from ivr_bridge.speech.session import SpeechSession
from ivr_bridge.telephony.twilio.signature import TwilioSignatureChecker

SpeechFactory = Callable[[str], Awaitable[SpeechSession]]
"""Opens a speech session for a voice id."""


@dataclass
class BridgeState:
    settings: Settings
    signatures: TwilioSignatureChecker
    outcomes: OutcomeStore
    metrics: BridgeMetrics
    open_speech: SpeechFactory
    default_flow: Flow
    active_calls: set[asyncio.Task[None]] = field(default_factory=set)
    draining: bool = False
    """Set on SIGTERM: no new calls are answered; active ones run on (bounded)."""

    @property
    def playback(self) -> PlaybackSettings:
        s = self.settings
        return PlaybackSettings(s.playback_chunk_ms, s.playback_lead_ms, s.mark_grace_ms)

    def flow_for(self, name: str | None) -> Flow:
        """The flow a call asked for (by file name inside the flows dir) or the default."""
        if not name or name == self.settings.flow:
            return self.default_flow
        return load_flow(resolve_flow_path(self.settings.flows_dir, name))

    def check_flow_name(self, name: str) -> Path:
        return resolve_flow_path(self.settings.flows_dir, name)


STATE: web.AppKey[BridgeState] = web.AppKey("ivr_bridge_state", BridgeState)

__all__ = ["STATE", "BridgeState", "FlowError", "SpeechFactory"]
