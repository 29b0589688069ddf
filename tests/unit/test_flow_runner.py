"""The flow interpreter: variables, branching, http, record, transfer, hangup, loop guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from ivr_bridge.call.control import BargeInPolicy
from ivr_bridge.call.inputs import SpeechStarted
from ivr_bridge.call.testing import ScriptedCall, digits, utterance
from ivr_bridge.dialog.flow import (
    Flow,
    FlowError,
    FlowRuntimeError,
    FlowServices,
    parse_flow,
    run_flow,
)
from ivr_bridge.errors import CallEnding
from tests.unit.flow_fakes import FakeTranscriber, services, unavailable


async def _run(text: str, call: ScriptedCall, svc: FlowServices | None = None) -> ScriptedCall:
    try:
        await run_flow(parse_flow(text), call, svc or services())
    except CallEnding:
        pass
    return call


async def test_call_variables_params_and_declared_env_reach_templates() -> None:
    flow = """
name: t
env: {IVR_GREETING: "Hello"}
variables: {clinic: Riverside}
steps:
  - say: "{{ env.IVR_GREETING }} {{ params.name }} from {{ caller }} to {{ callee }}, {{ clinic }}."
"""
    call = ScriptedCall(parameters={"name": "Ann", "From": "+15550001", "To": "+15550002"})
    await _run(flow, call, services(environ={"IVR_GREETING": "Good morning", "SECRET": "x"}))
    assert call.said == ["Good morning Ann from +15550001 to +15550002, Riverside."]
    call = ScriptedCall(parameters={"name": "Bo"})
    await _run(flow, call, services(environ={}))
    assert call.said == ["Hello Bo from  to , Riverside."]


async def test_undeclared_environment_is_invisible_to_templates() -> None:
    text = "name: t\nsteps:\n  - say: '{{ env.LMNT_API_KEY }}'\n"
    with pytest.raises(FlowError, match=r"env\.LMNT_API_KEY is never visible to templates"):
        parse_flow(text)  # refused on load; and a flow built in code cannot read it either:
    flow = Flow.model_validate({"name": "t", "steps": [{"say": "{{ env.LMNT_API_KEY }}"}]})
    with pytest.raises(FlowRuntimeError, match="has no attribute 'LMNT_API_KEY'"):
        await run_flow(flow, ScriptedCall(), services(environ={"LMNT_API_KEY": "k"}))


async def test_set_branch_and_goto_loop_until_a_condition() -> None:
    flow = """
name: t
variables: {n: 0}
steps:
  - id: top
    set: {n: "{{ n | int + 1 }}"}
  - branch:
      - when: "n | int >= 3"
        goto: done
  - say: "round {{ n }}"
  - goto: top
  - id: done
    hangup: {say: "done after {{ n }}"}
"""
    call = await _run(flow, ScriptedCall())
    assert call.said == ["round 1", "round 2", "done after 3"]
    assert call.ended == ("hangup", None)
    assert call.policies[-1] == BargeInPolicy("none")  # the goodbye is heard in full
    assert call.events_of("branch") == [
        {"kind": "branch", "step": "#2", "when": "n | int >= 3", "goto": "done"}
    ]


async def test_an_endless_loop_is_stopped_by_max_steps() -> None:
    flow = "name: t\nmax_steps: 50\nsteps:\n  - id: a\n    say: again\n    next: a\n"
    call = ScriptedCall()
    with pytest.raises(FlowRuntimeError, match="more than 50 steps ran"):
        await run_flow(parse_flow(flow), call, services())
    assert len(call.said) == 50
    assert call.events_of("flow_error")[0]["step"] == "a"


async def test_falling_off_the_end_just_returns() -> None:
    call = await _run("name: t\nsteps:\n  - say: one\n", ScriptedCall())
    assert call.said == ["one"] and call.ended is None
    assert call.events_of("flow_end")


async def test_transfer_says_the_notice_then_dials() -> None:
    flow = """
name: t
env: {IVR_AGENT: "+15005550100"}
steps:
  - transfer: {to: "{{ env.IVR_AGENT }}", say: "Connecting you."}
  - say: never
"""
    call = await _run(flow, ScriptedCall(), services(environ={}))
    assert call.said == ["Connecting you."]
    assert call.ended == ("dial", "+15005550100")
    assert call.events_of("flow_transfer")[0]["to"] == "+15005550100"


async def test_record_collects_utterances_and_transcribes_them() -> None:
    flow = """
name: t
steps:
  - record: {prompt: "Say when suits you.", into: when, end_silence_ms: 1200}
  - say: "You said {{ when }}."
