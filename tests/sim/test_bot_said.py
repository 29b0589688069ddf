"""``bot_said`` and ``ended`` judged the way a person listening to the call would judge them."""

from __future__ import annotations

import pytest

from ivr_bridge.sim.scenario.matching import apology_in, best_match, soundex, words
from ivr_bridge.sim.scenario.recording import CallRecorder, Utterance
from ivr_bridge.sim.scenario.result import check_expectations
from ivr_bridge.sim.scenario.script import Expectations
from ivr_bridge.sim.twilio.twiml import Verdict, verdict_from_twiml


def heard(*texts: str | None) -> CallRecorder:
    recorder = CallRecorder()
    for i, text in enumerate(texts):
        recorder.utterances.append(Utterance(i * 3000.0, i * 3000.0 + 2000.0, text=text))
    return recorder


def results(expect: Expectations, recorder: CallRecorder, verdict: Verdict | None = None) -> dict:
    checks = check_expectations(expect, verdict or Verdict("hangup"), recorder, None)
    return {c.name: c for c in checks}


def test_numbers_compare_whether_written_in_digits_or_words() -> None:
    assert words("Your balance is $42.50.") == words("your balance is forty-two fifty")
    assert words("Account 0042") == ["account", "zero", "zero", "four", "two"]
    assert words("1,250 people") == ["one", "thousand", "two", "hundred", "fifty", "people"]


def test_a_name_the_recogniser_ran_together_is_still_its_words() -> None:
    assert words("Thanks for calling ExampleBankSupport.") == words(
        "Thanks for calling Example Bank support."
    )
    assert words("iPhone") == ["i", "phone"] and words("OK") == ["ok"]


@pytest.mark.parametrize(
    ("said", "ok"),
    [
        ("Welcome to Acme Bank. For your balance, press one.", True),
        ("welcome to acme bank for your balance press 1", True),  # a recogniser's spelling
        ("Welcome to Acne Bank. For your balance, press one.", True),  # one word misheard
        ("Welcome to Acme Bank. For opening hours, press two.", False),  # a different prompt
        ("Goodbye.", False),
    ],
)
def test_a_phrase_matches_what_was_heard_loosely_but_not_a_different_prompt(
    said: str, ok: bool
) -> None:
    expect = Expectations(bot_said=["for your balance press one"])
    [check] = [c for c in results(expect, heard("Hello.", said)).values() if "bot said" in c.name]
    assert check.passed is ok, check.detail
    if not ok:
        assert "closest" in check.detail or "nothing close" in check.detail


def test_the_detail_says_where_the_phrase_was_heard() -> None:
    check = results(Expectations(bot_said=["press one"]), heard("Hi.", "Press one."))[
        "bot said: press one"
    ]
    assert check.passed
    assert "at 3.0 s" in check.detail


def test_untranscribed_audio_is_not_verifiable_and_fails() -> None:
    check = results(Expectations(bot_said=["hello"]), heard(None))["bot said: hello"]
    assert not check.passed
    assert "not verifiable" in check.detail


def test_a_stricter_similarity_rejects_a_near_miss() -> None:
    near = heard("Welcome to Apex Bank.")
    assert best_match("welcome to acme bank", "Welcome to Apex Bank.").score == pytest.approx(0.75)
    assert not results(Expectations(bot_said=["welcome to acme bank"]), near)[
        "bot said: welcome to acme bank"
    ].passed
    loose = Expectations(bot_said=["welcome to acme bank"], bot_said_similarity=0.7)
    assert results(loose, near)["bot said: welcome to acme bank"].passed


def test_a_call_that_ends_in_an_apology_fails_ended_hangup() -> None:
    sorry = heard("Welcome.", "We're sorry, we are having technical difficulties. Goodbye.")
    check = results(Expectations(ended="hangup"), sorry)["ended: hangup"]
    assert not check.passed
    assert "apology" in check.detail and "sorry" in check.detail
    assert results(Expectations(ended="apology"), sorry)["ended: apology"].passed
    assert results(Expectations(ended="hangup"), heard("Thanks for calling. Goodbye."))[
        "ended: hangup"
    ].passed


def test_an_apology_in_the_twiml_after_the_stream_is_an_apology() -> None:
    verdict = verdict_from_twiml(
        "<Response><Say>Sorry, we could not connect your call.</Say><Hangup/></Response>"
    )
    assert verdict.said == ["Sorry, we could not connect your call."]
    check = results(Expectations(ended="hangup"), heard("Transferring you now."), verdict)
    assert not check["ended: hangup"].passed


def test_apologies_are_found_in_their_usual_words() -> None:
    assert apology_in("I'm sorry, I can't help right now.") == "sorry"
    assert apology_in("Our assistant is not available right now") == "not available right now"
    assert apology_in("Your appointment is confirmed. Goodbye.") is None


def test_a_prompt_with_its_key_word_changed_does_not_pass() -> None:
    heard_it = best_match("please enter your account number", "Please enter your card number.")
    assert not heard_it.passes()


def test_words_that_sound_alike_count_as_heard() -> None:
    assert soundex("hear") == soundex("here") and soundex("Ashcraft") == "a261"
    assert best_match("press four to hear them", "Press for to here them.").passes()
    assert best_match(
        "your appointment has been cancelled", "Your appointment has been canceled."
    ).passes()
    assert not best_match("press one to confirm", "Press nine to cancel.").passes()


def test_an_amount_said_in_words_matches_the_amount_a_recogniser_wrote() -> None:
    said = "your balance is two hundred forty dollars and eighty-two cents"
    assert best_match(said, "Your balance is $240.82.").score == 1.0
    assert best_match("your balance is forty-two fifty", "Your balance is $42.50.").score == 1.0
