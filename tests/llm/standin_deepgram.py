"""A stand-in for Deepgram's live ``/v1/listen`` WebSocket, faithful to its documented shapes.

Checks ``Authorization: Token <key>`` at the handshake (401 with a ``dg-error`` header
otherwise) and takes binary audio frames. Two behaviours, by the query:

- ``interim_results`` off (one connection per utterance): on ``{"type": "CloseStream"}`` it
  answers the scripted transcript as one ``Results`` message (``is_final``/``speech_final``,
  ``channel.alternatives``), then the closing ``Metadata`` message, then closes normally.
- ``interim_results=true`` (a live stream, kept open across utterances): it hears the audio as
  it arrives (20 ms frames of µ-law; a frame is speech when its level is over ``VOICE_RMS``) and
  each utterance (speech until ``endpointing`` ms of silence) takes the next scripted transcript,
  whole, in its first final: a ``Finalize`` at a pause mid-utterance gives all of it, and the
  speech after the pause adds no words (a recogniser that knows the words at once; the words'
  split across finals is not modelled). While speech goes on it sends
  interim ``Results`` (``is_final: false``); after ``endpointing`` ms of silence a final one
  (``is_final`` and ``speech_final`` true) covering everything since the last final; then, after
  ``utterance_end_ms`` of silence after the last word, ``UtteranceEnd`` (``last_word_end``).
  ``SpeechStarted`` when ``vad_events=true``. ``Finalize`` makes finals of everything received
  (``from_finalize: true``; nothing when everything was final already); ``KeepAlive`` keeps it
  open; without audio or a message for ``idle_timeout_s`` (10 s, like Deepgram) it closes the
  socket with 1011 and a ``NET-0001`` reason; ``CloseStream`` makes the last finals, then
  ``Metadata``, then a normal close. Times are seconds of audio received on the connection.

Test levers: ``drop()`` aborts every live socket (a network drop); ``stall_reading`` stops
reading audio (Deepgram overloaded: the client's sends back up).
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections import deque
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from ivr_bridge.audio.codec import rms_pcm16, ulaw_to_pcm16

FRAME = 160
"""20 ms of 8 kHz µ-law."""
VOICE_RMS = 300
"""A frame louder than this is speech (µ-law silence, 0xFF, is 0)."""
NET_0001 = (
    "Deepgram did not receive audio data or a text message within the timeout window. "
    "See https://dpgr.am/net0001"
)


class DeepgramStandIn:
    def __init__(self, api_key: str = "dg-test-key", *, receive_buffer: int | None = None) -> None:
        """``receive_buffer``: a small ``SO_RCVBUF`` for accepted sockets, so that a stalled
        stand-in (``stall_reading``) pushes back on the client after kilobytes, not megabytes."""
        self.api_key = api_key
        self.receive_buffer = receive_buffer
        self.transcripts: deque[str] = deque()
        self.audio: list[bytes] = []
        self.queries: list[dict[str, list[str]]] = []
        self._server: Server | None = None
        self.url = ""
        # live streams
        self.idle_timeout_s = 10.0
        self.stall_reading = False
        self.live_audio: list[bytearray] = []
        """Per live connection: every byte received, in order."""
        self.controls: list[str] = []
        """Every control message type received on live connections, in order."""
        self.sent: list[dict[str, Any]] = []
        """Every message sent on live connections, in order."""
        self.idle_closes = 0
        self._live: set[ServerConnection] = set()

    @property
    def connections(self) -> int:
        return len(self.live_audio)

    def drop(self) -> None:
        """Abort every live socket, as a network drop would (no close frame)."""
        for ws in list(self._live):
            ws.transport.abort()

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check_auth)
        listener = next(iter(self._server.sockets))
        if self.receive_buffer is not None:  # inherited by the sockets it accepts
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        port = listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/v1/listen"

    async def stop(self) -> None:
        self.drop()  # a stalled live socket would hold the server's closing handshake
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Invalid credentials.\n")
            response.headers["dg-error"] = "Invalid credentials."
            return response
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query) if ws.request else {}
        self.queries.append(query)
        if query.get("interim_results") == ["true"]:
            self._live.add(ws)
            try:
                await _LiveStream(self, ws, query).run()
            finally:
                self._live.discard(ws)
            return
        received = bytearray()
        request_id = str(uuid.uuid4())
        async for message in ws:
            if isinstance(message, bytes):
                received.extend(message)
                continue
            control = json.loads(message)
            if control.get("type") == "CloseStream":
                break
        self.audio.append(bytes(received))
        seconds = len(received) / 8000
        transcript = self.transcripts.popleft() if self.transcripts else ""
        await ws.send(json.dumps(_results(transcript, 0.0, seconds, request_id)))
        await ws.send(json.dumps(_metadata(seconds, request_id)))
        await ws.close(1000)


class _LiveStream:
    """One live connection; positions are bytes received (8000 a second)."""

    def __init__(
        self, owner: DeepgramStandIn, ws: ServerConnection, query: dict[str, list[str]]
    ) -> None:
        self.owner = owner
        self.ws = ws
        endpointing = query.get("endpointing", ["10"])[0]
        self.endpointing = None if endpointing == "false" else int(endpointing) * 8
        self.utterance_end = int(query.get("utterance_end_ms", ["0"])[0]) * 8 or None
        self.vad_events = query.get("vad_events", ["false"])[0] == "true"
        self.request_id = str(uuid.uuid4())
        self.received = bytearray()
        owner.live_audio.append(self.received)
        self.analysed = 0
        self.finalised = 0
        self.voice_start: int | None = None
        self.voice_end = 0
        self.last_interim = 0
        self.last_word_end: int | None = None
        """The end of the last final word, until ``UtteranceEnd`` is sent for it."""
        self.utterance: str | None = None
        """The transcript of the utterance in progress, once a final has given it: a
        ``Finalize`` at a pause gives its words, and speech resuming before ``endpointing`` ms
        of silence is the same utterance (its later finals add no words)."""

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        try:
            while True:
                while self.owner.stall_reading and self.ws.state is State.OPEN:
                    await asyncio.sleep(0.01)
                    last_heard = loop.time()
                remaining = self.owner.idle_timeout_s - (loop.time() - last_heard)
                try:
                    message = await asyncio.wait_for(self.ws.recv(), timeout=max(0.0, remaining))
                except TimeoutError:
                    self.owner.idle_closes += 1
                    await self.ws.close(1011, NET_0001)
                    return
                last_heard = loop.time()
                if isinstance(message, bytes):
                    self.received.extend(message)
                    await self.hear(final=False)
                    continue
                kind = json.loads(message).get("type")
                self.owner.controls.append(str(kind))
                if kind == "Finalize":
                    await self.hear(final=True)
                    await self.finalise(len(self.received), from_finalize=True)
                elif kind == "CloseStream":
                    await self.hear(final=True)
                    await self.finalise(len(self.received), speech_final=True)
                    await self.send(_metadata(len(self.received) / 8000, self.request_id))
                    await self.ws.close(1000)
                    return
        except ConnectionClosed:
            return

    async def hear(self, *, final: bool) -> None:
        """Analyse the whole frames received (and a trailing part one when ``final``)."""
        while self.analysed < len(self.received):
            end = min(self.analysed + FRAME, len(self.received))
            if end - self.analysed < FRAME and not final:
                break
            frame = bytes(self.received[self.analysed : end])
            start, self.analysed = self.analysed, end
            if rms_pcm16(ulaw_to_pcm16(frame)) > VOICE_RMS:
                if self.voice_start is None:
                    self.voice_start = start
                    if self.vad_events:
                        await self.send(
                            {"type": "SpeechStarted", "channel": [0, 1], "timestamp": start / 8000}
                        )
                self.voice_end = end
                self.last_word_end = None  # speech again: no utterance end yet
                continue
            if (
                self.voice_start is None
                and self.utterance is not None
                and self.endpointing is not None
                and end - self.voice_end >= self.endpointing
            ):
                self.utterance = None  # the pause became the utterance's end
            if (
                self.voice_start is not None
                and self.endpointing is not None
                and end - self.voice_end >= self.endpointing
            ):
                await self.finalise(end, speech_final=True)
            if (
                self.last_word_end is not None
                and self.utterance_end is not None
                and self.voice_start is None
                and end - self.last_word_end >= self.utterance_end
            ):
                await self.send(
                    {
                        "type": "UtteranceEnd",
                        "channel": [0, 1],
                        "last_word_end": self.last_word_end / 8000,
                    }
                )
                self.last_word_end = None
        if self.voice_start is not None and self.analysed - self.last_interim >= 1600:
            self.last_interim = self.analysed
            upcoming = self.owner.transcripts[0] if self.owner.transcripts else ""
            words = (self.utterance if self.utterance is not None else upcoming).split()
            heard = min(len(words), (self.voice_end - self.voice_start) // 1600 + 1)
            await self.send(
                _results(
                    " ".join(words[:heard]),
                    self.finalised / 8000,
                    (self.analysed - self.finalised) / 8000,
                    self.request_id,
                    is_final=False,
                    speech_final=False,
                    words_span=(self.voice_start / 8000, self.voice_end / 8000),
                )
            )

    async def finalise(
        self, upto: int, *, speech_final: bool = False, from_finalize: bool = False
    ) -> None:
        """A final result for ``[finalised, upto)``: the speech in it takes the next transcript."""
        if upto <= self.finalised:
            return
        transcript = ""
        span = (self.finalised / 8000, upto / 8000)
        if self.voice_start is not None:
            if self.utterance is None:  # the utterance's first final: it takes the next script
                self.utterance = self.owner.transcripts.popleft() if self.owner.transcripts else ""
                transcript = self.utterance
            span = (self.voice_start / 8000, self.voice_end / 8000)
            if transcript:
                self.last_word_end = self.voice_end
            if speech_final:
                self.utterance = None
        await self.send(
            _results(
                transcript,
                self.finalised / 8000,
                (upto - self.finalised) / 8000,
                self.request_id,
                is_final=True,
                speech_final=speech_final and self.voice_start is not None,
                from_finalize=from_finalize,
                words_span=span,
            )
        )
        self.finalised = upto
        self.voice_start = None
        self.last_interim = upto

    async def send(self, message: dict[str, Any]) -> None:
        self.owner.sent.append(message)
        await self.ws.send(json.dumps(message))


def _results(
    transcript: str,
    start: float,
    duration: float,
    request_id: str,
    *,
    is_final: bool = True,
    speech_final: bool = True,
    from_finalize: bool = False,
    words_span: tuple[float, float] | None = None,
) -> dict[str, Any]:
    words = transcript.split()
    first, last = words_span or (start, start + duration)
    step = (last - first) / max(1, len(words))
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": duration,
        "start": start,
        "is_final": is_final,
        "speech_final": speech_final,
        "from_finalize": from_finalize,
        "channel": {
            "alternatives": [
                {
                    "transcript": transcript,
                    "confidence": 0.97 if words else 0.0,
                    "words": [
                        {
                            "word": w.strip(".,?!").lower(),
                            "start": first + i * step,
                            "end": first + (i + 1) * step,
                            "confidence": 0.97,
                            "punctuated_word": w,
                        }
                        for i, w in enumerate(words)
                    ],
                }
            ]
        },
        "metadata": {
            "request_id": request_id,
            "model_info": {"name": "general-nova-3", "version": "2024-01-01", "arch": "nova-3"},
            "model_uuid": str(uuid.uuid4()),
        },
    }


def _metadata(seconds: float, request_id: str) -> dict[str, Any]:
    return {
        "type": "Metadata",
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": "0" * 64,
        "created": "2026-01-01T00:00:00.000Z",
        "duration": seconds,
        "channels": 1,
    }
