"""Loading the recognisers at server start, so the first caller who speaks does not wait.

Importing the engines and loading their models takes a second or more of CPU; all of it runs in
threads, never on the event loop. An engine that is not installed is skipped (flows that need it
report it per call, as before).
"""

from __future__ import annotations

import asyncio

import structlog

from ivr_bridge.recognition.models import RecognizerUnavailable
from ivr_bridge.recognition.sphinx import get_grammar_recognizer
from ivr_bridge.recognition.whisper import get_transcriber

log = structlog.get_logger(__name__)


async def warm_up_recognizers() -> dict[str, bool]:
    """Load pocketsphinx and faster-whisper now; which of them are ready (by engine name)."""
    ready: dict[str, bool] = {}
    try:
        grammar = await asyncio.to_thread(get_grammar_recognizer)
        await grammar.warm_up()
        ready["pocketsphinx"] = True
    except RecognizerUnavailable as exc:
        log.warning("recognizer_unavailable", engine="pocketsphinx", error=str(exc))
        ready["pocketsphinx"] = False
    try:
        transcriber = await asyncio.to_thread(get_transcriber)
        await transcriber.warm_up()
        ready["faster-whisper"] = True
    except RecognizerUnavailable as exc:
        log.warning("recognizer_unavailable", engine="faster-whisper", error=str(exc))
        ready["faster-whisper"] = False
    return ready
