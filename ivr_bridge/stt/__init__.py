"""Caller-turn speech recognition for the LLM dialog: vendors (Deepgram, per utterance), chooser."""

from ivr_bridge.stt.chooser import SttSettings, get_turn_transcriber
from ivr_bridge.stt.deepgram import DeepgramError, DeepgramTranscriber

__all__ = ["DeepgramError", "DeepgramTranscriber", "SttSettings", "get_turn_transcriber"]
