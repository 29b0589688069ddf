"""Deepgram live transcription (WebSocket ``/v1/listen``) behind the ``Transcriber`` interface.

Phone audio goes as it is on the line, 8 kHz µ-law (``encoding=mulaw&sample_rate=8000``), so
Deepgram hears exactly what Twilio sent. One connection per caller utterance: send the audio,
then ``{"type": "CloseStream"}``; Deepgram answers ``Results`` messages (``is_final`` pieces are
joined), a closing ``Metadata`` message, and closes the socket. Authentication is the
``Authorization: Token <key>`` header; the key is never logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode

import structlog
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from ivr_bridge.audio.codec import pcm16_to_ulaw, resample_pcm16
from ivr_bridge.errors import RecognitionError
from ivr_bridge.recognition.models import Transcription

log = structlog.get_logger(__name__)

DEFAULT_URL = "wss://api.deepgram.com/v1/listen"
SEND_BYTES = 1600
"""200 ms of µ-law per binary frame: small enough for Deepgram, few enough frames."""


class DeepgramError(RecognitionError):
    """Deepgram refused or failed the stream; the message says why (never the key)."""


class DeepgramTranscriber:
    def __init__(
        self,
        api_key: str,
        *,
        url: str = DEFAULT_URL,
        model: str = "nova-3",
        language: str = "en-US",
        connect_timeout_s: float = 3.0,
        result_timeout_s: float = 5.0,
    ) -> None:
        self._api_key = api_key
        self._url = url
        self._model = model
        self._language = language
        self._connect_timeout_s = connect_timeout_s
        self._result_timeout_s = result_timeout_s
        self.engine = f"deepgram:{model}"

    def listen_url(self) -> str:
        query = {
            "encoding": "mulaw",
            "sample_rate": 8000,
            "channels": 1,
            "model": self._model,
            "language": self._language,
            "punctuate": "true",
            "smart_format": "true",
            "interim_results": "false",
        }
        return f"{self._url}?{urlencode(query)}"

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcription:
        started = time.perf_counter()
        pcm = pcm16[: len(pcm16) // 2 * 2]
        if sample_rate != 8000:
            pcm, _ = resample_pcm16(pcm, sample_rate, 8000)
        ulaw = pcm16_to_ulaw(pcm)
        try:
            finals = await asyncio.wait_for(
                self._stream(ulaw), timeout=self._connect_timeout_s + self._result_timeout_s
            )
        except TimeoutError:
            raise DeepgramError("no transcript from Deepgram in time") from None
        text = " ".join(t for t, _ in finals if t).strip()
        confidence = min((c for t, c in finals if t), default=0.0)
        return Transcription(text, confidence, self.engine, (time.perf_counter() - started) * 1000)

    async def _stream(self, ulaw: bytes) -> list[tuple[str, float]]:
        headers = {"Authorization": f"Token {self._api_key}"}
        try:
            async with connect(
                self.listen_url(),
                additional_headers=headers,
                open_timeout=self._connect_timeout_s,
                max_size=1 << 20,
            ) as ws:
                for offset in range(0, len(ulaw), SEND_BYTES):
                    await ws.send(ulaw[offset : offset + SEND_BYTES])
                await ws.send(json.dumps({"type": "CloseStream"}))
                finals: list[tuple[str, float]] = []
                async for raw in ws:
                    message = _parse(raw)
                    kind = message.get("type")
                    if kind == "Results" and message.get("is_final"):
                        finals.append(_best(message))
                    elif kind == "Metadata":
                        break  # CloseStream's summary: every result has been sent
                    elif kind == "Error":
                        raise DeepgramError(f"Deepgram error: {message.get('description')}")
                return finals
        except InvalidStatus as exc:
            response = exc.response
            reason = response.headers.get("dg-error") or response.reason_phrase
            hint = " (check DEEPGRAM_API_KEY)" if response.status_code in (401, 403) else ""
            raise DeepgramError(
                f"Deepgram refused the stream: HTTP {response.status_code} {reason}{hint}"
            ) from None
        except (OSError, WebSocketException) as exc:
            raise DeepgramError(f"Deepgram stream failed: {type(exc).__name__}: {exc}") from None


def _parse(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DeepgramError("Deepgram sent a message that is not JSON") from None
    return message if isinstance(message, dict) else {}


def _best(message: dict[str, Any]) -> tuple[str, float]:
    alternatives = (message.get("channel") or {}).get("alternatives") or []
    if not alternatives:
        return "", 0.0
    best = alternatives[0]
    return str(best.get("transcript") or ""), float(best.get("confidence") or 0.0)
