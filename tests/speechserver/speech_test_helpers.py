"""Helpers shared by the speech-server tests (wire-level client, WAV header walker)."""

from __future__ import annotations

import json
from typing import Any

import websockets

from ivr_bridge.speechserver.app import RunningSpeechServer

TEST_KEY = "test-key"


def ws_url(server: RunningSpeechServer) -> str:
    return server.base_url.replace("http://", "ws://") + "/v1/ai/speech/stream"


async def raw_session(server: RunningSpeechServer, **init: Any) -> websockets.ClientConnection:
    """A plain websockets client, for what the SDK cannot send (1.1, ``type``, bad frames)."""
    ws = await websockets.connect(ws_url(server))
    message = {"X-API-Key": TEST_KEY, "lmnt-version": "1.1", "voice": "leah", **init}
    await ws.send(json.dumps({k: v for k, v in message.items() if v is not None}))
    return ws


async def read_all(ws: websockets.ClientConnection) -> list[str | bytes]:
    """Every frame until the server closes the socket."""
    frames: list[str | bytes] = []
    try:
        async for frame in ws:
            frames.append(frame)
    except websockets.ConnectionClosed:
        pass
    return frames


def parse_wav_header(data: bytes) -> tuple[dict[str, int], int]:
    """Walk RIFF chunks up to ``data``: (fmt fields, offset of the first audio byte)."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", "not a RIFF/WAVE header"
    offset, fmt = 12, {}
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        if chunk_id == b"data":
            return fmt, offset + 8
        if chunk_id == b"fmt ":
            body = data[offset + 8 : offset + 8 + size]
            fmt = {
                "format_tag": int.from_bytes(body[0:2], "little"),
                "channels": int.from_bytes(body[2:4], "little"),
                "sample_rate": int.from_bytes(body[4:8], "little"),
                "bits": int.from_bytes(body[14:16], "little"),
            }
        offset += 8 + size + (size & 1)
    raise AssertionError("no data chunk in header")
