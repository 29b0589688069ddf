"""The caller's voice, the same every time: each phrase synthesised from a pristine espeak-ng.

espeak-ng keeps state from one synthesis to the next (its wave generator's phase and buffers),
so the same words come out a little different depending on what was said before, and in the
bridge's own process that history includes every bot prompt, interleaved as timing decides. A
recogniser on the far end then hears a borderline word one way or the other, and a test that
passed alone fails in the suite. So the caller's voice lives in a helper process of its own,
which loads espeak-ng once and forks a child for every phrase: each child starts from the same
untouched state, so a phrase is identical whatever was synthesised before, in any process.

The helper is started on first use (spawned, so it inherits no threads) and serves one request
at a time over a pipe; it exits with its parent.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
import threading
from multiprocessing.connection import Connection
from typing import Any

from ivr_bridge.errors import SimulationError

_lock = threading.Lock()
_helper: tuple[Any, Connection] | None = None


class CallerVoiceError(SimulationError):
    """The caller's voice helper could not synthesise a phrase."""


async def synthesize(text: str, voice: str, sample_rate: int) -> bytes:
    """16-bit PCM of ``text`` in ``voice`` at ``sample_rate``, deterministically."""
    return await asyncio.get_running_loop().run_in_executor(
        None, _request, text, voice, sample_rate
    )


def _request(text: str, voice: str, sample_rate: int) -> bytes:
    with _lock:
        conn = _connection()
        conn.send((text, voice, sample_rate))
        ok, payload = conn.recv()
    if not ok:
        raise CallerVoiceError(f"caller voice {voice!r} cannot say {text[:40]!r}: {payload}")
    assert isinstance(payload, bytes)
    return payload


def _connection() -> Connection:
    global _helper
    if _helper is None or not _helper[0].is_alive():
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child,), name="caller-voice", daemon=True)
        process.start()
        child.close()
        _helper = (process, parent)
        atexit.register(_stop)
    return _helper[1]


def _stop() -> None:
    if _helper is not None:
        process, conn = _helper
        conn.close()
        process.join(timeout=2)
        if process.is_alive():
            process.kill()


# --- in the helper process -----------------------------------------------------------------


def _serve(conn: Connection) -> None:
    from ivr_bridge.speechserver.synth import EspeakSynthesizer

    synth = EspeakSynthesizer()
    synth.prepare()  # load espeak-ng before any fork: every child starts from this state
    while True:
        try:
            text, voice, sample_rate = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_in_child(synth, text, voice, sample_rate))


def _in_child(synth: Any, text: str, voice: str, sample_rate: int) -> tuple[bool, object]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: synthesise from the pristine state, hand back, leave at once
        os.close(read)
        try:
            pcm = synth.synthesize_now(text, voice, sample_rate)
            message = b"1" + pcm
        except Exception as exc:
            message = b"0" + repr(exc).encode()
        with os.fdopen(write, "wb") as out:
            out.write(message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as source:
        data = source.read()
    os.waitpid(pid, 0)
    if data[:1] == b"1":
        return True, data[1:]
    return False, data[1:].decode(errors="replace") or "the child died"
