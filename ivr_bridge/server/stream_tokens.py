"""Binding a media stream to a call the voice webhook answered.

Twilio signs the WebSocket upgrade over the URL alone, so one captured ``X-Twilio-Signature``
would open any number of streams, with any CallSid, flow and parameters. The voice webhook (whose
signature does cover the call) therefore hands the stream a token among its ``<Parameter>``s:
an HMAC over the CallSid, an expiry and every other parameter. ``start`` must carry a valid one,
for its own CallSid and parameters, before its expiry, and only once: a replayed ``start`` (the
same call twice) is refused too. The key derives from ``TWILIO_AUTH_TOKEN``, so every replica
shares it; with signature validation off (no auth token) nothing is enforced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

TOKEN_PARAMETER = "ivr_stream_token"
TOKEN_TTL_S = 300.0
"""A stream opens within a second of the webhook; five minutes leaves room for slow networks."""
MAX_SEEN = 100_000


def derive_key(auth_token: str) -> bytes:
    return hmac.new(auth_token.encode(), b"ivr-bridge media stream token v1", "sha256").digest()


def _mac(key: bytes, call_sid: str, expires: int, parameters: Mapping[str, str]) -> str:
    others = sorted((k, v) for k, v in parameters.items() if k != TOKEN_PARAMETER)
    message = json.dumps([call_sid, expires, others], separators=(",", ":")).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def issue(
    key: bytes, call_sid: str, parameters: Mapping[str, str], *, now: float | None = None
) -> str:
    """The token for a stream of ``call_sid`` with these parameters."""
    expires = int((time.time() if now is None else now) + TOKEN_TTL_S)
    return f"{expires}.{_mac(key, call_sid, expires, parameters)}"


class StreamTokens:
    def __init__(self, key: bytes | None, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    @property
    def enforced(self) -> bool:
        return self._key is not None

    def issue(self, call_sid: str, parameters: Mapping[str, str]) -> str | None:
        if self._key is None:
            return None
        return issue(self._key, call_sid, parameters, now=self._clock())

    def check(self, call_sid: str, parameters: Mapping[str, str]) -> str | None:
        """None when this ``start`` may run; otherwise why not (for the log and the metric)."""
        if self._key is None:
            return None
        token = parameters.get(TOKEN_PARAMETER, "")
        expires_text, _, mac = token.partition(".")
        if not expires_text.isdigit() or len(expires_text) > 12 or not mac:
            return "no_token"
        expires = int(expires_text)
        if not hmac.compare_digest(mac, _mac(self._key, call_sid, expires, parameters)):
            return "bad_token"
        now = self._clock()
        if expires < now:
            return "expired_token"
        self._forget(now)
        if call_sid in self._seen:
            return "replayed_start"
        self._seen[call_sid] = expires
        if len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)
        return None

    def _forget(self, now: float) -> None:
        while self._seen:
            sid, expires = next(iter(self._seen.items()))
            if expires >= now:
                break
            del self._seen[sid]
