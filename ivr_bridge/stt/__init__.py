"""Caller-turn speech recognition for the LLM dialog: vendors (Deepgram per utterance, or one
live Deepgram stream per call), chooser."""

from ivr_bridge.stt.chooser import SttSettings, get_turn_transcriber, live_transcriber
from ivr_bridge.stt.deepgram import DeepgramError, DeepgramTranscriber
from ivr_bridge.stt.deepgram_live import DeepgramLive

__all__ = [
    "DeepgramError",
    "DeepgramLive",
    "DeepgramTranscriber",
    "SttSettings",
    "get_turn_transcriber",
    "live_transcriber",
]
