"""Run a suite: every scenario × repeat as one simulated call, at most ``parallel`` at a time.

A scenario passes when the share of its repeats that passed reaches its ``pass_rate``; one repeat
whose timing could not be judged (the machine fell behind, see
:mod:`ivr_bridge.sim.scenario.result`) counts neither way, and a scenario left short of its pass
rate only by such repeats is *inconclusive*, never failed. A call that could not be placed at all
(refused connection, bad audio file) is a failed repeat with the reason, and the rest of the suite
runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ivr_bridge.call.transcripts import BotLine
from ivr_bridge.sim import CallResult, run_call
from ivr_bridge.sim.scenario.hearing import BotTranscriber
from ivr_bridge.sim.scenario.matching import best_match
from ivr_bridge.sim.scenario.result import ExpectationResult
from ivr_bridge.sim.scenario.script import Expectations
from ivr_bridge.tester.suite import LoadedSuite, PlannedScenario, slug
from ivr_bridge.tester.targets import Targets

Status = Literal["pass", "fail", "inconclusive"]
OVERLOAD_REAL_MS = 500.0
"""A call whose caller fell this far behind its clock (real ms) proves nothing when it fails:
the machine was overloaded, and an agent sharing it (our bridge on a ``flow`` target) stalls
with it. Such a failure is inconclusive; a pass still counts."""

EARS_OVERLOAD_REAL_MS = 2000.0
"""A branch the caller's speech-to-text kept waiting longer than this (real) proves nothing
when the call fails: the agent went on without an answer a person would have given (measured:
~1.3 s real to decide on a 9 s greeting and menu, alone; 6 s with ten calls sharing whisper)."""


@dataclass(slots=True)
class RunResult:
    """One call of one scenario."""

    scenario: str
    index: int
    """1-based repeat number."""
    wall_s: float
    result: CallResult | None
    error: str | None = None
    """Why the call could not be placed (then ``result`` is None)."""
    out_dir: Path | None = None
    seed: int = 0
    """What drew this call's noise, lost packets and jitter."""
    checks: list[ExpectationResult] = field(default_factory=list)
    """The tester's own checks beyond the call's (``answer`` targets: how many calls the
    number got, a voicemail message after the tone, the outcome the agent recorded)."""
    note: str = ""
    """What the run was, for a run without a call (``busy line: 1 call, not answered``)."""

    def all_checks(self) -> list[ExpectationResult]:
        return [*(self.result.expectations if self.result else []), *self.checks]

    @property
    def overloaded(self) -> bool:
        result = self.result
        if result is None:
            return False
        if result.lag_ms / result.speed > OVERLOAD_REAL_MS:
            return True
        return self.ears_lag_ms / result.speed > EARS_OVERLOAD_REAL_MS

    @property
    def ears_lag_ms(self) -> float:
        """The longest the caller's speech-to-text kept a branch waiting (call ms): whisper
        shared by many calls on a busy machine, while the agent went on without an answer."""
        if self.result is None:
            return 0.0
        waits = [
            float(e.get("decided_in_ms", 0.0)) for e in self.result.recorder.events_of("branch")
        ]
        return max(waits, default=0.0)

    @property
    def status(self) -> Status:
        if self.error is not None:
            return "fail"
        if self.result is None:
            return "pass" if self.checks and all(c.passed for c in self.checks) else "fail"
        statuses = {self.result.status, *(c.status for c in self.checks)}
        if "fail" in statuses:
            return "inconclusive" if self.overloaded else "fail"
        return "inconclusive" if "inconclusive" in statuses else "pass"

    def reason(self) -> str:
        """The first failing (or unjudged) check, for one-line displays."""
        if self.error is not None:
            return self.error
        if self.result is not None and self.status == "inconclusive" and self.overloaded:
            speed = self.result.speed
            if self.ears_lag_ms / speed > EARS_OVERLOAD_REAL_MS:
                behind = self.ears_lag_ms / speed
                return (
                    f"the caller's speech-to-text kept a branch waiting {behind:.0f} ms (real): "
                    "machine overloaded (lower --parallel)"
                )
            behind = self.result.lag_ms / speed
            return f"the caller fell {behind:.0f} ms (real) behind its clock: machine overloaded"
        for check in self.all_checks():
            if check.status != "pass":
                return f"{check.name}: {check.detail}"
        return ""


@dataclass(slots=True)
class ScenarioResult:
    scenario: PlannedScenario
    runs: list[RunResult] = field(default_factory=list)

    @property
    def passed_runs(self) -> int:
        return sum(1 for r in self.runs if r.status == "pass")

    @property
    def judged_runs(self) -> int:
        return sum(1 for r in self.runs if r.status != "inconclusive")

    @property
    def pass_rate(self) -> float:
        return self.passed_runs / len(self.runs) if self.runs else 0.0

    @property
    def status(self) -> Status:
        needed = self.scenario.pass_rate * len(self.runs)
        if self.passed_runs >= needed - 1e-9:
            return "pass"
        unjudged = len(self.runs) - self.judged_runs
        return "inconclusive" if self.passed_runs + unjudged >= needed - 1e-9 else "fail"


