"""X-Twilio-Signature checks, with twilio-python's own validator as the signer."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from ivr_bridge.telephony.twilio.signature import (
    TwilioSignatureChecker,
    http_url,
    sign_request,
    websocket_url,
)

TOKEN = "12345678901234567890123456789012"
PUBLIC = "https://bridge.example.com"
VOICE_PARAMS = {
    "CallSid": "CA6b9c4e7a1ee8c4e40f4ca7e4f6d1c0d2",
    "From": "+14155550100",
    "To": "+14155550199",
    "CallStatus": "ringing",
}


def twilio_signs(url: str, params: dict[str, str] | None = None, token: str = TOKEN) -> str:
    """What Twilio puts in X-Twilio-Signature (computed by twilio-python, not by our code)."""
    return str(RequestValidator(token).compute_signature(url, params or {}))


@pytest.fixture
def checker() -> TwilioSignatureChecker:
    return TwilioSignatureChecker(TOKEN, PUBLIC)


# ------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    ("public", "path", "expected"),
    [
        ("https://bridge.example.com", "/twilio/stream", "wss://bridge.example.com/twilio/stream"),
        ("http://127.0.0.1:8080", "/twilio/stream", "ws://127.0.0.1:8080/twilio/stream"),
        ("https://h.example:8443/", "twilio/stream", "wss://h.example:8443/twilio/stream"),
        ("https://h.example/ivr", "/twilio/stream", "wss://h.example/ivr/twilio/stream"),
        ("https://h.example/?x=1", "/twilio/stream", "wss://h.example/twilio/stream"),
    ],
)
def test_websocket_url(public: str, path: str, expected: str) -> None:
    assert websocket_url(public, path) == expected


def test_websocket_url_refuses_query_and_bad_base() -> None:
    with pytest.raises(ValueError, match="query"):
        websocket_url(PUBLIC, "/twilio/stream?call=1")
    with pytest.raises(ValueError, match="public_url"):
        websocket_url("bridge.example.com", "/twilio/stream")
    with pytest.raises(ValueError, match="public_url"):
        websocket_url("ftp://bridge.example.com", "/twilio/stream")


def test_http_url_keeps_scheme_port_and_query() -> None:
    assert http_url("https://h.example:8443", "/twilio/voice?flow=main&x=1") == (
        "https://h.example:8443/twilio/voice?flow=main&x=1"
    )
    assert (
        http_url("http://h.example/base/", "/twilio/voice") == "http://h.example/base/twilio/voice"
    )


def test_sign_request_is_hmac_sha1_of_url_plus_sorted_params() -> None:
    url = f"{PUBLIC}/twilio/voice"
    message = url + "".join(name + VOICE_PARAMS[name] for name in sorted(VOICE_PARAMS))
    digest = hmac.new(TOKEN.encode(), message.encode(), hashlib.sha1).digest()
    assert sign_request(TOKEN, url, VOICE_PARAMS) == base64.b64encode(digest).decode()
    assert sign_request(TOKEN, url, VOICE_PARAMS) == twilio_signs(url, VOICE_PARAMS)


# ------------------------------------------------------------------ webhook


def test_webhook_signed_by_twilio_passes(checker: TwilioSignatureChecker) -> None:
    signature = twilio_signs(f"{PUBLIC}/twilio/voice", VOICE_PARAMS)
    assert checker.valid_webhook("/twilio/voice", VOICE_PARAMS, signature)


def test_webhook_wrong_token_fails(checker: TwilioSignatureChecker) -> None:
    signature = twilio_signs(f"{PUBLIC}/twilio/voice", VOICE_PARAMS, token="0" * 32)
    assert not checker.valid_webhook("/twilio/voice", VOICE_PARAMS, signature)


@pytest.mark.parametrize("signature", [None, ""])
def test_webhook_missing_signature_fails(
    checker: TwilioSignatureChecker, signature: str | None
) -> None:
    assert not checker.valid_webhook("/twilio/voice", VOICE_PARAMS, signature)


def test_webhook_tampered_or_partial_params_fail(checker: TwilioSignatureChecker) -> None:
    signature = twilio_signs(f"{PUBLIC}/twilio/voice", VOICE_PARAMS)
    assert not checker.valid_webhook(
        "/twilio/voice", {**VOICE_PARAMS, "To": "+19005550000"}, signature
    )
    partial = {k: v for k, v in VOICE_PARAMS.items() if k != "CallStatus"}
    assert not checker.valid_webhook("/twilio/voice", partial, signature)


def test_webhook_query_string_is_part_of_the_signed_url(checker: TwilioSignatureChecker) -> None:
    signature = twilio_signs(f"{PUBLIC}/twilio/after-stream?call=7", VOICE_PARAMS)
    assert checker.valid_webhook("/twilio/after-stream?call=7", VOICE_PARAMS, signature)
    assert not checker.valid_webhook("/twilio/after-stream", VOICE_PARAMS, signature)
    assert not checker.valid_webhook("/twilio/after-stream?call=8", VOICE_PARAMS, signature)


def test_webhook_behind_proxy_uses_public_url(checker: TwilioSignatureChecker) -> None:
    # Signed over what aiohttp would see behind a TLS proxy: must not pass.
    internal = twilio_signs("http://10.0.0.5:8080/twilio/voice", VOICE_PARAMS)
    assert not checker.valid_webhook("/twilio/voice", VOICE_PARAMS, internal)


def test_webhook_with_explicit_port() -> None:
    checker = TwilioSignatureChecker(TOKEN, "https://bridge.example.com:8443")
    signature = twilio_signs("https://bridge.example.com:8443/twilio/voice", VOICE_PARAMS)
    assert checker.valid_webhook("/twilio/voice", VOICE_PARAMS, signature)
    portless = twilio_signs("https://bridge.example.com/twilio/voice", VOICE_PARAMS)
    assert checker.valid_webhook("/twilio/voice", VOICE_PARAMS, portless)  # validator tries both


def test_webhook_signed_with_default_port_passes(checker: TwilioSignatureChecker) -> None:
    signature = twilio_signs("https://bridge.example.com:443/twilio/voice", VOICE_PARAMS)
    assert checker.valid_webhook("/twilio/voice", VOICE_PARAMS, signature)


def test_webhook_repeated_form_fields_use_all_values(checker: TwilioSignatureChecker) -> None:
    form = MultiDict([*VOICE_PARAMS.items(), ("Digits", "1"), ("Digits", "2")])
    signature = sign_request(TOKEN, f"{PUBLIC}/twilio/voice", form)
    assert checker.valid_webhook("/twilio/voice", form, signature)
    single = MultiDict([*VOICE_PARAMS.items(), ("Digits", "1")])
    assert not checker.valid_webhook("/twilio/voice", single, signature)


# ------------------------------------------------------------------ websocket upgrade


def test_websocket_signed_over_wss_passes(checker: TwilioSignatureChecker) -> None:
    signature = twilio_signs("wss://bridge.example.com/twilio/stream")
    assert checker.valid_websocket("/twilio/stream", signature)


def test_websocket_signed_over_https_fails(checker: TwilioSignatureChecker) -> None:
    signature = twilio_signs("https://bridge.example.com/twilio/stream")
    assert not checker.valid_websocket("/twilio/stream", signature)


def test_websocket_trailing_slash_variants_pass(checker: TwilioSignatureChecker) -> None:
    with_slash = twilio_signs("wss://bridge.example.com/twilio/stream/")
    assert checker.valid_websocket("/twilio/stream", with_slash)
    without_slash = twilio_signs("wss://bridge.example.com/twilio/stream")
    assert checker.valid_websocket("/twilio/stream/", without_slash)


def test_websocket_wrong_token_missing_or_other_path_fails(
    checker: TwilioSignatureChecker,
) -> None:
    assert not checker.valid_websocket(
        "/twilio/stream", twilio_signs("wss://bridge.example.com/twilio/stream", token="x" * 32)
    )
    assert not checker.valid_websocket("/twilio/stream", None)
    assert not checker.valid_websocket("/twilio/stream", "")
    other = twilio_signs("wss://bridge.example.com/twilio/other")
    assert not checker.valid_websocket("/twilio/stream", other)


def test_websocket_signature_with_params_fails(checker: TwilioSignatureChecker) -> None:
    signature = twilio_signs("wss://bridge.example.com/twilio/stream", {"a": "b"})
    assert not checker.valid_websocket("/twilio/stream", signature)


def test_websocket_with_port_and_base_path() -> None:
    checker = TwilioSignatureChecker(TOKEN, "https://bridge.example.com:8443/ivr")
    signature = twilio_signs("wss://bridge.example.com:8443/ivr/twilio/stream")
    assert checker.valid_websocket("/twilio/stream", signature)
    assert not checker.valid_websocket(
        "/twilio/stream", twilio_signs("wss://bridge.example.com/twilio/stream")
    )


def test_plain_http_public_url_signs_ws(checker: TwilioSignatureChecker) -> None:
    local = TwilioSignatureChecker(TOKEN, "http://127.0.0.1:8080")
    assert local.valid_websocket(
        "/twilio/stream", twilio_signs("ws://127.0.0.1:8080/twilio/stream")
    )
    assert not local.valid_websocket(
        "/twilio/stream", twilio_signs("wss://127.0.0.1:8080/twilio/stream")
    )


# ------------------------------------------------------------------ enabled / secrets


@pytest.mark.parametrize("token", [None, ""])
def test_without_token_checker_is_disabled_and_open(token: str | None) -> None:
    checker = TwilioSignatureChecker(token, PUBLIC)
    assert checker.enabled is False
    assert checker.valid_webhook("/twilio/voice", VOICE_PARAMS, None)
    assert checker.valid_websocket("/twilio/stream", None)


def test_enabled_and_token_not_in_repr(checker: TwilioSignatureChecker) -> None:
    assert checker.enabled is True
    assert TOKEN not in repr(checker)
    assert TOKEN not in str(vars(checker))


def test_bad_public_url_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="public_url"):
        TwilioSignatureChecker(TOKEN, "bridge.example.com")
