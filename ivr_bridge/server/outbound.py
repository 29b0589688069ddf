"""Dialling from the bridge process: the campaign store, the Twilio dialer and the dispatcher.

With ``IVR_CAMPAIGN_DB`` set, ``serve`` opens the store (the reminder app and the callback
routes need it) and, unless ``IVR_DISPATCHER=false``, runs one dispatcher as a task it owns:
started after the bridge listens (callbacks must find it), cancelled before the bridge drains
(no new call starts during a deploy; what it had claimed goes back to the database).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from contextlib import suppress
from dataclasses import dataclass

import structlog

from ivr_bridge.campaign.dialer import TwilioDialer
from ivr_bridge.campaign.dispatcher import DialPacer, Dispatcher
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.config import ConfigError, Settings
from ivr_bridge.metrics import BridgeMetrics

log = structlog.get_logger(__name__)


async def open_campaigns(settings: Settings) -> CampaignStore | None:
    if not settings.campaign_db:
        return None
    return await CampaignStore.open(settings.campaign_db, now=time.time())


@dataclass
class Dialling:
    dispatcher: Dispatcher
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task
        await self.dispatcher.dialer.close()


def start_dialling(
    settings: Settings,
    store: CampaignStore,
    public_url: str,
    metrics: BridgeMetrics | None = None,
    *,
    pacer: DialPacer | None = None,
) -> Dialling:
    missing = [
        name
        for name, value in (
            ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
            ("IVR_PUBLIC_URL", settings.public_url),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"IVR_CAMPAIGN_DB is set, so this bridge dials out, which needs {', '.join(missing)} "
            "(Twilio's account, and the address Twilio calls back at); or set "
            "IVR_DISPATCHER=false to only answer campaign callbacks here"
        )
    assert settings.twilio_account_sid is not None and settings.twilio_auth_token is not None
    dialer = TwilioDialer(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        public_url=public_url,
        api_base_url=settings.twilio_api_url,
    )
    dispatcher = Dispatcher(
        store,
        dialer,
        worker=f"{socket.gethostname()}-{os.getpid()}",
        account=settings.twilio_account_sid,
        cps=settings.dial_cps,
        reconcile_every_s=settings.reconcile_every_s,
        claim_grace_s=settings.claim_grace_s,
        live_grace_s=settings.live_grace_s,
        pacer=pacer,
        on_result=(lambda r: metrics.campaign_dials.labels(result=r).inc()) if metrics else None,
    )
    task = asyncio.create_task(dispatcher.run(), name="campaign-dispatcher")
    task.add_done_callback(_report_crash)
    return Dialling(dispatcher, task)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("campaign dispatcher stopped", error=repr(task.exception()))
