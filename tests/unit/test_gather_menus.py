"""Menus that understand people: unsure destructive choices asked back, flow-wide commands."""

from __future__ import annotations

from ivr_bridge.call.testing import ScriptedCall, digits, utterance
from ivr_bridge.dialog.flow import parse_flow, run_flow
from ivr_bridge.errors import CallEnding
from tests.unit.flow_fakes import FakeGrammar, services

FLOW = """
name: menus
commands:
  agent: {phrases: [agent, operator], digits: "0", goto: person}
  repeat: {phrases: [repeat, say that again], repeat: true}
  help: {phrases: [help], help: "You can also say agent at any time."}
steps:
  - id: main
    gather:
      prompt: Say balance, or say goodbye.
      options:
        balance: {digits: "1", phrases: [balance], goto: more}
        goodbye: {digits: "9", phrases: [goodbye, that's all], goto: bye, confirm: true}
      no_match: ["Sorry, say balance or goodbye."]
      max_attempts: 3
      on_failure: failed
  - id: more
    gather:
      prompt: Anything else? Say menu or done.
      options:
        menu: {digits: "1", phrases: [menu, repeat], goto: main}
        done: {digits: "2", phrases: [done], goto: bye}
  - id: bye
    hangup: {say: "Goodbye."}
  - id: person
    transfer: {to: "+15005550100", say: "Connecting you."}
  - id: failed
    hangup: {say: "Failed."}
"""

PROMPT = "Say balance, or say goodbye."
ASK_BACK = "Did you say goodbye? Say yes or no, or press 1 for yes, 2 for no."


async def _run(
    call: ScriptedCall,
    confidence: float = 0.9,
    text: str = FLOW,
    grammar: FakeGrammar | None = None,
) -> ScriptedCall:
    try:
        await run_flow(parse_flow(text), call, services(grammar or FakeGrammar(confidence)))
    except CallEnding:
        pass
    return call


async def test_an_unsure_spoken_goodbye_is_asked_back_and_yes_takes_it() -> None:
    call = await _run(ScriptedCall([utterance("goodbye"), utterance("yes")]), confidence=0.6)
    assert call.said == [PROMPT, ASK_BACK, "Goodbye."]
    assert call.ended == ("hangup", None)
    [confirm] = call.events_of("gather_confirm")
    assert confirm["option"] == "goodbye" and confirm["answer"] == "yes"


async def test_yes_by_key_confirms_too() -> None:
    call = await _run(ScriptedCall([utterance("goodbye"), *digits("1")]), confidence=0.6)
    assert call.said == [PROMPT, ASK_BACK, "Goodbye."]


async def test_no_to_the_question_says_the_menu_again_and_costs_an_attempt() -> None:
    inputs = [utterance("goodbye"), utterance("no"), utterance("balance"), *digits("2")]
    call = await _run(ScriptedCall(inputs), confidence=0.6)
    assert call.said == [PROMPT, ASK_BACK, PROMPT, "Anything else? Say menu or done.", "Goodbye."]
    outcomes = [(e["step"], e["outcome"]) for e in call.events_of("gather")]
    assert outcomes == [("main", "no_match"), ("main", "match"), ("more", "match")]
    assert "said no to 'goodbye'" in call.events_of("gather")[0]["reason"]


async def test_no_answer_to_the_question_says_the_menu_again() -> None:
    call = await _run(ScriptedCall([utterance("goodbye"), None, *digits("1")]), confidence=0.6)
    assert call.said[:3] == [PROMPT, ASK_BACK, PROMPT]
    assert call.events_of("gather")[0]["outcome"] == "no_input"


async def test_declining_every_time_ends_in_the_failure_branch() -> None:
    inputs = [utterance("goodbye"), utterance("no")] * 3
    call = await _run(ScriptedCall(inputs), confidence=0.6)
    assert call.said == [PROMPT, ASK_BACK] * 3 + ["Failed."]


async def test_a_confident_spoken_goodbye_or_a_key_is_taken_without_asking() -> None:
    call = await _run(ScriptedCall([utterance("goodbye")]), confidence=0.85)
    assert call.said == [PROMPT, "Goodbye."]
    call = await _run(ScriptedCall(digits("9")), confidence=0.1)
    assert call.said == [PROMPT, "Goodbye."]
    assert call.events_of("gather_confirm") == []


async def test_an_unsure_choice_that_is_not_destructive_is_not_asked_back() -> None:
    call = await _run(ScriptedCall([utterance("balance"), *digits("2")]), confidence=0.5)
    assert call.said == [PROMPT, "Anything else? Say menu or done.", "Goodbye."]


async def test_the_question_can_be_worded_by_the_flow() -> None:
    flow = FLOW.replace(
        "confirm: true}", "confirm: true, confirm_prompt: 'Hang up now, {{ phrase }}? 1 or 2.'}"
    )
    call = await _run(ScriptedCall([utterance("that's all"), *digits("1")]), 0.6, flow)
    assert call.said == [PROMPT, "Hang up now, goodbye? 1 or 2.", "Goodbye."]


async def test_a_command_works_at_two_different_menus() -> None:
    call = await _run(ScriptedCall([utterance("operator")]))
    assert call.said == [PROMPT, "Connecting you."] and call.ended == ("dial", "+15005550100")
    call = await _run(ScriptedCall([*digits("1"), utterance("agent")]))
    assert call.said[-1] == "Connecting you." and call.ended == ("dial", "+15005550100")
    call = await _run(ScriptedCall([*digits("1"), *digits("0")]))  # its key, at the second menu
    assert call.ended == ("dial", "+15005550100")
    [*_, last] = call.events_of("gather")
    assert last["command"] == "agent" and last["value"] is None


async def test_repeat_and_help_say_the_prompt_again_without_costing_an_attempt() -> None:
    inputs = [utterance("say that again"), utterance("help")]
    inputs += [utterance("pizza")] * 3
    call = await _run(ScriptedCall(inputs))
    assert call.said == [
        PROMPT,
        PROMPT,
        "You can also say agent at any time.",
        PROMPT,
        "Sorry, say balance or goodbye.",
        "Sorry, say balance or goodbye.",
        "Failed.",  # three no-matches; the repeat and the help were not failures
    ]


async def test_a_menus_own_option_wins_over_a_command_with_the_same_phrase() -> None:
    # "repeat" is an option of the second menu (back to the main menu), not the command there.
    call = await _run(ScriptedCall([*digits("1"), utterance("repeat"), *digits("9")]))
    assert call.said == [PROMPT, "Anything else? Say menu or done.", PROMPT, "Goodbye."]
    more = [e for e in call.events_of("gather") if e["step"] == "more"]
    assert more[0]["value"] == "menu" and more[0]["command"] is None


async def test_commands_join_the_grammar_of_every_menu() -> None:
    grammar = FakeGrammar()
    await _run(ScriptedCall([utterance("agent")]), grammar=grammar)
    [(_, choices)] = grammar.calls
    assert [(c.id, c.phrases) for c in choices][-3:] == [
        ("command:agent", ("agent", "operator")),
        ("command:repeat", ("repeat", "say that again")),
        ("command:help", ("help",)),
    ]


async def test_endless_repeats_end_up_as_failures() -> None:
    call = await _run(ScriptedCall([utterance("repeat")] * 8))
    assert call.said == [PROMPT] * 6 + ["Sorry, say balance or goodbye."] * 2 + ["Failed."]
    reasons = [e["reason"] for e in call.events_of("gather") if e["reason"]]
    assert reasons == ["the command 'repeat' was asked for more than 5 times"] * 3
