"""The http step: one JSON request to a backend (balance lookup, appointment change).

Any failure — refused connection, timeout, non-2xx status, a body that is not JSON or is too
large — is a single outcome, ``failed``, so the flow's failure branch can say something useful
instead of the call going silent. Event fields carry the URL without its query (which may hold
an account number).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ivr_bridge.call.control import CallControl
from ivr_bridge.dialog.flow_model import HttpSpec
from ivr_bridge.dialog.templates import render, render_value
from ivr_bridge.http_util import read_limited

_QUERY = re.compile(r"\?[^\s'\"<>)]*")


@dataclass(frozen=True, slots=True)
class HttpOutcome:
    ok: bool
    data: Any = None
    status: int | None = None
    error: str | None = None


async def run_http(
    spec: HttpSpec, label: str, call: CallControl, scope: Mapping[str, Any], max_bytes: int
) -> HttpOutcome:
    url = render(spec.url, scope)
    query = {k: render(v, scope) for k, v in spec.query.items()}
    headers = {k: render(v, scope) for k, v in spec.headers.items()}
    body = render_value(spec.json_body, scope) if spec.json_body is not None else None
    started = time.monotonic()
    outcome = await _request(spec, url, query, headers, body, max_bytes)
    call.record_event(
        "http",
        step=label,
        method=spec.method,
        url=_without_query(url),
        status=outcome.status,
        ok=outcome.ok,
        error=outcome.error,
        elapsed_ms=round((time.monotonic() - started) * 1000),
    )
    return outcome


async def _request(
    spec: HttpSpec,
    url: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: Any,
    max_bytes: int,
) -> HttpOutcome:
    timeout = aiohttp.ClientTimeout(total=spec.timeout_ms / 1000)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.request(spec.method, url, params=query or None, headers=headers, json=body) as r,
        ):
            raw = await read_limited(r.content, max_bytes)
            status = r.status
    except TimeoutError:
        return HttpOutcome(False, error=f"no answer within {spec.timeout_ms} ms")
    except (aiohttp.ClientError, ValueError) as exc:
        # aiohttp's messages may quote the URL; its query (an account number) stays out of events
        message = _QUERY.sub("", str(exc))
        return HttpOutcome(False, error=f"{type(exc).__name__}: {message}"[:300])
    if not 200 <= status < 300:
        return HttpOutcome(False, status=status, error=f"HTTP {status}")
    if len(raw) > max_bytes:
        return HttpOutcome(False, status=status, error=f"response larger than {max_bytes} bytes")
    try:
        data = json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return HttpOutcome(False, status=status, error="response is not JSON")
    return HttpOutcome(True, data=data, status=status)


def _without_query(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed URL from a template: the request failed the same way
        return url.split("?", 1)[0].split("#", 1)[0]
    return urlunsplit(parts._replace(query="", fragment=""))
