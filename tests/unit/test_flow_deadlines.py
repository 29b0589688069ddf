"""No-input deadlines: ignored inputs do not restart them, and a cough does not stall the call."""

from __future__ import annotations

from ivr_bridge.call.inputs import SpeechAbandoned, SpeechStarted
from ivr_bridge.call.testing import ScriptedCall, utterance
from ivr_bridge.dialog.flow import parse_flow, run_flow
from ivr_bridge.errors import CallEnding
from tests.unit.flow_fakes import FakeTranscriber, services

DIGITS_ONLY = """
name: acct
steps:
  - id: acct
    gather: {prompt: "Enter your account number.", digits: {max: 4}, timeout_ms: 5000,
             max_attempts: 1, on_failure: failed}
  - id: failed
    hangup: {say: "Sorry."}
"""

SPOKEN_MENU = """
name: menu
steps:
  - id: menu
    gather: {prompt: "Say billing.", options: {billing: {phrases: [billing]}}, timeout_ms: 4000,
             max_attempts: 1, on_failure: failed}
  - id: failed
    hangup: {say: "Sorry."}
"""

RECORD = """
name: msg
steps:
  - record: {prompt: "Leave a message.", into: msg, timeout_ms: 5000, end_silence_ms: 1500}
  - say: "got [{{ msg }}]"
"""


async def _run(text: str, call: ScriptedCall) -> ScriptedCall:
    try:
        await run_flow(parse_flow(text), call, services(transcriber=FakeTranscriber()))
    except CallEnding:
        pass
    return call


async def test_speech_in_a_digits_only_gather_does_not_restart_the_no_input_timer() -> None:
    call = ScriptedCall([SpeechStarted(1000.0), SpeechStarted(2500.0), SpeechStarted(4000.0), None])
    await _run(DIGITS_ONLY, call)
    assert call.timeouts == [5000, 4000, 2500, 1000]  # all ending at the original 5 s
    assert call.said == ["Enter your account number.", "Sorry."]


async def test_a_cough_in_a_spoken_menu_goes_back_to_the_no_input_deadline() -> None:
    call = ScriptedCall([SpeechStarted(1000.0), SpeechAbandoned(1300.0), None])
    await _run(SPOKEN_MENU, call)
    # not max_speech_ms (15 s) of silence after the cough: the rest of the 4 s no-input wait
    assert call.timeouts == [4000, 15000, 2700]
    assert call.events_of("gather")[0]["outcome"] == "no_input"


async def test_a_cough_in_a_record_step_goes_back_to_the_no_input_deadline() -> None:
    call = ScriptedCall([SpeechStarted(1000.0), SpeechAbandoned(1300.0), None])
    await _run(RECORD, call)
    assert call.timeouts[1:] == [29_000, 3700]  # max_ms while talking, then the 5 s deadline
    assert call.said[-1] == "got []"


async def test_a_cough_after_a_message_goes_back_to_the_end_of_silence_deadline() -> None:
    call = ScriptedCall(
        [utterance("hello", ms=2000), SpeechStarted(2500.0), SpeechAbandoned(2700.0)]
    )
    await _run(RECORD, call)
    assert call.timeouts[-1] == 800  # 2000 ms + 1500 ms end silence, minus the 2700 ms now
    assert call.said[-1] == "got [hello]"
