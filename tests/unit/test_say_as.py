"""Say-as filters: what the caller hears for an account's last digits, an amount, a date, a time,
a phone number or a code; and that a value a filter cannot say is a clear template error."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from ivr_bridge.dialog import say_as
from ivr_bridge.dialog.say_as import SayAsError
from ivr_bridge.dialog.templates import TemplateRuntimeError, render
from ivr_bridge.errors import DialogError


def spoken(template: str, **scope: Any) -> str:
    text = render(template, scope)
    assert not re.search(r"\d", text), f"a digit reached the speech engine: {text!r}"
    return text


# --- digits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "heard"),
    [
        ("5678", "five six seven eight"),
        ("0", "zero"),
        (5678, "five six seven eight"),
        ("0042", "zero zero four two"),
        ("415-555 (0123)", "four one five five five five zero one two three"),
        ("12#", "one two pound"),
        ("*9", "star nine"),
        ("A1", "A one"),
    ],
)
def test_digits_are_read_one_by_one(value: Any, heard: str) -> None:
    assert spoken("{{ v | digits }}", v=value) == heard


def test_the_account_ending_reads_its_last_four_digits() -> None:
    text = spoken("account ending {{ n[-4:] | digits }}", n="55505678")
    assert text == "account ending five six seven eight"


def test_digits_in_groups_have_pauses_between_them() -> None:
    assert spoken("{{ v | digits(group=4) }}", v="12345678") == (
        "one two three four, five six seven eight"
    )
    assert spoken("{{ v | digits(4) }}", v="123456") == "one two three four, five six"
    assert spoken("{{ v | digits(group=[3, 3, 4]) }}", v="4155550123") == (
        "four one five, five five five, zero one two three"
    )


@pytest.mark.parametrize("value", ["", "---", None, 12.5, True, ["1"]])
def test_digits_refuse_what_has_no_digits(value: Any) -> None:
    with pytest.raises(TemplateRuntimeError, match="digits: "):
        render("{{ v | digits }}", {"v": value})


def test_a_bad_group_names_the_option() -> None:
    with pytest.raises(TemplateRuntimeError, match="digits: group is a size"):
        render("{{ v | digits(group='x') }}", {"v": "1234"})


# --- currency ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "heard"),
    [
        ("12.5", "twelve dollars and fifty cents"),
        (12.5, "twelve dollars and fifty cents"),
        ("12.50", "twelve dollars and fifty cents"),
        (Decimal("12.50"), "twelve dollars and fifty cents"),
        ("1", "one dollar"),
        (1.01, "one dollar and one cent"),
        (0.05, "five cents"),
        (0, "zero dollars"),
        ("-3.20", "minus three dollars and twenty cents"),
        (1234.5, "one thousand two hundred thirty-four dollars and fifty cents"),
        ("$1,000,000", "one million dollars"),
        (42.175, "forty-two dollars and eighteen cents"),
        ("0.999", "one dollar"),
    ],
)
def test_amounts_are_said_in_dollars_and_cents(value: Any, heard: str) -> None:
    assert spoken("{{ v | currency }}", v=value) == heard


@pytest.mark.parametrize(
    ("code", "heard"),
    [
        ("EUR", "twelve euros and fifty cents"),
        ("gbp", "twelve pounds and fifty pence"),
        ("JPY", "thirteen yen"),
        ("MXN", "twelve pesos and fifty centavos"),
    ],
)
def test_other_currencies_by_code(code: str, heard: str) -> None:
    assert spoken("{{ v | currency(code) }}", v="12.5", code=code) == heard


def test_one_pound_and_one_penny_are_singular() -> None:
    assert spoken("{{ v | currency(code='GBP') }}", v="1.01") == "one pound and one penny"


@pytest.mark.parametrize("value", ["abc", "12.5.1", "", None, True, "1e3", float("nan"), [1]])
def test_currency_refuses_what_is_not_an_amount(value: Any) -> None:
    with pytest.raises(TemplateRuntimeError, match=r"currency: expected a (finite )?number, got"):
        render("{{ v | currency }}", {"v": value})


def test_an_unknown_currency_code_lists_the_known_ones() -> None:
    with pytest.raises(TemplateRuntimeError, match=r"unknown currency code 'XYZ' \(known: USD"):
        render("{{ v | currency('XYZ') }}", {"v": 1})


def test_an_undefined_value_is_reported_as_undefined() -> None:
    with pytest.raises(TemplateRuntimeError, match="'balance' is undefined"):
        render("{{ balance | currency }}", {})


def test_the_error_names_the_value_kind() -> None:
    with pytest.raises(TemplateRuntimeError, match=r"got nothing \(None\)"):
        render("{{ v | currency }}", {"v": None})
    with pytest.raises(TemplateRuntimeError, match=r"got a list"):
        render("{{ v | number }}", {"v": [1]})


# --- number, ordinal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "heard"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety-nine"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (1234, "one thousand two hundred thirty-four"),
        (1_000_001, "one million one"),
        (2_000_000_000, "two billion"),
        (-5, "minus five"),
        ("3.14", "three point one four"),
        (2.5, "two point five"),
        ("1,234", "one thousand two hundred thirty-four"),
    ],
)
def test_numbers_in_words(value: Any, heard: str) -> None:
    assert spoken("{{ v | number }}", v=value) == heard


def test_a_number_too_large_to_say_is_refused() -> None:
    with pytest.raises(TemplateRuntimeError, match="number: too large"):
        render("{{ v | number }}", {"v": 10**15})


@pytest.mark.parametrize(
    ("value", "heard"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (4, "fourth"),
        (5, "fifth"),
        (8, "eighth"),
        (9, "ninth"),
        (12, "twelfth"),
        (20, "twentieth"),
        (21, "twenty-first"),
        (33, "thirty-third"),
        (100, "one hundredth"),
        (101, "one hundred first"),
        ("3rd", "third"),
        ("11", "eleventh"),
    ],
)
def test_ordinals(value: Any, heard: str) -> None:
    assert spoken("{{ v | ordinal }}", v=value) == heard


@pytest.mark.parametrize("value", [-1, 2.5, "third", None])
def test_ordinal_needs_a_whole_number(value: Any) -> None:
    with pytest.raises(TemplateRuntimeError, match="ordinal: expected a whole number"):
        render("{{ v | ordinal }}", {"v": value})


# --- date, time --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["2026-12-03", date(2026, 12, 3), datetime(2026, 12, 3, 15, 30), "2026-12-03T15:30"]
)
def test_a_date_is_its_weekday_month_and_day(value: Any) -> None:
    assert spoken("{{ v | date }}", v=value) == "Thursday, December third"


def test_a_date_with_its_year_or_without_its_weekday() -> None:
    assert spoken("{{ v | date(year=true) }}", v="2026-12-03") == (
        "Thursday, December third, twenty twenty-six"
    )
    assert spoken("{{ v | date(weekday=false) }}", v="2026-05-21") == "May twenty-first"


@pytest.mark.parametrize(
    ("year", "heard"),
    [
        (2026, "twenty twenty-six"),
        (2000, "two thousand"),
        (2005, "two thousand five"),
        (2010, "twenty ten"),
        (1999, "nineteen ninety-nine"),
        (1900, "nineteen hundred"),
        (1905, "nineteen oh five"),
    ],
)
def test_years_as_people_say_them(year: int, heard: str) -> None:
    assert say_as.year_words(year) == heard


@pytest.mark.parametrize("value", ["03/12/2026", "2026-13-01", "tomorrow", 20261203, None])
def test_date_refuses_what_is_not_an_iso_date(value: Any) -> None:
    with pytest.raises(TemplateRuntimeError, match="date: expected a date such as 2026-12-03"):
        render("{{ v | date }}", {"v": value})


@pytest.mark.parametrize(
    ("value", "heard"),
    [
        ("15:30", "three thirty PM"),
        ("3:30pm", "three thirty PM"),
        ("3:30 p.m.", "three thirty PM"),
        ("15:00", "three PM"),
        ("3pm", "three PM"),
        ("09:05", "nine oh five AM"),
        ("9:45:10", "nine forty-five AM"),
        ("00:00", "twelve AM"),
        ("12:00", "twelve PM"),
        ("12am", "twelve AM"),
        (time(15, 30), "three thirty PM"),
        (datetime(2026, 12, 3, 8, 15), "eight fifteen AM"),
    ],
)
def test_times_on_a_twelve_hour_clock(value: Any, heard: str) -> None:
    assert spoken("{{ v | time }}", v=value) == heard


@pytest.mark.parametrize("value", ["25:00", "13pm", "12:61", "15", "noon", None, 1530])
def test_time_refuses_what_is_not_a_time(value: Any) -> None:
    with pytest.raises(TemplateRuntimeError, match="time: "):
        render("{{ v | time }}", {"v": value})


# --- phone, spell ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "heard"),
    [
        ("+14155550123", "four one five, five five five, zero one two three"),
        ("4155550123", "four one five, five five five, zero one two three"),
        ("(415) 555-0123", "four one five, five five five, zero one two three"),
        ("1-415-555-0123", "four one five, five five five, zero one two three"),
        ("555-0123", "five five five, zero one two three"),
        ("+44 20 7946 0958", "plus four four, two zero, seven nine four six, zero nine five eight"),
        ("+442079460958", "plus four four two, zero seven nine, four six, zero nine five eight"),
        ("911", "nine one one"),
    ],
)
def test_phone_numbers_in_groups_with_pauses(value: str, heard: str) -> None:
    assert spoken("{{ v | phone }}", v=value) == heard


@pytest.mark.parametrize("value", ["call me", "415-CALL-NOW", "", None, "+"])
def test_phone_refuses_what_is_not_a_number(value: Any) -> None:
    with pytest.raises(TemplateRuntimeError, match="phone: expected a phone number"):
        render("{{ v | phone }}", {"v": value})


@pytest.mark.parametrize(
    ("value", "heard"),
    [
        ("AB12", "A, B, one, two"),
        ("ab 12", "A, B, one, two"),
        ("X-7", "X, dash, seven"),
        (42, "four, two"),
    ],
)
def test_spell_reads_a_code_character_by_character(value: Any, heard: str) -> None:
    assert spoken("{{ v | spell }}", v=value) == heard


@pytest.mark.parametrize("value", ["", "a%b", None])
def test_spell_refuses_what_it_cannot_say(value: Any) -> None:
    with pytest.raises(TemplateRuntimeError, match="spell: "):
        render("{{ v | spell }}", {"v": value})


# --- for the call's log ------------------------------------------------------------------------


def test_spoken_forms_of_an_amount_cover_every_currency() -> None:
    forms = say_as.spoken_forms("42.17")
    assert "forty-two dollars and seventeen cents" in forms
    assert "forty-two euros and seventeen cents" in forms
    assert "forty-two point one seven" in forms
    assert say_as.spoken_forms("not a number") == []
    assert "seven" not in say_as.spoken_forms("7")  # a lone word would mask it everywhere


def test_say_as_errors_are_dialog_errors() -> None:
    with pytest.raises(DialogError):
        say_as.currency("abc")
    assert issubclass(SayAsError, ValueError)
