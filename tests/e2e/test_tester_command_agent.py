"""An outbound agent that is not ours, tested from the callee's side: ``answer: {agent:
command}`` runs it against the tester's Twilio REST stand-in, and each scenario answers its
number. The agent here plays a greeting to whoever picks up, with no machine detection, so the
tester catches it failing an answering machine: its greeting meets the machine's, and no message
is left after the tone."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ivr_bridge.tester.answering import run_answer_suite
from ivr_bridge.tester.suite import parse_suite
from tests.e2e.conftest import AUTH_TOKEN

pytest.importorskip("faster_whisper")
AGENT = Path(__file__).with_name("outbound_agent.py")

SUITE = f"""\
name: someone else's dialler
defaults:
  target: {{answer: {{agent: command, command: "{sys.executable} {AGENT}", timeout_s: 90}}}}
  speed: 4
scenarios:
  - name: a person hears the greeting
    answer: {{as: human}}
    steps: [wait_for_bot, hangup]   # (a "Hello?" would barge in on the greeting: it stops)
    expect:
      bot_said: ["thanks for calling"]
  - name: a busy line
    answer: {{as: busy, calls: 1}}
  - name: an answering machine
    answer:
      as: voicemail
      greeting: "Hi, this is Lee. Leave a message after the tone."
"""


async def test_a_foreign_dialler_is_judged_by_the_calls_its_callees_received(
    make_bridge: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ivr_bridge.sim.scenario.hearing import load_bot_transcriber

    bridge = await make_bridge(voice="heart")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)  # the agent's app checks signatures
    monkeypatch.setenv("OUTBOUND_APP_URL", f"{bridge.base_url}/twilio/voice?flow=welcome.yaml")
    loaded = parse_suite(SUITE, tmp_path / "dialler.yaml")
    result = await run_answer_suite(
        loaded, out_dir=tmp_path / "out", transcriber=load_bot_transcriber()
    )
    person, busy, machine = result.scenarios
    [run] = person.runs
    if run.status == "inconclusive":
        pytest.skip(f"inconclusive: {run.reason()}")
    assert run.status == "pass", run.reason()
    assert busy.status == "pass" and "1 call(s)" in busy.runs[0].checks[0].detail
    [machine_run] = machine.runs
    assert machine_run.error is None
    tone = next(c for c in machine_run.checks if c.name == "message_after_tone")
    assert tone.status == "fail" and "tone" in tone.detail, tone.detail


async def test_an_agent_command_that_fails_fails_every_callee_with_its_output(
    tmp_path: Path,
) -> None:
    suite = """\
name: broken dialler
defaults:
  target: {answer: {agent: command, command: "echo no credentials for the dialler && exit 3"}}
scenarios:
  - name: nobody is called
    answer: {as: busy}
"""
    result = await run_answer_suite(parse_suite(suite, tmp_path / "b.yaml"), out_dir=tmp_path)
    [run] = result.scenarios[0].runs
    assert run.status == "fail"
    assert run.reason() == "the agent command exited 3: no credentials for the dialler"
