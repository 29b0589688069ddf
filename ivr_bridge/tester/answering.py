"""``answer`` targets: the tester is the phone network an outbound agent dials.

Reminders are tested from the callee's side: the agent places real ``calls.create`` requests
(twilio-python's async client) at the tester's Twilio REST stand-in, which rings each scenario's
number and answers as the scenario says: a person running its caller script, an answering
machine (greeting, 1 kHz tone, then recording), a busy line, or one that rings out. Every call
the agent makes is kept, so a suite checks what only this side can see: how many times a number
was called, that a voicemail message started after the tone (its first words are not lost),
and, for our own reminder campaigns, the outcome the campaign recorded.

The agent runs once per repeat ("round"): a campaign is one dialling run, not a call the tester
places, so rounds are sequential and ``--parallel`` bounds the campaign's concurrent calls.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ivr_bridge.campaign.contacts import Contact
from ivr_bridge.campaign.dialer import TwilioDialer
from ivr_bridge.campaign.dispatcher import Dispatcher
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.config import load_settings
from ivr_bridge.server.app import start_bridge
from ivr_bridge.sim.scenario.hearing import BotTranscriber
from ivr_bridge.sim.scenario.result import ExpectationResult
from ivr_bridge.sim.twilio_rest import (
    BEEP_MS,
    DEFAULT_GREETING,
    Persona,
    StandInCall,
    TwilioRestStandIn,
)
from ivr_bridge.tester.agent_command import run_command_agent
from ivr_bridge.tester.runner import Progress, RunResult, ScenarioResult, SuiteResult
from ivr_bridge.tester.suite import AnswerTarget, LoadedSuite, PlannedScenario

CAMPAIGN = "suite"
FINAL_STATUSES = ("completed", "busy", "no-answer", "failed")
CALLER_ID = "+15005550006"
RING_TIMEOUT_S = 15
"""How long the agent lets a number ring (the campaign's ``ring_timeout_s``)."""


async def run_answer_suite(
    loaded: LoadedSuite,
    *,
    out_dir: Path,
    parallel: int = 4,
    repeat: int | None = None,
    transcriber: BotTranscriber | None = None,
    progress: Progress | None = None,
) -> SuiteResult:
    """Let the agent call every scenario's number, ``repeat`` rounds (default: the most any
    scenario asks for); each scenario gets one run per round it takes part in."""
    target = loaded.answering()
    if target is None:
        raise ValueError("not an answer suite")
    results = [ScenarioResult(s) for s in loaded.scenarios]
    rounds = repeat or max(s.repeat for s in loaded.scenarios)
    total = sum(min(rounds, repeat or s.repeat) for s in loaded.scenarios)
    started, clock, finished = time.time(), time.monotonic(), 0
    for index in range(1, rounds + 1):
        taking_part = [r for r in results if index <= (repeat or r.scenario.repeat)]
        runs = await _round(
            [r.scenario for r in taking_part],
            target,
            index,
            out_dir,
            parallel,
            transcriber,
            loaded,
        )
        for result, run in zip(taking_part, runs, strict=True):
            result.runs.append(run)
            finished += 1
            if progress is not None:
                progress(run, finished, total)
    return SuiteResult(loaded, results, parallel, started, time.monotonic() - clock)


async def _round(
    scenarios: list[PlannedScenario],
    target: AnswerTarget,
    index: int,
    out_dir: Path,
    parallel: int,
    transcriber: BotTranscriber | None,
    loaded: LoadedSuite,
) -> list[RunResult]:
    """One dialling run of the agent over every scenario's number."""
    account, token = _credentials(target)
    personas = {s.number: _persona(s, index) for s in scenarios}
    began = time.monotonic()
    standin = TwilioRestStandIn(
        account_sid=account,
        auth_token=token,
        personas=lambda phone: personas.get(phone, Persona("busy")),
        speed=scenarios[0].speed,
        transcriber=transcriber,
        out_dir=out_dir / f"round-{index}",
    )
    await standin.start()
    try:
        if target.agent == "command":
            late, error = await run_command_agent(
                standin, scenarios, target, cwd=loaded.path.parent
            )
            outcomes: dict[str, str | None] = {}
        else:
            late, outcomes = await _reminder_round(standin, scenarios, target, parallel, loaded)
            error = None
    finally:
        await standin.close()
    wall = time.monotonic() - began
    runs = []
    for scenario in scenarios:
        calls = sorted(
            (c for c in standin.calls.values() if c.to == scenario.number),
            key=lambda c: c.created_mono,
        )
        run = _judge(scenario, index, calls, outcomes.get(scenario.number), wall)
        if error is not None:
            run.error = error
        elif late and any(c.status not in FINAL_STATUSES for c in calls):
            run.error = f"the agent's calls had not all ended after {target.timeout_s:g} s"
        runs.append(run)
    return runs


def _credentials(target: AnswerTarget) -> tuple[str, str]:
    """The stand-in's account: made up for our own agent; for a command, the environment's
    (so an agent configured with them signs and checks requests as with Twilio), else made up
    and handed to the command."""
    made_up = ("AC" + secrets.token_hex(16), secrets.token_hex(16))
    if target.agent != "command":
        return made_up
    return (
        os.environ.get("TWILIO_ACCOUNT_SID") or made_up[0],
        os.environ.get("TWILIO_AUTH_TOKEN") or made_up[1],
    )


async def _reminder_round(
    standin: TwilioRestStandIn,
    scenarios: list[PlannedScenario],
    target: AnswerTarget,
    parallel: int,
    loaded: LoadedSuite,
) -> tuple[bool, dict[str, str | None]]:
    """Our bridge and a reminder campaign whose contacts are the scenarios, dialling the
    stand-in; (whether it ran out of time, each number's first outcome)."""
    account, token = standin.account_sid, standin.auth_token
    with tempfile.TemporaryDirectory(prefix="ivr-answer-") as folder:
        now = time.time()
        store = await CampaignStore.open(f"sqlite:///{Path(folder) / 'campaigns.db'}", now=now)
        bridge = dialer = None
        try:
            settings = load_settings(
                host="127.0.0.1",
                port=0,
                twilio_auth_token=token,
                lmnt_api_key=None,
                lmnt_base_url=None,
                public_url=None,
                voice=loaded.suite.bridge.voice,
                flows_dir=loaded.flows_dir,  # the reminder's words: reminders/<script>.yaml
            )
            bridge = await start_bridge(settings, campaigns=store)
            dialer = TwilioDialer(
                account, token, public_url=bridge.base_url, api_base_url=standin.base_url
            )
            await _campaign(store, scenarios, target, now, parallel)
            dispatcher = Dispatcher(
                store, dialer, worker="tester", account=account, cps=target.cps, poll_s=0.05
            )
            late = not await _dial_all(dispatcher, store, standin, target.timeout_s)
            rows = await store.attempt_rows(CAMPAIGN)
        finally:
            if dialer is not None:
                await dialer.close()
            if bridge is not None:
                await bridge.stop()
            await store.close()
    return late, {r["phone"]: r["outcome"] for r in rows if r["number"] == 1}


def _persona(scenario: PlannedScenario, index: int) -> Persona:
    answer = scenario.answer
    assert answer is not None
    seed = scenario.seed_for(index)
    if answer.as_ == "human":
        return Persona("human", ring_ms=answer.ring_ms, script=scenario.script, seed=seed)
    if answer.as_ == "voicemail":
        return Persona(
            "voicemail",
            ring_ms=answer.ring_ms,
            script=scenario.script,  # the machine's voice and the checks on the message
            greeting=answer.greeting or DEFAULT_GREETING,
            seed=seed,
        )
    return Persona(answer.as_, ring_ms=answer.ring_ms, seed=seed)


async def _campaign(
    store: CampaignStore,
    scenarios: list[PlannedScenario],
    target: AnswerTarget,
    now: float,
    parallel: int,
) -> None:
    plan = CampaignPlan.around_the_clock(
        now,
        business=target.business,
        callback_number=target.callback_number,
        ring_timeout_s=RING_TIMEOUT_S,
        max_concurrent=parallel,
    )
    await store.create_campaign(
        CAMPAIGN, name="ivr-bridge test", caller_id=CALLER_ID, app="reminder", plan=plan, now=now
    )
    appointment = datetime.fromtimestamp(now, UTC) + timedelta(hours=target.appointment_in_h)
    contacts = []
    for line, scenario in enumerate(scenarios, start=2):
        assert scenario.answer is not None
        contacts.append(
            Contact(line, scenario.number, scenario.answer.name, appointment, target.timezone)
        )
    await store.add_contacts(CAMPAIGN, contacts, now=now)
    await store.set_status(CAMPAIGN, "running")


async def _dial_all(
    dispatcher: Dispatcher, store: CampaignStore, standin: TwilioRestStandIn, timeout_s: float
) -> bool:
    """Run the agent until every first call was placed and has ended (False: out of time).

    Retries the campaign schedules for later (minutes on) are not waited for."""
    task = asyncio.create_task(dispatcher.run())

    async def waiting() -> bool:
        rows = await store.attempt_rows(CAMPAIGN)
        return any(r["number"] == 1 and r["state"] in ("scheduled", "dialing") for r in rows)

    deadline = time.monotonic() + timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            while await waiting():  # noqa: ASYNC110 - the campaign's database is the state
                await asyncio.sleep(0.05)
    except TimeoutError:
        return False
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    try:
        await standin.settled(timeout_s=max(1.0, deadline - time.monotonic()))
    except TimeoutError:
        return False
    return True


def _judge(
    scenario: PlannedScenario,
    index: int,
    calls: list[StandInCall],
    outcome: str | None,
    wall_s: float,
) -> RunResult:
    answer = scenario.answer
    assert answer is not None
    answered = next((c for c in calls if c.result is not None), None)
    checks: list[ExpectationResult] = []
    count = len(calls)
    if answer.calls is not None:
        ok = count == answer.calls
        checks.append(
            _check("calls", ok, f"{count} call(s) to {scenario.number}, expected {answer.calls}")
        )
    elif count == 0:
        checks.append(_check("called", False, f"the agent never called {scenario.number}"))
    else:
        checks.append(_check("called", True, f"{count} call(s) to {scenario.number}"))
    if answer.as_ == "voicemail" and answered is not None:
        checks.append(_message_after_tone(answered))
    if answer.outcome is not None:
        ok = outcome == answer.outcome
        checks.append(_check("outcome", ok, f"the campaign recorded {outcome}"))
    note = _describe(answer.as_, calls)
    result = answered.result if answered is not None else None
    out = result.out_dir if result is not None else None
    return RunResult(
        scenario.name,
        index,
        wall_s,
        result,
        out_dir=out,
        seed=scenario.seed_for(index),
        checks=checks,
        note=note,
    )


def _message_after_tone(call: StandInCall) -> ExpectationResult:
    """The message must start after the tone, with nothing said over it: a machine records
    only from the tone, so words said before or across it never reach the callee. (The
    reminder's short opening line, said at the answer over the greeting, is by design.)"""
    assert call.result is not None and call.beep_end_ms is not None
    tone_end = call.beep_end_ms
    tone_start = tone_end - BEEP_MS
    utterances = call.result.recorder.utterances
    over = [u for u in utterances if u.start_ms < tone_end and u.end_ms > tone_start]
    if over:
        overlap = min(over[0].end_ms, tone_end) - max(over[0].start_ms, tone_start)
        if all(u is over[0] for u in over) and overlap <= call.result.slack_ms:
            return ExpectationResult(
                "message_after_tone",
                "inconclusive",
                f"the agent's speech touched the tone by {overlap:.0f} ms, within the "
                f"{call.result.slack_ms:.0f} ms the caller's clock cannot vouch for at speed "
                f"{call.result.speed:g} (run at speed 1 to judge it)",
                over[0].start_ms,
            )
        return _check(
            "message_after_tone",
            False,
            f"the agent spoke over the tone ({over[0].start_ms / 1000:.2f}-"
            f"{over[0].end_ms / 1000:.2f} s, tone ends {tone_end / 1000:.2f} s): the start of "
            "its message is not recorded",
            over[0].start_ms,
        )
    after = [u for u in utterances if u.start_ms >= tone_end]
    if not after:
        return _check("message_after_tone", False, "the agent left no message after the tone")
    gap = after[0].start_ms - tone_end
    return _check(
        "message_after_tone",
        True,
        f"the message started {gap:.0f} ms after the tone",
        after[0].start_ms,
    )


def _describe(kind: str, calls: list[StandInCall]) -> str:
    statuses = ", ".join(c.status for c in calls) or "no call"
    return f"answered as {kind.replace('_', ' ')}: {len(calls)} call(s) ({statuses})"


def _check(name: str, ok: bool, detail: str, at_ms: float | None = None) -> ExpectationResult:
    return ExpectationResult(name, "pass" if ok else "fail", detail, at_ms)
