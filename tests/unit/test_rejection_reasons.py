"""A rejected answer says why, in words, in the gather's event and a debug log line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from structlog.testing import capture_logs

from ivr_bridge.call.testing import ScriptedCall, digits, utterance
from ivr_bridge.dialog.flow import parse_flow, run_flow
from ivr_bridge.dialog.services import FlowServices, GrammarChoice, Recognition
from ivr_bridge.errors import CallEnding
from ivr_bridge.recognition.hybrid import HybridGrammarRecognizer
from tests.unit.flow_fakes import FakeGrammar, FakeTranscriber, services

MENU = """
name: reasons
steps:
  - id: menu
    gather:
      prompt: Say billing or balance.
      options:
        billing: {digits: "1", phrases: [billing]}
        balance: {digits: "2", phrases: [balance]}
      min_confidence: 0.6
      max_attempts: 1
  - hangup: true
"""

ENTRY = """
name: entry
steps:
  - id: pin
    gather:
      prompt: Your PIN, then pound.
      digits: {min: 4, max: 8}
      sensitive: SENSITIVE
      max_attempts: 1
  - hangup: true
"""


async def _reasons(
    flow: str, call: ScriptedCall, flow_services: FlowServices | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """The gather events' reasons, and the debug lines about rejected answers."""
    with capture_logs() as logs:
        try:
            await run_flow(parse_flow(flow), call, flow_services or services())
        except CallEnding:
            pass
    lines = [e for e in logs if str(e["event"]).startswith("answer rejected")]
    return [e["reason"] for e in call.events_of("gather")], lines


async def test_words_that_name_no_option() -> None:
    reasons, lines = await _reasons(MENU, ScriptedCall([utterance("pizza please")]))
    expected = 'heard "pizza please" (confidence 0.90): no menu option\'s words in it'
    assert reasons == [expected]
    assert [line["event"] for line in lines] == [f"answer rejected: {expected}"]
    assert lines[0]["log_level"] == "debug" and lines[0]["step"] == "menu"


async def test_a_match_below_min_confidence() -> None:
    call = ScriptedCall([utterance("billing")])
    reasons, _ = await _reasons(MENU, call, services(FakeGrammar(confidence=0.41)))
    assert reasons == [
        "heard \"billing\" (confidence 0.41): matched 'billing' but confidence 0.41 is below "
        "this gather's min_confidence 0.60"
    ]


class _Undecided:
    """A grammar decode that chose nothing, as pocketsphinx reports an unsure one."""

    async def recognize(
        self, pcm16: bytes, sample_rate: int, choices: Sequence[GrammarChoice]
    ) -> Recognition:
        return Recognition("uh balance", None, 0.1, "pocketsphinx", 40.0, "no menu option's words")


async def test_whisper_naming_two_options() -> None:
    hybrid = HybridGrammarRecognizer(_Undecided(), FakeTranscriber)
    flow_services = FlowServices(grammar=lambda: hybrid, environ={})
    call = ScriptedCall([utterance("billing|or|balance")])
    reasons, _ = await _reasons(MENU, call, flow_services)
    assert reasons == [
        'heard "uh balance" (confidence 0.10): whisper heard "billing or balance": '
        "named two options: billing, balance"
    ]


async def test_keys_that_choose_nothing_and_the_finish_key_alone() -> None:
    reasons, _ = await _reasons(MENU, ScriptedCall(digits("7")))
    assert reasons == ["1 key pressed, matching no option's keys (1, 2)"]
    reasons, _ = await _reasons(MENU, ScriptedCall(digits("#")))
    assert reasons == ["only the finish key '#' was pressed"]


async def test_too_few_digits_never_shows_the_digits() -> None:
    for sensitive in ("true", "false"):
        flow = ENTRY.replace("SENSITIVE", sensitive)
        reasons, lines = await _reasons(flow, ScriptedCall(digits("12#")))
        assert reasons == ["2 keys pressed, shorter than min_digits 4"]
        assert not any("12" in str(value) for line in lines for value in line.values())


async def test_a_sensitive_menu_does_not_repeat_what_was_said() -> None:
    flow = MENU.replace("max_attempts: 1", "max_attempts: 1\n      sensitive: true")
    reasons, lines = await _reasons(flow, ScriptedCall([utterance("my secret words")]))
    assert reasons == ["heard speech (confidence 0.90): no menu option's words in it"]
    assert not any("secret" in str(line) for line in lines)


async def test_an_accepted_answer_has_no_reason_and_no_rejection_line() -> None:
    reasons, lines = await _reasons(MENU, ScriptedCall([utterance("balance")]))
    assert reasons == [None] and lines == []


def test_the_decoder_says_whether_it_heard_words_at_all() -> None:
    from ivr_bridge.recognition.sphinx import rejection_without_match

    assert rejection_without_match("<sil> [NOISE]", digits=False) == "no words decoded"
    assert rejection_without_match("uh pizza", digits=False) == (
        "no menu option's words in it (fillers aside)"
    )
    assert rejection_without_match("hello", digits=True) == "not a number read digit by digit"
