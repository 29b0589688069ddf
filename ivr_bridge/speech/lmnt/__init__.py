"""LMNT 1.1 speech sessions: the first ``SpeechSession`` implementation."""

from ivr_bridge.speech.lmnt.client import LmntSession, TimestampMode, connect_lmnt
from ivr_bridge.speech.lmnt.url import DEFAULT_BASE_URL, session_url

__all__ = ["DEFAULT_BASE_URL", "LmntSession", "TimestampMode", "connect_lmnt", "session_url"]
