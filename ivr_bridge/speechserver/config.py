"""Speech-server settings (env prefix ``IVR_SPEECH_``), mutable at runtime for tests and load.

Sessions read the realism and fault knobs live from this object, so a test can change
``server.config.realtime_factor`` between calls without restarting the server.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ivr_bridge.errors import ConfigError
from ivr_bridge.speechserver.protocol import ErrorType

WavHeaderPlacement = Literal["first", "every_flush", "none"]


class SpeechServerConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IVR_SPEECH_", extra="ignore", validate_assignment=True
    )

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    """Accepted keys (env: comma-separated). Empty: any non-empty key, loopback binding only."""
    wav_header: WavHeaderPlacement = "first"
    """Where µ-law sessions carry a WAV header: first audio frame, first frame after every
    flush/reset, or never."""
    accept_delay_ms: int = Field(default=0, ge=0, le=60_000)
    """Delay before a session's WebSocket is accepted (a distant or overloaded service)."""
    first_audio_delay_ms: int = Field(default=0, ge=0, le=60_000)
    """Extra latency before the first audio of each utterance (session start, after flush/reset)."""
    realtime_factor: float = Field(default=0.0, ge=0.0, le=10.0)
    """Audio pacing: 1.0 = real time, 0.5 = twice real time, 0 = as fast as synthesised."""
    chunk_ms: int = Field(default=120, ge=20, le=1000)
    """Audio per binary frame."""
    processes: int = Field(default=0, ge=0, le=64)
    """Synthesis worker processes: N prompts speak at once on N cores. 0: one thread per
    engine in this process (what an embedded server in tests and demos uses);
    ``ivr-bridge speech-server`` defaults to one per core."""
    warm_neural: bool = True
    """Load the neural voice (the default voice) at start, in every worker (else on its first
    use there); off for a server that only speaks espeak voices."""
    prompt_cache_mb: int = Field(default=64, ge=0, le=4096)
    """Sentences already synthesised are kept (this many MiB of audio, least recently used
    dropped first) and served again without synthesis: IVR prompts repeat on every call.
    0 turns the cache off."""
    max_buffered_segments: int = Field(default=256, ge=1)
    """Sentences waiting for synthesis before a session is refused with rate_limit_error."""
    fault_close_after_ms: int | None = Field(default=None, ge=0)
    """Close the socket with ``fault_close_code`` once this much session audio has been sent."""
    fault_close_code: int = Field(default=1011, ge=1000, le=4999)
    fault_error_after_ms: int | None = Field(default=None, ge=0)
    """Send an error envelope (then close) once this much session audio has been sent."""
    fault_error_type: ErrorType = "internal_server_error"
    fault_error_message: str = "injected fault"
    fault_stall_after_ms: int | None = Field(default=None, ge=0)
    """Go silent for good (socket open, pings answered) once this much audio has been sent."""
    fault_ignore_reset: bool = False
    """Drop text and audio on ``reset`` but never acknowledge it."""
    fault_first_sessions: int | None = Field(default=None, ge=0)
    """Faults hit only the first N sessions this server opens; None: every session."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    def accepts_key(self, key: str) -> bool:
        """Constant-time check against configured keys; any non-empty key when none are set."""
        if not key:
            return False
        if not self.api_keys:
            return True
        return any(hmac.compare_digest(key.encode(), known.encode()) for known in self.api_keys)


class SpeechServerConfigError(ConfigError, ValueError):
    """The server cannot start as configured; the message says how to fix it."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(config: SpeechServerConfig, host: str) -> None:
    """Without keys anyone who can connect may synthesise, so only loopback is allowed."""
    if not config.api_keys and not is_loopback(host):
        raise SpeechServerConfigError(
            f"refusing to listen on non-loopback host {host!r} with no API keys configured: "
            "pass --api-key (or set IVR_SPEECH_API_KEYS) or bind to 127.0.0.1"
        )
