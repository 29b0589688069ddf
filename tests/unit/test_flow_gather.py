"""Gather: digits and spoken choices, escalating reprompts, failure branch."""

from __future__ import annotations

import pytest

from ivr_bridge.call.inputs import SpeechStarted
from ivr_bridge.call.testing import ScriptedCall, digits, utterance
from ivr_bridge.dialog.flow import FlowRuntimeError, parse_flow, run_flow
from ivr_bridge.errors import CallEnding
from tests.unit.flow_fakes import FakeGrammar, services, unavailable

MENU = """
name: menu
steps:
  - id: menu
    gather:
      prompt: Press 1 or say billing. Press 2 or say support.
      into: choice
      options:
        billing: {digits: "1", phrases: [billing, bills, payments], goto: billing}
        support: {digits: "2", phrases: [support, help], goto: support}
      timeout_ms: 4000
      no_input: ["No input one.", "No input two."]
      no_match: ["No match one.", "No match two."]
      max_attempts: 4
      on_failure: failed
  - id: billing
    hangup: {say: "Billing, via {{ last.mode }}."}
  - id: support
    hangup: {say: "Support."}
  - id: failed
    hangup: {say: "Failed with {{ choice }}."}
"""


async def _run(text: str, call: ScriptedCall, **kw: object) -> ScriptedCall:
    try:
        await run_flow(parse_flow(text), call, services(**kw))  # type: ignore[arg-type]
    except CallEnding:
        pass
    return call


async def test_digit_chooses_the_option_and_its_goto() -> None:
    call = await _run(MENU, ScriptedCall(digits("2")))
    assert call.said == ["Press 1 or say billing. Press 2 or say support.", "Support."]
    assert call.ended == ("hangup", None)
    assert call.timeouts == [4000]  # the no-input timeout, on the call clock
    [gather] = call.events_of("gather")
    assert (
        gather["outcome"] == "match" and gather["value"] == "support" and gather["mode"] == "dtmf"
    )


async def test_spoken_synonym_chooses_the_option_and_records_the_recognition() -> None:
    grammar = FakeGrammar(confidence=0.82)
    call = await _run(
        MENU, ScriptedCall([SpeechStarted(10.0), utterance("bills")]), grammar=grammar
    )
    assert call.said[-1] == "Billing, via speech."
    [(rate, choices)] = grammar.calls
    assert rate == 8000
    assert [(c.id, c.phrases) for c in choices] == [
        ("billing", ("billing", "bills", "payments")),
        ("support", ("support", "help")),
    ]
    [rec] = call.events_of("recognition")
    assert rec["text"] == "bills" and rec["choice"] == "billing" and rec["confidence"] == 0.82
    assert rec["engine"] == "fake-grammar" and rec["accepted"] is True
    # While the caller was talking, the wait was extended to the end of the utterance.
    assert call.timeouts == [4000, 15000]


async def test_a_decode_the_grammar_rejected_is_a_no_match_even_if_it_names_an_option() -> None:
    # "support please" is not a phrase of the fake grammar, so it returns no choice: the words
    # inside it must not be matched behind the recogniser's back.
    call = await _run(MENU, ScriptedCall([utterance("support please")]))
    assert call.said[1] == "No match one."
    [rec] = call.events_of("recognition")
    assert rec["choice"] is None and rec["accepted"] is False


async def test_no_input_and_no_match_escalate_then_the_failure_branch_runs() -> None:
    inputs = [None, utterance("pizza"), digits("7")[0], None]
    call = await _run(MENU, ScriptedCall(inputs))
    assert call.said == [
        "Press 1 or say billing. Press 2 or say support.",
        "No input one.",
        "No match one.",
        "No match two.",
        "Failed with None.",
    ]
    outcomes = [e["outcome"] for e in call.events_of("gather")]
    assert outcomes == ["no_input", "no_match", "no_match", "no_input"]
    assert call.events_of("gather_failed") == [
        {"kind": "gather_failed", "step": "menu", "no_input": 2, "no_match": 2}
    ]


