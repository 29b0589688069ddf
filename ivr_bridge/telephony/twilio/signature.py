"""X-Twilio-Signature checks for the voice webhook and the Media Streams WebSocket upgrade.

Behind a TLS-terminating proxy the URL aiohttp sees (http, internal host) is not the URL Twilio
signed, so every check rebuilds the URL from the configured public base URL. The HMAC and its
constant-time comparison stay inside twilio-python's ``RequestValidator``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator

__all__ = ["TwilioSignatureChecker", "http_url", "sign_request", "websocket_url"]

_WS_SCHEME = {"https": "wss", "http": "ws"}


def _split_public_url(public_url: str) -> tuple[str, str, str]:
    """(scheme, netloc, base path without trailing slash) of a configured http(s) base URL."""
    parts = urlsplit(public_url)
    if parts.scheme not in _WS_SCHEME or not parts.netloc:
        raise ValueError(
            f"public_url must be an absolute http:// or https:// URL, got {public_url!r}"
        )
    return parts.scheme, parts.netloc, parts.path.rstrip("/")


def _join(base_path: str, path: str) -> str:
    return f"{base_path}/{path.lstrip('/')}"


def http_url(public_url: str, path_qs: str) -> str:
    """The URL Twilio requested: public scheme/host/port + our path *with* its query string."""
    scheme, netloc, base_path = _split_public_url(public_url)
    return f"{scheme}://{netloc}{_join(base_path, path_qs)}"


def websocket_url(public_url: str, path: str) -> str:
    """The ws(s):// URL for ``<Stream url>``; Twilio drops query strings, so none is allowed."""
    if "?" in path or "#" in path:
        raise ValueError(f"stream path must not carry a query string or fragment, got {path!r}")
    scheme, netloc, base_path = _split_public_url(public_url)
    return urlunsplit((_WS_SCHEME[scheme], netloc, _join(base_path, path), "", ""))


def sign_request(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Compute X-Twilio-Signature the way Twilio does (for the simulated caller and tests)."""
    return str(RequestValidator(auth_token).compute_signature(url, params or {}))


class TwilioSignatureChecker:
    """Validates Twilio's signatures against URLs rebuilt from the public base URL.

    With no auth token the checker is disabled and accepts everything (local development);
    the server must say so loudly at startup, since an open media endpoint spends TTS money.
    """

    def __init__(self, auth_token: str | None, public_url: str) -> None:
        _split_public_url(public_url)  # fail at startup, not on the first call
        self.public_url = public_url
        # Only the validator holds the token, so no attribute of ours can leak it into a log.
        self._validator = RequestValidator(auth_token) if auth_token else None

    @property
    def enabled(self) -> bool:
        return self._validator is not None

    def __repr__(self) -> str:
        return f"TwilioSignatureChecker(enabled={self.enabled}, public_url={self.public_url!r})"

    def valid_webhook(self, path_qs: str, params: Mapping[str, str], signature: str | None) -> bool:
        """Check a form-encoded webhook: URL incl. query string, plus *every* POSTed param.

        Pass all received form fields (Twilio adds new ones without notice); a multi-dict such
        as aiohttp's ``MultiDictProxy`` keeps repeated fields, which the validator handles.
        """
        if self._validator is None:
            return True
        if not signature:
            return False
        url = http_url(self.public_url, path_qs)
        return bool(self._validator.validate(url, params, signature))

    def valid_websocket(self, path: str, signature: str | None) -> bool:
        """Check the upgrade request: Twilio signs the ``wss://`` URL with no params.

        ``path`` is the request path (aiohttp's ``request.path``); a query string is ignored
        because Twilio strips it from stream URLs before connecting.
        Twilio advises also trying the URL with a trailing slash toggled. A signature computed
        over the ``https://`` form of the URL does not match and is refused.
        """
        if self._validator is None:
            return True
        if not signature:
            return False
        url = websocket_url(self.public_url, path.split("?", 1)[0])
        toggled = url.rstrip("/") if url.endswith("/") else url + "/"
        return any(
            self._validator.validate(candidate, {}, signature) for candidate in (url, toggled)
        )
