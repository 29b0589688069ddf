"""The campaign JSON API: what ``ivr-bridge campaign`` does, over HTTP, for a clinic's systems.

Every route takes ``Authorization: Bearer $IVR_CONTROL_TOKEN`` (off, 404, without the token or
without ``IVR_CAMPAIGN_DB``). Errors are JSON ``{"error": ...}`` naming the problem; a contacts
upload answers with every rejected row as ``contacts.csv:LINE: problem``.

    POST /campaigns                      {"id": "flu", "caller_id": "+1...", "plan": {...}}
    POST /campaigns/{id}/contacts        text/csv body        → imported, problems
    POST /campaigns/{id}/start|pause|resume
    GET  /campaigns/{id}                 progress and rates
    GET  /campaigns/{id}/export          outcomes CSV
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ivr_bridge.campaign.contacts import E164_PATTERN, ContactsError, parse_contacts
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.report import campaign_status, export_csv
from ivr_bridge.campaign.script import SCRIPTS_SUBDIR, ReminderScript
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.errors import CampaignError
from ivr_bridge.server.control import authorised
from ivr_bridge.server.state import STATE

MAX_JSON_BYTES = 16 * 1024
MAX_CSV_BYTES = 8 * 1024 * 1024
VERBS = {"start": "running", "resume": "running", "pause": "paused"}


class _NewCampaign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: str | None = Field(default=None, max_length=200)
    caller_id: str = Field(pattern=E164_PATTERN)
    plan: CampaignPlan = CampaignPlan()


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _store(request: web.Request) -> CampaignStore:
    state = request.app[STATE]
    token = state.settings.control_token
    if token is None or state.campaigns is None:
        raise web.HTTPNotFound(
            text=json.dumps(
                {"error": "the campaign API is off: set IVR_CONTROL_TOKEN and IVR_CAMPAIGN_DB"}
            ),
            content_type="application/json",
        )
    if not authorised(request, token.get_secret_value()):
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "missing or wrong bearer token"}),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="ivr-bridge campaigns"'},
        )
    return state.campaigns


async def _body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(raw))
    return raw


def _script(request: web.Request, name: str) -> ReminderScript:
    scripts = request.app[STATE].reminder_scripts
    if name not in scripts:
        raise CampaignError(
            f"plan.script: no reminder script {name!r} in flows/{SCRIPTS_SUBDIR} on this bridge "
            f"(there are: {', '.join(scripts) or 'none'})"
        )
    return scripts[name]


async def create(request: web.Request) -> web.Response:
    store = _store(request)
    try:
        body = _NewCampaign.model_validate_json(await _body(request, MAX_JSON_BYTES) or b"{}")
        _script(request, body.plan.script)
        await store.create_campaign(
            body.id,
            name=body.name or body.id,
            caller_id=body.caller_id,
            app="reminder",
            plan=body.plan,
            now=time.time(),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return _problem(400, f"{where}: {first['msg']}")
    except CampaignError as exc:
        return _problem(409 if "exists already" in str(exc) else 400, str(exc))
    return web.json_response({"id": body.id, "status": "draft"}, status=201)


async def contacts(request: web.Request) -> web.Response:
    store = _store(request)
    campaign_id = request.match_info["id"]
    raw = await _body(request, MAX_CSV_BYTES)
    strict = request.query.get("strict", "false").lower() in ("1", "true", "yes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _problem(400, "contacts.csv:1: not UTF-8 text: save the file as UTF-8")
    try:
        script = _script(request, (await store.plan(campaign_id)).script)
        # Off the event loop: up to 8 MB of CSV must not stall the live calls it carries.
        result = await asyncio.to_thread(
            parse_contacts,
            io.StringIO(text, newline=""),
            "contacts.csv",
            now=datetime.now(UTC),
            strict=strict,
            script=script,
        )
        skipped = await store.add_contacts(campaign_id, result.contacts, now=time.time())
    except ContactsError as exc:
        return web.json_response(
            {"imported": 0, "problems": [str(p) for p in exc.problems]}, status=422
        )
    except CampaignError as exc:
        return _problem(404, str(exc))
    problems = [str(p) for p in result.problems]
    problems += [f"contacts.csv:{s.removeprefix('line ')}" for s in skipped]
    return web.json_response(
        {"imported": len(result.contacts) - len(skipped), "rows": result.rows, "problems": problems}
    )


async def set_status(request: web.Request) -> web.Response:
    store = _store(request)
    verb = request.match_info["verb"]
    if verb not in VERBS:
        return _problem(404, f"no action {verb!r}: use start, pause or resume")
    try:
        await store.set_status(request.match_info["id"], VERBS[verb])
    except CampaignError as exc:
        return _problem(404, str(exc))
    return web.json_response({"id": request.match_info["id"], "status": VERBS[verb]})


async def status(request: web.Request) -> web.Response:
    store = _store(request)
    campaign_id = request.match_info["id"]
    try:
        campaign = await store.campaign(campaign_id)
    except CampaignError as exc:
        return _problem(404, str(exc))
    report = campaign_status(campaign, await store.attempt_rows(campaign_id))
    return web.json_response(report.to_json())


async def export(request: web.Request) -> web.Response:
    store = _store(request)
    campaign_id = request.match_info["id"]
    try:
        await store.campaign(campaign_id)
    except CampaignError as exc:
        return _problem(404, str(exc))
    return web.Response(
        text=export_csv(await store.attempt_rows(campaign_id)),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{campaign_id}-outcomes.csv"'},
    )


def add_campaign_api_routes(app: web.Application) -> None:
    app.router.add_post("/campaigns", create)
    app.router.add_post("/campaigns/{id}/contacts", contacts)
    app.router.add_post("/campaigns/{id}/{verb}", set_status)
    app.router.add_get("/campaigns/{id}", status)
    app.router.add_get("/campaigns/{id}/export", export)
