"""The operators' pages: every kept call, read-only, behind ``IVR_OPERATOR_TOKEN``.

``GET /calls`` lists records newest first (``?outcome=``, ``?flow=``, ``?before=`` an ISO time,
``?limit=``), ``GET /calls/{CallSid}`` draws one (timeline, player, transcript with the unheard
words struck through), ``GET /calls/{CallSid}.json`` is the record itself and
``GET /calls/{CallSid}/audio.wav`` its stereo recording.

Records hold what callers said, so the pages are closed unless a token is set: unset, every
page is 404 (as if absent). With a token, the token is checked first, in constant time, before
anything about records is revealed: ``Authorization: Bearer <token>``, or HTTP basic auth with
the token as the password and any user name (what a browser prompts for; the 401 says
``WWW-Authenticate: Basic``). Then records off (``IVR_RECORDS=off``) → 404, an id that is not a
CallSid or no such call → 404. Every answer is ``no-store``; pages carry a CSP that allows only
their own inline style and script (by nonce) and media from this origin.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from aiohttp import web
from pydantic import SecretStr

from ivr_bridge.errors import RecordError
from ivr_bridge.records.model import CallRecord
from ivr_bridge.records.pages import OUTCOMES, call_page, list_page
from ivr_bridge.records.store import RecordStore, check_sid
from ivr_bridge.records.view import record_view

log = structlog.get_logger(__name__)

BASE = "/calls"
REALM = 'Basic realm="ivr-bridge calls"'
MAX_LIMIT = 500
_COMMON = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_DATA_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

StoreGetter = Callable[[], RecordStore | None]


def page_csp(nonce: str) -> str:
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "media-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


def token_matches(header: str, token: str) -> bool:
    """``Bearer <token>`` or ``Basic base64(any-user:<token>)``, compared in constant time."""
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        given = value.strip()
    elif scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[2]
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def _text(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(
        status=status,
        text=message + "\n",
        headers={**_COMMON, "Content-Security-Policy": _DATA_CSP, **headers},
    )


class OperatorPages:
    def __init__(self, records: StoreGetter, token: SecretStr | str | None) -> None:
        self._records = records
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        self._token = secret or None

    def _gate(self, request: web.Request) -> tuple[RecordStore | None, web.Response | None]:
        """The store, or the answer that refuses the request (token first, then records)."""
        if self._token is None:
            return None, _text(404, "Not found: the operators' pages are off (IVR_OPERATOR_TOKEN).")
        if not token_matches(request.headers.get("Authorization", ""), self._token):
            log.warning("operator page refused: missing or wrong token", path=request.path)
            return None, _text(
                401,
                "401: the operators' pages need IVR_OPERATOR_TOKEN (as a bearer token, or as the "
                "password of basic auth).",
                **{"WWW-Authenticate": REALM},
            )
        store = self._records()
        if store is None:
            return None, _text(404, "Not found: call records are off (IVR_RECORDS=off).")
        return store, None

    async def _record(self, request: web.Request) -> tuple[RecordStore, CallRecord] | web.Response:
        """The store and the record the path names, or the answer that refuses the request."""
        store, refused = self._gate(request)
        if refused is not None or store is None:
            return refused or _text(404, "Not found.")
        sid = request.match_info["sid"]
        try:
            record = await store.get(check_sid(sid))
        except RecordError as exc:
            if "not a call id" in str(exc):
                return _text(404, "Not found: not a call id.")
            log.error("a call record could not be read", call_sid=sid, error=str(exc))
            return _text(500, "The call's record could not be read.")
        if record is None:
            return _text(404, f"Not found: no record of call {sid}.")
        return store, record

    async def calls(self, request: web.Request) -> web.StreamResponse:
        store, refused = self._gate(request)
        if refused is not None:
            return refused
        assert store is not None
        query = request.query
        filters = {k: query.get(k, "").strip() for k in ("outcome", "flow", "before")}
        if filters["outcome"] and filters["outcome"] not in OUTCOMES:
            return _text(400, f"outcome must be one of {', '.join(OUTCOMES)}.")
        before = None
        if filters["before"]:
            try:
                before = datetime.fromisoformat(filters["before"].replace(" ", "+"))
            except ValueError:
                return _text(400, "before must be an ISO time, e.g. 2026-12-04T18:00:00+00:00.")
            before = before if before.tzinfo else before.replace(tzinfo=UTC)
        try:
            limit = max(1, min(int(query.get("limit", "50")), MAX_LIMIT))
        except ValueError:
            return _text(400, f"limit must be a number (1-{MAX_LIMIT}).")
        summaries = await store.list(
            limit=limit,
            before=before,
            outcome=filters["outcome"] or None,
            flow=filters["flow"] or None,
        )
        nonce = secrets.token_urlsafe(16)
        html = list_page(summaries, filters, nonce=nonce, base=BASE, limit=limit)
        return _html(html, nonce)

    async def call(self, request: web.Request) -> web.StreamResponse:
        found = await self._record(request)
        if isinstance(found, web.Response):
            return found
        store, record = found
        wav = await store.audio(record.call_sid) if record.audio is not None else None
        src = f"{BASE}/{record.call_sid}/audio.wav" if wav else None
        nonce = secrets.token_urlsafe(16)

        def render() -> str:  # a long call's WAV is megabytes: off the event loop
            return call_page(record, record_view(record, wav, audio_src=src), nonce=nonce)

        return _html(await asyncio.to_thread(render), nonce)

    async def record_json(self, request: web.Request) -> web.StreamResponse:
        found = await self._record(request)
        if isinstance(found, web.Response):
            return found
        record = found[1]
        return web.Response(
            body=record.model_dump_json(indent=1).encode(),
            content_type="application/json",
            headers={**_COMMON, "Content-Security-Policy": _DATA_CSP},
        )

    async def audio(self, request: web.Request) -> web.StreamResponse:
        found = await self._record(request)
        if isinstance(found, web.Response):
            return found
        store, record = found
        wav = await store.audio(record.call_sid)
        if wav is None:
            return _text(404, f"Not found: call {record.call_sid} kept no recording.")
        headers = {
            **_COMMON,
            "Content-Security-Policy": _DATA_CSP,
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{record.call_sid}.wav"',
        }
        wanted = _RANGE.match(request.headers.get("Range", ""))
        if wanted and (wanted[1] or wanted[2]):  # a player seeking: one byte range
            size = len(wav)
            if wanted[1]:
                start, end = int(wanted[1]), int(wanted[2] or size - 1)
            else:
                start, end = max(0, size - int(wanted[2])), size - 1
            end = min(end, size - 1)
            if start > end:
                return _text(416, "Range not satisfiable.", **{"Content-Range": f"bytes */{size}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return web.Response(
                status=206, body=wav[start : end + 1], content_type="audio/wav", headers=headers
            )
        return web.Response(body=wav, content_type="audio/wav", headers=headers)


def _html(html: str, nonce: str) -> web.Response:
    return web.Response(
        text=html,
        content_type="text/html",
        headers={**_COMMON, "Content-Security-Policy": page_csp(nonce)},
    )


def add_operator_routes(
    app: web.Application, records: StoreGetter, token: SecretStr | str | None
) -> None:
    """``GET /calls``, ``/calls/{CallSid}``, ``.json`` and ``/audio.wav``. ``records`` is asked
    on every request (the store may be opened after the routes are added); ``token`` None: off."""
    pages = OperatorPages(records, token)
    app.router.add_get(BASE, pages.calls)
    app.router.add_get(BASE + "/{sid}.json", pages.record_json)
    app.router.add_get(BASE + "/{sid}/audio.wav", pages.audio)
    app.router.add_get(BASE + "/{sid}", pages.call)
