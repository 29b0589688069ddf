"""Stream tokens: a start binds to the call the voice webhook answered, once, in time."""

from __future__ import annotations

from ivr_bridge.server.stream_tokens import (
    TOKEN_PARAMETER,
    TOKEN_TTL_S,
    StreamTokens,
    derive_key,
)

KEY = derive_key("auth-token-0123456789")
SID = "CA" + "a" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _tokens() -> tuple[StreamTokens, Clock]:
    clock = Clock()
    return StreamTokens(KEY, clock), clock


def _start(tokens: StreamTokens, sid: str = SID, **parameters: str) -> dict[str, str]:
    params = {"flow": "support_line.yaml", "From": "+15550001", **parameters}
    token = tokens.issue(sid, params)
    assert token is not None
    return {**params, TOKEN_PARAMETER: token}


def test_the_call_the_webhook_answered_may_start_once() -> None:
    tokens, _ = _tokens()
    params = _start(tokens)
    assert tokens.check(SID, params) is None
    assert tokens.check(SID, params) == "replayed_start"


def test_a_token_for_another_call_or_other_parameters_is_refused() -> None:
    tokens, _ = _tokens()
    params = _start(tokens)
    assert tokens.check("CA" + "b" * 32, params) == "bad_token"
    assert tokens.check(SID, {**params, "flow": "admin.yaml"}) == "bad_token"
    assert tokens.check(SID, {**params, "extra": "x"}) == "bad_token"
    assert tokens.check(SID, {k: v for k, v in params.items() if k != TOKEN_PARAMETER}) == (
        "no_token"
    )
    assert tokens.check(SID, {**params, TOKEN_PARAMETER: "9" * 40 + ".abc"}) == "no_token"


def test_a_token_expires_and_a_key_from_another_auth_token_never_matches() -> None:
    tokens, clock = _tokens()
    params = _start(tokens)
    clock.now += TOKEN_TTL_S + 1
    assert tokens.check(SID, params) == "expired_token"
    other = StreamTokens(derive_key("another-auth-token"), clock)
    assert other.check(SID, _start(tokens)) == "bad_token"


def test_without_an_auth_token_nothing_is_enforced() -> None:
    tokens = StreamTokens(None)
    assert tokens.issue(SID, {}) is None
    assert tokens.check(SID, {}) is None
