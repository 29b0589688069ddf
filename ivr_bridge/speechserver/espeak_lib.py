"""ctypes binding for the few libespeak-ng calls the synthesizer needs.

The library and its data come from the ``espeakng-loader`` wheel, so no system package is needed.
libespeak-ng keeps global state (current voice, parameters, callback): only
:class:`ivr_bridge.speechserver.synth.EspeakSynthesizer` may call into it, from its one worker
thread.
"""

from __future__ import annotations

import ctypes
from typing import Any

import espeakng_loader

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
EE_OK = 0

EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_END = 5
EVENT_MSG_TERMINATED = 6

PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4

DEFAULT_RATE_WPM = 175
MIN_RATE_WPM = 80
MAX_RATE_WPM = 450


class EventId(ctypes.Union):
    _fields_ = (
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    )


class Event(ctypes.Structure):
    """``espeak_EVENT``: audio_position is in ms, text_position is 1-based in characters."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", EventId),
    )


class VoiceSpec(ctypes.Structure):
    """``espeak_VOICE``, used for selection by properties (language + gender + variant)."""

    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event)
)


def load() -> Any:
    """Load libespeak-ng from the wheel and declare the signatures we use."""
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = (SynthCallback,)
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetVoiceByProperties.argtypes = (ctypes.POINTER(VoiceSpec),)
    lib.espeak_SetVoiceByProperties.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = (
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    )
    lib.espeak_Synth.restype = ctypes.c_int
    if hasattr(lib, "espeak_ng_SetRandSeed"):  # espeak-ng 1.52+
        lib.espeak_ng_SetRandSeed.argtypes = (ctypes.c_long,)
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
    return lib


RAND_SEED = 8000
"""espeak-ng draws breath and aspiration noise from its own generator, which
``espeak_Initialize`` seeds with the clock: processes started in different seconds said the same
phrase differently, and a borderline word recognised in one test run failed in the next (measured:
"no" in leah scored 0.58 in one process, under 0.25 in another). A fixed seed makes a process's
first utterance of a phrase the same in every run."""


def seed_random(lib: Any, seed: int = RAND_SEED) -> None:
    """Reseed espeak-ng's noise generator (a no-op on versions without the call)."""
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed(seed)


def data_path() -> str:
    """Directory holding espeak-ng-data (the library wants its parent or itself; we pass itself)."""
    return str(espeakng_loader.get_data_path())