@dataclass(slots=True)
class SuiteResult:
    suite: LoadedSuite
    scenarios: list[ScenarioResult]
    parallel: int
    started_at: float
    """Unix time the first call was placed."""
    wall_s: float

    @property
    def status(self) -> Status:
        statuses = {s.status for s in self.scenarios}
        if "fail" in statuses:
            return "fail"
        return "inconclusive" if "inconclusive" in statuses else "pass"

    def count(self, status: Status) -> int:
        return sum(1 for s in self.scenarios if s.status == status)


Progress = Callable[[RunResult, int, int], None]
"""Called as each call ends: (run, calls finished, calls in all)."""


def needs_words(loaded: LoadedSuite) -> bool:
    """Whether any check needs speech-to-text of the bot (what it said, or an apology)."""
    return any(s.script.needs_words() for s in loaded.scenarios)


async def run_suite(
    loaded: LoadedSuite,
    targets: Targets,
    *,
    out_dir: Path,
    parallel: int = 4,
    repeat: int | None = None,
    transcriber: BotTranscriber | None = None,
    progress: Progress | None = None,
) -> SuiteResult:
    """Place every call the suite plans (``repeat`` overrides each scenario's count)."""
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    results = [ScenarioResult(s) for s in loaded.scenarios]
    jobs = [
        (result, index)
        for result in results
        for index in range(1, (repeat or result.scenario.repeat) + 1)
    ]
    gate = asyncio.Semaphore(parallel)
    finished = 0
    started = time.time()
    clock = time.monotonic()

    async def one(result: ScenarioResult, index: int) -> None:
        nonlocal finished
        async with gate:
            run = await _place(result.scenario, index, targets, out_dir, transcriber)
        result.runs.append(run)
        finished += 1
        if progress is not None:
            progress(run, finished, len(jobs))

    async with asyncio.TaskGroup() as group:
        for result, index in jobs:
            group.create_task(one(result, index))
    for result in results:
        result.runs.sort(key=lambda r: r.index)
    return SuiteResult(loaded, results, parallel, started, time.monotonic() - clock)


async def _place(
    scenario: PlannedScenario,
    index: int,
    targets: Targets,
    out_dir: Path,
    transcriber: BotTranscriber | None,
) -> RunResult:
    where = out_dir / slug(scenario.name) / str(index)
    began = time.monotonic()
    seed = scenario.seed_for(index)
    dial = scenario.target.dial
    if dial is not None:
        assert targets.dialler is not None
        try:
            result = await targets.dialler.call(
                scenario, dial, transcriber=transcriber, out_dir=where
            )
        except Exception as exc:  # one call that could not be placed must not stop the suite
            return RunResult(scenario.name, index, time.monotonic() - began, None, _why(exc))
        return RunResult(
            scenario.name, index, time.monotonic() - began, result, out_dir=where, seed=seed
        )
    target = targets.resolve(scenario.target)
    try:
        result = await run_call(
            voice_url=target.voice_url,
            ws_url=target.ws_url,
            script=scenario.script,
            auth_token=target.auth_token,
            speed=scenario.speed,
            out_dir=where,
            transcriber=transcriber,
            seed=seed,
        )
    except Exception as exc:  # one call that could not be placed must not stop the suite
        wall = time.monotonic() - began
        return RunResult(scenario.name, index, wall, None, _why(exc), seed=seed)
    wall = time.monotonic() - began
    checks = []
    if scenario.target.flow is not None and targets.bridge_lines is not None:
        checks = bridge_said(scenario.script.expect, targets.bridge_lines(result.call_sid))
    return RunResult(scenario.name, index, wall, result, out_dir=where, seed=seed, checks=checks)


def bridge_said(expect: Expectations, lines: list[BotLine]) -> list[ExpectationResult]:
    """``bot_said`` against our bridge's own account of the call: what it spoke and how much
    of each utterance was heard (cut at a barge-in). Exact where speech-to-text is loose, so
    the two agreeing means the words were said *and* came through; disagreeing, one of them is
    wrong, and the report shows which."""
    heard = [line.heard_text for line in lines if line.heard_text]
    out = []
    for phrase in expect.bot_said:
        name = f"bridge said: {phrase}"
        if not heard:
            out.append(ExpectationResult(name, "fail", "the bridge reports nothing heard"))
            continue
        match = max((best_match(phrase, text) for text in heard), key=lambda m: m.score)
        ok = match.passes(expect.bot_said_similarity)
        detail = f"its transcript: {match.heard!r} (score {match.score:.2f})"
        out.append(ExpectationResult(name, "pass" if ok else "fail", detail))
    return out


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"the call could not be placed: {text}"
