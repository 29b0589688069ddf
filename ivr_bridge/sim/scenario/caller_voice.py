"""The caller's voice, the same every time: neural voices, and espeak-ng from a pristine state.

Neural caller voices (``neural-low``, ``neural-high``...) are hibari's bundled voice moved in
pitch and rate, so the simulated caller sounds like a person and never like the bot (whose
default is the same model at its own pitch). hibari is deterministic for the same text (its
noise is seeded), so those phrases are synthesised in the helper itself. espeak-ng voices stay as
harder variants: they are robotic, and recognisers mishear them more.

espeak-ng keeps state from one synthesis to the next (its wave generator's phase and buffers),
so the same words come out a little different depending on what was said before, and in the
bridge's own process that history includes every bot prompt, interleaved as timing decides. A
recogniser on the far end then hears a borderline word one way or the other, and a test that
passed alone fails in the suite. So the caller's voice lives in a helper process of its own,
which loads espeak-ng once and forks a child for every phrase: each child starts from the same
untouched state, so a phrase is identical whatever was synthesised before, in any process.

The helper (``serve`` in a fresh interpreter) is started on first use, so it inherits
no threads, and serves one request at a time over its stdin/stdout; it exits with its parent.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any

from ivr_bridge.errors import SimulationError

_lock = threading.Lock()
_helper: subprocess.Popen[bytes] | None = None
_HEADER = struct.Struct("!cI")
"""Reply framing: status (``1`` ok, ``0`` error), payload length."""


class CallerVoiceError(SimulationError):
    """The caller's voice helper could not synthesise a phrase."""


@dataclass(frozen=True, slots=True)
class NeuralCallerVoice:
    """hibari's voice moved by ``pitch`` (x frequency) and spoken at ``tempo`` (x rate)."""

    pitch: float
    tempo: float = 1.0


NEURAL_CALLER_VOICES: dict[str, NeuralCallerVoice] = {
    "neural-low": NeuralCallerVoice(pitch=0.8),
    "neural-deep": NeuralCallerVoice(pitch=0.72, tempo=0.95),
    "neural-high": NeuralCallerVoice(pitch=1.15),
    "neural-fast": NeuralCallerVoice(pitch=0.88, tempo=1.25),
    "neural-slow": NeuralCallerVoice(pitch=0.92, tempo=0.85),
    "neural-warm": NeuralCallerVoice(pitch=0.9),
    "neural-brisk": NeuralCallerVoice(pitch=1.06, tempo=1.15),
    "neural-low-slow": NeuralCallerVoice(pitch=0.78, tempo=0.85),
    "neural-high-fast": NeuralCallerVoice(pitch=1.2, tempo=1.15),
}
"""Caller voices from the neural model; none at pitch 1.0, which is the bot's own voice."""
DEFAULT_NEURAL_CALLER_VOICE = "neural-low"


def is_neural(voice: str) -> bool:
    return voice in NEURAL_CALLER_VOICES


async def synthesize(text: str, voice: str, sample_rate: int, rate: float = 1.0) -> bytes:
    """16-bit PCM of ``text`` in ``voice`` at ``sample_rate``, deterministically; ``rate``
    scales the speaking rate (1.0 = the voice's own)."""
    return await asyncio.get_running_loop().run_in_executor(
        None, _request, text, voice, sample_rate, rate
    )


def synthesize_blocking(text: str, voice: str, sample_rate: int, rate: float = 1.0) -> bytes:
    """``synthesize`` for code with no event loop to keep free (tests, benchmarks' set-up)."""
    return _request(text, voice, sample_rate, rate)


def _request(text: str, voice: str, sample_rate: int, rate: float = 1.0) -> bytes:
    with _lock:
        helper = _running()
        assert helper.stdin is not None and helper.stdout is not None
        helper.stdin.write(json.dumps([text, voice, sample_rate, rate]).encode() + b"\n")
        helper.stdin.flush()
        ok, payload = _read_reply(helper.stdout)
    if not ok:
        raise CallerVoiceError(f"caller voice {voice!r} cannot say {text[:40]!r}: {payload!r}")
    return payload


def _read_reply(stream: IO[bytes]) -> tuple[bool, bytes]:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise CallerVoiceError("the caller voice helper exited")
    status, length = _HEADER.unpack(header)
    return status == b"1", stream.read(length)


def _running() -> subprocess.Popen[bytes]:
    """The helper process (a plain subprocess: load-test workers are daemonic and may not
    start multiprocessing children)."""
    global _helper
    if _helper is None or _helper.poll() is not None:
        _helper = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from ivr_bridge.sim.scenario.caller_voice import serve; serve()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        atexit.register(_stop, _helper)
    return _helper


def _stop(helper: subprocess.Popen[bytes]) -> None:
    if helper.stdin is not None:
        helper.stdin.close()
    try:
        helper.wait(timeout=2)
    except subprocess.TimeoutExpired:
        helper.kill()


# --- in the helper process -----------------------------------------------------------------


def serve() -> None:
    """The helper's main loop: requests on stdin, replies on the original stdout."""
    # Replies get the real stdout; anything printed or logged goes to stderr instead, so a
    # log line can never corrupt a reply.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from ivr_bridge.speechserver.synth import EspeakSynthesizer

    synth = EspeakSynthesizer()
    synth.prepare()  # load espeak-ng before any fork: every child starts from this state
    neural = _NeuralVoices()
    for line in sys.stdin.buffer:
        text, voice, sample_rate, rate = json.loads(line)
        if is_neural(voice):
            ok, payload = neural.say(text, NEURAL_CALLER_VOICES[voice], sample_rate, rate)
        else:
            ok, payload = _in_child(synth, text, voice, sample_rate, rate)
        out.write(_HEADER.pack(b"1" if ok else b"0", len(payload)) + payload)
        out.flush()


def _in_child(
    synth: Any, text: str, voice: str, sample_rate: int, rate: float
) -> tuple[bool, bytes]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: synthesise from the pristine state, hand back, leave at once
        os.close(read)
        try:
            message = b"1" + synth.synthesize_now(text, voice, sample_rate, rate)
        except Exception as exc:
            message = b"0" + repr(exc).encode()
        with os.fdopen(write, "wb") as pipe:
            pipe.write(message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if data[:1] == b"1":
        return True, data[1:]
    return False, data[1:] or b"the child died"


class _NeuralVoices:
    """hibari in the helper process, loaded on the first neural phrase (~1 s)."""

    def __init__(self) -> None:
        self._model: Any = None

    def say(
        self, text: str, voice: NeuralCallerVoice, sample_rate: int, rate: float
    ) -> tuple[bool, bytes]:
        try:
            return True, self._say(text, voice, sample_rate, rate)
        except Exception as exc:
            return False, repr(exc).encode()

    def _say(self, text: str, voice: NeuralCallerVoice, sample_rate: int, rate: float) -> bytes:
        from ivr_bridge.audio.codec import resample_pcm16
        from ivr_bridge.speechserver.neural import NeuralSynthesizer

        if self._model is None:
            self._model = NeuralSynthesizer()
        # Played back ``pitch`` times faster, the audio rises by ``pitch`` and gets shorter by
        # as much, so it is spoken that much slower to end at the asked tempo.
        speed = voice.tempo * rate / voice.pitch
        native = 24_000
        result = self._model.synthesize_blocking(text, native, speed=speed)
        out, _ = resample_pcm16(result.pcm16, round(native * voice.pitch), sample_rate)
        return out