"""
    transcriber = FakeTranscriber()
    inputs = [SpeechStarted(1.0), utterance("next tuesday|"), utterance("at three"), None]
    call = await _run(flow, ScriptedCall(inputs), services(transcriber=transcriber))
    assert call.said == ["Say when suits you.", "You said next tuesday at three."]
    assert transcriber.heard == [b"next tuesday|at three"]
    [event] = call.events_of("recording")
    assert event["utterances"] == 2 and event["engine"] == "fake-whisper"
    assert event["text"] == "next tuesday at three" and event["confidence"] == 0.8
    assert call.timeouts[0] == 5000 and call.timeouts[-1] == 1200


async def test_record_with_no_speech_or_no_transcriber() -> None:
    flow = "name: t\nsteps:\n  - record: {into: msg}\n  - say: 'got [{{ msg }}]'\n"
    call = await _run(flow, ScriptedCall([None]))
    assert call.said == ["got []"]
    call = await _run(
        flow,
        ScriptedCall([utterance("hi"), None]),
        FlowServices(transcriber=unavailable, environ={}),
    )
    assert call.said == ["got []"]
    assert call.events_of("transcription_unavailable")
    assert call.events_of("recording")[0]["audio_ms"] == 0  # 2 bytes of "audio" is 0 ms


@pytest.fixture
async def backend() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def balance(request: web.Request) -> web.Response:
        seen.append({"query": dict(request.query), "body": await request.text()})
        account = request.query.get("account", "")
        if account == "500":
            return web.Response(status=500, text="boom")
        if account == "666":
            return web.Response(text="not json")
        if account == "999":
            await asyncio.sleep(1)
        return web.json_response({"balance": "12.50", "account": account})

    app = web.Application()
    app.router.add_route("*", "/balance", balance)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/balance", seen
    await runner.cleanup()


HTTP_FLOW = """
name: t
env: {IVR_BALANCE_URL: "http://127.0.0.1:9/none"}
steps:
  - http:
      url: "{{ env.IVR_BALANCE_URL }}"
      method: POST
      query: {account: "{{ params.account }}"}
      json: {caller: "{{ caller }}", fixed: 3}
      timeout_ms: 500
      into: result
      on_failure: failed
  - hangup: {say: "Balance {{ result.balance }}."}
  - id: failed
    hangup: {say: "Unavailable ({{ last.error }})."}
"""


async def test_http_result_goes_into_variables(backend: tuple[str, list[Any]]) -> None:
    url, seen = backend
    call = ScriptedCall(parameters={"account": "1234", "From": "+1555"})
    await _run(HTTP_FLOW, call, services(environ={"IVR_BALANCE_URL": url}))
    assert call.said == ["Balance 12.50."]
    assert seen == [{"query": {"account": "1234"}, "body": '{"caller": "+1555", "fixed": 3}'}]
    [event] = call.events_of("http")
    assert event["ok"] is True and event["status"] == 200 and event["url"] == url


async def test_a_sensitive_amount_is_masked_in_the_words_it_is_said_in(
    backend: tuple[str, list[Any]],
) -> None:
    url, _ = backend
    flow = HTTP_FLOW.replace("on_failure: failed", "on_failure: failed\n      sensitive: true")
    flow = flow.replace("{{ result.balance }}", "{{ result.balance | currency }}")
    call = ScriptedCall(parameters={"account": "1234"})
    await _run(flow, call, services(environ={"IVR_BALANCE_URL": url}))
    assert call.said == ["Balance twelve dollars and fifty cents."]
    assert "12.50" in call.sensitive
    assert "twelve dollars and fifty cents" in call.sensitive  # what the log line must hide


@pytest.mark.parametrize(
    ("account", "error"),
    [("500", "HTTP 500"), ("666", "response is not JSON"), ("999", "no answer within 500 ms")],
)
async def test_http_failures_take_the_failure_branch(
    backend: tuple[str, list[Any]], account: str, error: str
) -> None:
    url, _ = backend
    call = ScriptedCall(parameters={"account": account})
    await _run(HTTP_FLOW, call, services(environ={"IVR_BALANCE_URL": url}))
    assert call.said == [f"Unavailable ({error})."]
    assert call.events_of("http")[0]["ok"] is False


async def test_http_connection_refused_takes_the_failure_branch() -> None:
    call = ScriptedCall(parameters={"account": "1"})
    await _run(HTTP_FLOW, call, services(environ={}))
    assert call.said[0].startswith("Unavailable (ClientConnectorError")


async def test_gather_result_feeds_a_branch_and_typeahead_digits_count() -> None:
    flow = """
name: t
steps:
  - id: pin
    gather: {prompt: "PIN?", digits: {min: 4, max: 4}}
  - branch:
      - when: "pin == '4321'"
        goto: ok
      - goto: bad
  - id: ok
    hangup: {say: "Welcome."}
  - id: bad
    hangup: {say: "Wrong PIN."}
"""
    assert (await _run(flow, ScriptedCall(digits("4321")))).said == ["PIN?", "Welcome."]
    assert (await _run(flow, ScriptedCall(digits("1111")))).said == ["PIN?", "Wrong PIN."]


async def test_arithmetic_error_in_a_template_names_the_step() -> None:
    flow = (
        "name: t\nvariables: {a: 1, b: 0}\nsteps:\n  - id: ratio\n    say: 'Ratio {{ a / b }}.'\n"
    )
    call = ScriptedCall()
    with pytest.raises(FlowRuntimeError, match=r"step ratio: template .*division by zero"):
        await run_flow(parse_flow(flow), call, services())
    assert call.events_of("flow_error")[0]["step"] == "ratio"


async def test_empty_transfer_number_is_a_runtime_error_naming_the_step() -> None:
    flow = (
        'name: t\nenv: {IVR_DESK: ""}\nsteps:\n'
        "  - id: desk\n    transfer: {to: '{{ env.IVR_DESK }}'}\n"
    )
    call = ScriptedCall()
    with pytest.raises(FlowRuntimeError, match=r"step desk: transfer number .* rendered empty"):
        await run_flow(parse_flow(flow), call, services(environ={}))
    assert call.ended is None
