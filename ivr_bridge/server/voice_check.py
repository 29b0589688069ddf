"""At startup: every voice the bridge will ask for must be one the speech server has.

A speech server refuses a session for a voice it does not know, so a misspelt ``IVR_VOICE`` or a
flow's ``voice:`` used to start a bridge whose every call apologised and hung up. The voices are
known before the first call: the embedded speech server's catalogue, or a remote server's
``GET /v1/ai/voice/list``; an unknown one stops startup with a ``ConfigError`` naming the setting
and the voices there are. When a remote list cannot be fetched (an outage, a server without that
route) startup goes on with a warning: a speech server that is down for a minute must not keep
the bridge down once it is back.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
import structlog

from ivr_bridge.config import Settings
from ivr_bridge.dialog.flow_checks import unknown_voice
from ivr_bridge.dialog.flow_model import Flow
from ivr_bridge.errors import ConfigError
from ivr_bridge.speechserver.voices import VOICES

log = structlog.get_logger(__name__)

VOICE_LIST_PATH = "/v1/ai/voice/list"
FETCH_TIMEOUT_S = 5.0


async def check_voices(settings: Settings, flows: Mapping[str, Flow]) -> None:
    """Raise ``ConfigError`` when ``IVR_VOICE`` or a flow's voice is not the speech server's."""
    voices = await speech_server_voices(settings)
    if voices is None:
        return
    problems = []
    wrong = unknown_voice(settings.voice, voices)
    if wrong:
        problems.append(f"IVR_VOICE: {wrong}")
    for name, flow in sorted(flows.items()):
        wrong = unknown_voice(flow.voice, voices) if flow.voice else None
        if wrong:
            problems.append(f"{settings.flows_dir / name}: voice: {wrong}")
    if problems:
        where = (
            "the embedded speech server"
            if settings.uses_embedded_speech
            else voice_list_url(settings.effective_lmnt_base_url)
        )
        raise ConfigError(f"voices that {where} does not have:\n  " + "\n  ".join(problems))


async def speech_server_voices(settings: Settings) -> list[str] | None:
    """The voice ids of the speech server the bridge speaks through; None when unknown."""
    if settings.uses_embedded_speech:
        return list(VOICES)
    url = voice_list_url(settings.effective_lmnt_base_url)
    headers = (
        {"X-API-Key": settings.lmnt_api_key.get_secret_value()} if settings.lmnt_api_key else {}
    )
    try:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as response,
        ):
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            data = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        log.warning(
            "cannot list the speech server's voices; voices not checked", url=url, error=reason
        )
        return None
    ids = (
        [v["id"] for v in data if isinstance(v, dict) and isinstance(v.get("id"), str)]
        if (isinstance(data, list))
        else []
    )
    if not ids:
        log.warning("the speech server listed no voices; voices not checked", url=url)
        return None
    return ids


def voice_list_url(base_url: str) -> str:
    """``GET`` voice list of an LMNT base URL (``ws``/``wss`` map back to ``http``/``https``)."""
    url = base_url.rstrip("/")
    for socket, http in (("wss://", "https://"), ("ws://", "http://")):
        if url.startswith(socket):
            url = http + url[len(socket) :]
    return url + VOICE_LIST_PATH
