"""Everything the HTTP handlers share, held in one typed object on the aiohttp app."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ivr_bridge.call.app import AppRegistry
from ivr_bridge.call.control import BargeInPolicy
from ivr_bridge.call.listener import ListenerSettings
from ivr_bridge.call.outcomes import OutcomeStore
from ivr_bridge.call.playback import PlaybackSettings
from ivr_bridge.call.registry import CallRegistry, MemoryCallRegistry
from ivr_bridge.call.transcripts import CallTranscripts
from ivr_bridge.campaign.script import ReminderScript
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.config import Settings
from ivr_bridge.dialog.flow import Flow, FlowError, FlowServices, load_flow, resolve_flow_path
from ivr_bridge.dialog.flow_app import FLOW_APP, flow_app_factory
from ivr_bridge.metrics import BridgeMetrics
from ivr_bridge.records.keeper import RecordKeeper
from ivr_bridge.records.store import RecordStore
from ivr_bridge.records.webhook import CallWebhook
from ivr_bridge.server.call_metrics import CallMetrics
from ivr_bridge.server.campaign_metrics import CampaignMetrics
from ivr_bridge.server.readiness import SpeechPathHealth
from ivr_bridge.server.shared_state import SharedState
from ivr_bridge.server.stream_tokens import StreamTokens
from ivr_bridge.speech.session import SpeechSession
from ivr_bridge.telephony.twilio.signature import TwilioSignatureChecker

UNAUTHENTICATED_READS = 32
WEBHOOK_MAX_BYTES = 64 * 1024
"""Twilio's webhook forms are a few kB: a bigger body is refused before it is read (413)."""

SpeechFactory = Callable[[str, str | None], Awaitable[SpeechSession]]
"""Opens a speech session for a voice id and a language (None: ``IVR_LANGUAGE``)."""


@dataclass
class BridgeState:
    settings: Settings
    signatures: TwilioSignatureChecker
    outcomes: OutcomeStore
    metrics: BridgeMetrics
    open_speech: SpeechFactory
    default_flow: Flow
    flows: dict[str, Flow] = field(default_factory=dict)
    """Every flow in the flows dir, checked at startup (by file name)."""
    flow_services: FlowServices = field(default_factory=FlowServices)
    """Recognisers and environment the flows use (tests inject fakes)."""
    active_calls: set[asyncio.Task[None]] = field(default_factory=set)
    transcripts: CallTranscripts = field(default_factory=CallTranscripts)
    """What the bot said on recent calls, heard and unheard apart (a tester reads it)."""
    after_call: set[asyncio.Task[None]] = field(default_factory=set)
    """Bookkeeping a call left unfinished when it ended (a database write of a figure):
    finished on its own, bounded, cancelled at shutdown."""
    calls: CallRegistry = field(default_factory=MemoryCallRegistry)
    """Live calls by CallSid, for events from outside their socket (the control route)."""
    shared: SharedState | None = None
    """What this replica shares with the others (closed when the bridge stops); None: a
    state built by hand (tests)."""
    speech_health: SpeechPathHealth | None = None
    """Whether the speech path is up (``/readyz``); None: not tracked."""
    apps: AppRegistry = field(init=False)
    """What runs on each call; the flow runner is registered as ``flow``, the default."""
    public_url: str = ""
    """The base URL Twilio reaches (``IVR_PUBLIC_URL``, or this server's own address)."""
    draining: bool = False
    """Set on SIGTERM: no new calls are answered; active ones run on (bounded)."""
    final_words: str | None = None
    """Set when a drain's grace is nearly over: every call (and any stream still arriving) says
    this, then hangs up."""
    stream_tokens: StreamTokens = field(default_factory=lambda: StreamTokens(None))
    """Binds each stream's ``start`` to a call the voice webhook answered."""
    body_reads: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(UNAUTHENTICATED_READS)
    )
    """Webhook bodies read before their signature could be checked, at most this many at once."""
    campaigns: CampaignStore | None = None
    """Outbound campaigns (their callbacks and the reminder app); None: none on this bridge."""
    campaign_metrics: CampaignMetrics | None = None
    reminder_scripts: dict[str, ReminderScript] = field(default_factory=dict)
    """The reminder calls' words (``flows/reminders/*.yaml``), checked at startup."""
    records: RecordStore | None = None
    """Where finished calls' records are kept (``IVR_RECORDS``); None: records are off."""
    record_keeper: RecordKeeper | None = None
    """Builds each finished call's record: its log line, metrics, webhook and store."""
    call_metrics: CallMetrics | None = None
    """Metrics that follow each call's events and records; None: not tracked."""
    call_webhook: CallWebhook | None = None
    """Sends each finished call's record to ``IVR_CALL_WEBHOOK_URL``; None: unset."""
    streams: set[Any] = field(default_factory=set)
    """Every open media-stream socket, with or without a call (closed at the end of a drain)."""

    def __post_init__(self) -> None:
        self.apps = AppRegistry(default=FLOW_APP)
        self.apps.add(FLOW_APP, flow_app_factory(self.flow_for, lambda: self.flow_services))

    @property
    def barge_in(self) -> BargeInPolicy:
        """The default policy; a flow step may override it per prompt."""
        s = self.settings
        return BargeInPolicy(s.barge_in, s.barge_in_ignore_first_ms)

    @property
    def listening(self) -> ListenerSettings:
        s = self.settings
        return ListenerSettings(
            min_speech_ms=s.min_speech_ms,
            end_silence_ms=s.end_of_utterance_ms,
            answered_silence_ms=s.answered_silence_ms,
            sentence_silence_ms=s.sentence_silence_ms,
            vad_aggressiveness=s.vad_aggressiveness,
            energy_floor=s.vad_energy_floor,
            confirm=s.vad_confirm,
            confirm_threshold=s.vad_confirm_threshold,
            confirm_floor=s.vad_confirm_floor,
        )

    @property
    def playback(self) -> PlaybackSettings:
        s = self.settings
        return PlaybackSettings(
            s.playback_chunk_ms, s.playback_lead_ms, s.mark_grace_ms, s.playback_start_ms
        )

    def flow_for(self, name: str | None) -> Flow:
        """The flow a call asked for (by file name inside the flows dir) or the default.

        Flows are loaded and checked at startup; one added later is loaded on first use."""
        if not name or name == self.settings.flow:
            return self.default_flow
        path = resolve_flow_path(self.settings.flows_dir, name)
        return self.flows.get(self._flow_key(path)) or load_flow(path)

    def _flow_key(self, path: Path) -> str:
        """Startup-loaded flows are keyed by file name (top level of the flows dir only)."""
        return str(path.relative_to(self.settings.flows_dir.resolve()))


STATE: web.AppKey[BridgeState] = web.AppKey("ivr_bridge_state", BridgeState)

__all__ = ["STATE", "BridgeState", "FlowError", "SpeechFactory"]
