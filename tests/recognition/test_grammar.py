"""build_jsgf and the text -> choice mapping (pure; no decoder)."""

from __future__ import annotations

import pytest

from ivr_bridge.recognition import (
    GrammarChoice,
    GrammarError,
    build_jsgf,
    normalize_phrase,
    spoken_digits,
    yes_no_choices,
)
from ivr_bridge.recognition.grammar import match_choice, match_digits, plan_grammar

MENU = [
    GrammarChoice("billing", ("billing", "pay my bill", "payments")),
    GrammarChoice("agent", ("speak to an agent", "agent")),
]


def test_normalize_spells_digits_and_drops_punctuation() -> None:
    assert normalize_phrase("Press 2 for Billing!") == "press two for billing"
    assert normalize_phrase("A&E, 24/7") == "a and e twenty four seven"
    assert normalize_phrase("I’d like") == "i'd like"
    assert normalize_phrase("ext. 12345") == "ext one two three four five"


def test_spoken_digits() -> None:
    assert spoken_digits("one two three") == "123"
    assert spoken_digits("oh nine") == "09"
    assert spoken_digits("one banana") is None
    assert spoken_digits("") is None


def test_jsgf_has_every_phrase_in_its_choice_rule() -> None:
    jsgf = build_jsgf(MENU)
    assert jsgf.startswith("#JSGF V1.0;")
    assert "<choice0> = billing | pay my bill | payments;" in jsgf
    assert "<choice1> = speak to an agent | agent;" in jsgf
    assert "public <utterance> = [<leading>] (<choice0> | <choice1>) [<trailing>];" in jsgf
    assert "please" in jsgf.split("<trailing> =")[1]


def test_jsgf_without_fillers_accepts_only_the_phrases() -> None:
    jsgf = build_jsgf(MENU, fillers=False)
    assert "public <utterance> = (<choice0> | <choice1>);" in jsgf
    assert "<leading>" not in jsgf


def test_answer_words_are_not_fillers_when_they_are_choices() -> None:
    plan = plan_grammar(yes_no_choices())
    assert not {"yes", "yeah", "okay"} & set(plan.leading)
    other = plan_grammar(MENU)
    assert "yes" in other.leading  # "yes, billing" is fine when yes is not an option


def test_one_word_choice_is_never_a_filler() -> None:
    plan = plan_grammar([GrammarChoice("please", ("please",)), GrammarChoice("x", ("billing",))])
    assert "please" not in plan.leading and "please" not in plan.trailing


def test_bad_grammars_fail_clearly() -> None:
    with pytest.raises(GrammarError, match="at least one"):
        build_jsgf([])
    with pytest.raises(GrammarError, match="'empty' has no speakable phrase"):
        build_jsgf([GrammarChoice("empty", ("?!",))])
    with pytest.raises(GrammarError, match="both 'a' and 'b'"):
        build_jsgf([GrammarChoice("a", ("billing",)), GrammarChoice("b", ("Billing",))])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("billing", "billing"),
        ("uh billing please", "billing"),
        ("i'd like billing", "billing"),
        ("i want to speak to an agent", "agent"),
        ("pay my bill thanks", "billing"),
        ("<sil> billing(2) [NOISE]", "billing"),
        ("i want", None),  # a partial path: no option in it
        ("billing agent", None),  # two options: not a grammar sentence
        ("", None),
    ],
)
def test_match_choice(text: str, expected: str | None) -> None:
    assert match_choice(text, plan_grammar(MENU)) == expected


def test_match_digits() -> None:
    assert match_digits("my number is one two three please") == "123"
    assert match_digits("uh one two") is None
    assert match_digits("billing") is None
    assert match_digits("one banana two") is None