async def test_reprompt_without_handlers_repeats_the_prompt() -> None:
    flow = """
name: t
steps:
  - id: q
    gather:
      prompt: Pick one.
      options: {a: {digits: "1"}}
      max_attempts: 2
  - say: "got {{ q }}"
"""
    call = await _run(flow, ScriptedCall([None, digits("1")[0]]))
    assert call.said == ["Pick one.", "Pick one.", "got a"]


async def test_low_confidence_is_a_no_match() -> None:
    flow = MENU.replace("max_attempts: 4", "max_attempts: 1\n      min_confidence: 0.5")
    call = await _run(
        flow, ScriptedCall([utterance("billing")]), grammar=FakeGrammar(confidence=0.3)
    )
    assert call.said[-1] == "Failed with None."
    assert call.events_of("recognition")[0]["accepted"] is False


async def test_unavailable_recogniser_counts_as_no_match_and_is_recorded() -> None:
    from ivr_bridge.dialog.flow import FlowServices

    flow = parse_flow(MENU.replace("max_attempts: 4", "max_attempts: 1"))
    call = ScriptedCall([utterance("billing")])

    with pytest.raises(CallEnding):
        await run_flow(flow, call, FlowServices(grammar=unavailable, environ={}))
    assert call.said[-1] == "Failed with None."
    assert call.events_of("recognition_unavailable")[0]["error"] == "not installed here"


ENTRY = """
name: entry
steps:
  - id: account
    gather:
      prompt: Enter your account number, then pound.
      digits: {min: 4, max: 6, finish_on: "#", inter_digit_timeout_ms: 2500}
      no_match: ["Four to six digits, please."]
      max_attempts: 2
  - say: "Account {{ account }}."
"""


async def test_digit_entry_ends_on_the_finish_key_and_uses_inter_digit_timeouts() -> None:
    call = await _run(ENTRY, ScriptedCall(digits("1234#")))
    assert call.said[-1] == "Account 1234."
    assert call.timeouts == [5000, 2500, 2500, 2500, 2500]


async def test_digit_entry_ends_at_max_digits_or_after_a_pause() -> None:
    call = await _run(ENTRY, ScriptedCall(digits("123456")))
    assert call.said[-1] == "Account 123456."
    call = await _run(ENTRY, ScriptedCall([*digits("98765"), None]))
    assert call.said[-1] == "Account 98765."


async def test_a_full_length_entry_swallows_the_finish_key_pressed_out_of_habit() -> None:
    call = await _run(ENTRY, ScriptedCall(digits("123456")))
    assert call.swallowed == [("#", 2500)]  # '#' within the inter-digit time belongs to it
    call = await _run(ENTRY, ScriptedCall(digits("1234#")))
    assert call.swallowed == []  # the entry ended on its own finish key
    call = await _run(MENU, ScriptedCall(digits("1")))
    assert call.swallowed == []  # a menu choice has no finish key to swallow


async def test_a_menu_drops_old_speech_but_never_keys_typed_ahead() -> None:
    call = await _run(MENU, ScriptedCall(digits("2")))
    assert call.discards == [False]
    flow = MENU.replace("max_attempts: 4", "max_attempts: 4\n      barge_in: none")
    call = await _run(flow, ScriptedCall(digits("2")))
    assert call.discards == [False, False]  # and again after a prompt speech could not cut


async def test_too_few_digits_is_a_no_match_with_its_reprompt() -> None:
    call = await _run(ENTRY, ScriptedCall([*digits("12#"), *digits("4321#")]))
    assert call.said == [
        "Enter your account number, then pound.",
        "Four to six digits, please.",
        "Account 4321.",
    ]


async def test_speech_is_ignored_by_a_digits_only_gather() -> None:
    call = await _run(ENTRY, ScriptedCall([utterance("hello"), *digits("5555#")]))
    assert call.said[-1] == "Account 5555."


async def test_a_missing_variable_in_a_template_is_a_clear_runtime_error() -> None:
    flow = "name: t\nsteps:\n  - id: s\n    say: 'Hi {{ params.name }}'\n"
    call = ScriptedCall()
    with pytest.raises(
        FlowRuntimeError, match=r"step s: template .*'dict object' has no attribute 'name'"
    ):
        await run_flow(parse_flow(flow), call, services())
    assert call.events_of("flow_error")[0]["step"] == "s"
