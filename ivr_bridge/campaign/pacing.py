"""Dialling pace: a token bucket at or below the account's calls per second.

Twilio accepts API-created calls at the account's CPS (1 by default) and *queues the rest
silently for up to 24 hours*, which is how a reminder ends up ringing at 23:00. So the dialler
never sends faster than the bucket allows, and the bucket is pure arithmetic over a clock the
caller passes in: the dispatcher asks ``delay(now)`` how long to wait before its next request,
and tests drive it with a simulated clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ivr_bridge.errors import CampaignError


@dataclass
class TokenBucket:
    rate: float
    """Tokens (calls) per second."""
    burst: float = 1.0
    """At most this many calls back to back; 1 keeps every gap at least 1/rate."""
    _tokens: float = field(init=False)
    _stamp: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise CampaignError(f"calls per second must be above 0 (got {self.rate})")
        if self.burst < 1:
            raise CampaignError(f"burst must be at least 1 call (got {self.burst})")
        self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self._stamp is not None and now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        if self._stamp is None or now > self._stamp:
            self._stamp = now

    def delay(self, now: float) -> float:
        """Seconds to wait from ``now`` until a call may be sent (0: send now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self, now: float) -> bool:
        """Spend a token for a call sent at ``now``; False (nothing spent) if none is there."""
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
