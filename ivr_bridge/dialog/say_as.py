"""Say-as: numbers, amounts, dates, times, phone numbers and codes as the words a caller hears.

A speech engine reads "5678" as "five thousand six hundred seventy-eight", "12.5 dollars" as
"twelve point five dollars" and "2026-12-03" as a subtraction. What a caller must hear depends
on what the value *is* (the last digits of an account, an amount, a date), which only the flow
knows, so flows say it with a filter: ``{{ account_number[-4:] | digits }}``.

Each function here takes the value a template has (text, a number, a ``date``/``time``) and
returns words and punctuation only, never a digit, so the engine has nothing left to guess;
commas are the pauses between groups. English (US) words. A value that cannot be said raises
:class:`SayAsError` naming the filter and what it got; the template layer reports it as a
``TemplateRuntimeError`` of the template. Pure functions, standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date as Date
from datetime import datetime as DateTime
from datetime import time as Time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ivr_bridge.errors import DialogError

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_LIMIT = 10**15
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip
_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_SYMBOLS = {
    "*": "star", "#": "pound", "+": "plus", "-": "dash", ".": "dot", "@": "at",
    "_": "underscore", "/": "slash", "&": "and",
}  # fmt: skip
_SEPARATORS = frozenset(" \t-.()/+")
_CURRENCIES: dict[str, tuple[str, str, str | None, str | None]] = {
    # code: (one unit, units, one minor unit, minor units); None: no minor unit
    "USD": ("dollar", "dollars", "cent", "cents"),
    "CAD": ("Canadian dollar", "Canadian dollars", "cent", "cents"),
    "AUD": ("Australian dollar", "Australian dollars", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "CHF": ("franc", "francs", "centime", "centimes"),
    "MXN": ("peso", "pesos", "centavo", "centavos"),
    "JPY": ("yen", "yen", None, None),
}
CURRENCY_CODES = tuple(_CURRENCIES)
_AMOUNT_TEXT = re.compile(r"^[+-]?\s*[$€£¥]?\s*[+-]?(\d{1,3}(,\d{3})+|\d*)(\.\d*)?$")
_TIME_TEXT = re.compile(r"^(\d{1,2})(?::(\d{2}))?(?::\d{2}(?:\.\d+)?)?\s*([AaPp])?\.?\s*[Mm]?\.?$")


class SayAsError(DialogError, ValueError):
    """A say-as filter got a value it cannot say; the message names the filter and the value."""


def _kind(value: object) -> str:
    if value is None:
        return "nothing (None)"
    if isinstance(value, bool):
        return f"true/false ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"text {shown!r}"
    if isinstance(value, int | float | Decimal):
        return f"a number ({value})"
    return f"a {type(value).__name__}"


def _fail(name: str, problem: str, value: object) -> SayAsError:
    return SayAsError(f"{name}: {problem}, got {_kind(value)}")


# --- numbers -----------------------------------------------------------------------------------


def cardinal(n: int) -> str:
    """An integer in words: 1234 → "one thousand two hundred thirty-four"."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= _LIMIT:
        raise SayAsError(f"number: {n} is too large to say (up to trillions)")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {cardinal(rest)}" if rest else "")
    for size, word in _SCALES:
        if n >= size:
            high, rest = divmod(n, size)
            return f"{cardinal(high)} {word}" + (f" {cardinal(rest)}" if rest else "")
    raise AssertionError(n)  # unreachable: every n >= 1000 has a scale


def ordinal_words(n: int) -> str:
    """3 → "third", 21 → "twenty-first", 100 → "one hundredth"."""
    words = cardinal(n)
    head, sep, last = words.rpartition("-" if "-" in words.split(" ")[-1] else " ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def _decimal(name: str, value: object) -> Decimal:
    """A number from what a template holds: int, float, Decimal or text ("1,234.50", "$12")."""
    if isinstance(value, bool) or value is None:
        raise _fail(name, "expected a number", value)
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # 12.5, not 12.4999…
    elif (
        isinstance(value, str)
        and _AMOUNT_TEXT.match(value.strip())
        and any(c.isdigit() for c in value)
    ):
        text = value.strip()
        negative = "-" in text
        cleaned = re.sub(r"[\s$€£¥,+-]", "", text)
        try:
            number = Decimal(cleaned)
        except InvalidOperation:
            raise _fail(name, "expected a number", value) from None
        number = -number if negative else number
    else:
        raise _fail(name, "expected a number", value)
    if not number.is_finite():
        raise _fail(name, "expected a finite number", value)
    return number


def number(value: object) -> str:
    """A cardinal number in words; a fraction digit by digit: 3.14 → "three point one four"."""
    amount = _decimal("number", value)
    sign = "minus " if amount < 0 else ""
    amount = abs(amount)
    whole = int(amount)
    fraction = amount - whole
    if whole >= _LIMIT:
        raise _fail("number", "too large to say (up to trillions)", value)
    words = sign + cardinal(whole)
    if fraction:
        decimals = format(fraction.normalize(), "f").split(".")[1]
        words += " point " + " ".join(_ONES[int(d)] for d in decimals)
    return words


def ordinal(value: object) -> str:
    """A position in words: 3 (or "3", "3rd") → "third"."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text is not None and re.fullmatch(r"\d+(st|nd|rd|th)?", text):
        n = int(re.sub(r"\D", "", text))
    elif isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        raise _fail("ordinal", "expected a whole number", value)
    if n < 0:
        raise _fail("ordinal", "expected a whole number of zero or more", value)
    if n >= _LIMIT:
        raise _fail("ordinal", "too large to say (up to trillions)", value)
    return ordinal_words(n)


def currency(value: object, code: str = "USD") -> str:
    """An amount of money: 12.5 → "twelve dollars and fifty cents"; ``code`` is ISO 4217."""
    units = _CURRENCIES.get(str(code).strip().upper())
    if units is None:
        raise SayAsError(
            f"currency: unknown currency code {code!r} (known: {', '.join(CURRENCY_CODES)})"
        )
    one, many, minor_one, minor_many = units
    amount = _decimal("currency", value)
    places = Decimal("0.01") if minor_one else Decimal("1")
    amount = amount.quantize(places, rounding=ROUND_HALF_UP)
    sign = "minus " if amount < 0 else ""
    amount = abs(amount)
    whole = int(amount)
    minor = int((amount - whole) * 100)
    if whole >= _LIMIT:
        raise _fail("currency", "too large to say (up to trillions)", value)
    major = f"{cardinal(whole)} {one if whole == 1 else many}"
    if not minor or minor_one is None or minor_many is None:
        return sign + major
    cents = f"{cardinal(minor)} {minor_one if minor == 1 else minor_many}"
    return sign + (cents if whole == 0 else f"{major} and {cents}")


# --- digit strings: digits, phone, spell -------------------------------------------------------


def _group_sizes(name: str, group: object) -> list[int]:
    if group is None or group == 0:
        return []
    if isinstance(group, int) and not isinstance(group, bool) and group > 0:
        return [group]
    if isinstance(group, Sequence) and not isinstance(group, str):
        sizes = list(group)
        if sizes and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
            return sizes
    raise SayAsError(f"{name}: group is a size (4) or a list of sizes ([3, 3, 4]), got {group!r}")


def _grouped(words: list[str], sizes: list[int]) -> list[list[str]]:
    """Split ``words`` by ``sizes``; a single size repeats, the last group takes the rest."""
    if not sizes:
        return [words]
    groups: list[list[str]] = []
    at = 0
    n = 0
    while at < len(words):
        size = sizes[n] if n < len(sizes) else (sizes[0] if len(sizes) == 1 else len(words))
        groups.append(words[at : at + size])
        at += size
        n += 1
    return groups


def _digit_words(name: str, value: object, allow_letters: bool) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(name, "expected digits as text or a whole number", value)
    text = str(value).strip()
    words: list[str] = []
    for char in text:
        if char.isdigit() and char.isascii():
            words.append(_ONES[int(char)])
        elif char in "*#":
            words.append(_SYMBOLS[char])
        elif allow_letters and char.isalpha():
            words.append(char.upper())
        elif char in _SEPARATORS or char == ",":
            continue
        else:
            raise _fail(name, f"cannot say {char!r}", value)
    if not words:
        raise _fail(name, "expected at least one digit", value)
    return words


def digits(value: object, group: int | Sequence[int] | None = None) -> str:
    """Digit by digit: "5678" → "five six seven eight"; ``group=4`` (or ``[3, 3, 4]``) puts a
    pause after each group. Separators (spaces, dashes, dots, brackets, +) are not said;
    ``*``/``#`` are "star"/"pound" and letters are said as letters (use ``spell`` for codes)."""
    words = _digit_words("digits", value, allow_letters=True)
    return ", ".join(" ".join(g) for g in _grouped(words, _group_sizes("digits", group)))


def phone(value: object) -> str:
    """A phone number in groups with pauses: "+14155550123" → "four one five, five five five,
    zero one two three" (North American numbers 3-3-4 without the country code; other numbers
    in the groups they are written in, or threes ending in a four)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail("phone", "expected a phone number", value)
    text = str(value).strip()
    if not re.fullmatch(r"\+?[\d\s().-]+", text):
        raise _fail("phone", "expected a phone number (digits, spaces, dashes, +)", value)
    plain = re.sub(r"\D", "", text)
    if not plain:
        raise _fail("phone", "expected a phone number", value)
    international = text.startswith("+")
    if len(plain) == 11 and plain[0] == "1":
        plain, international = plain[1:], False  # +1 415 555 0123: the caller knows the +1
    if len(plain) == 10 and not international:
        groups = [plain[:3], plain[3:6], plain[6:]]
    elif re.search(r"[\s().-]", text):
        groups = [g for g in re.split(r"[\s().-]+", text.lstrip("+")) if g]
    else:  # threes, ending in a four: 555 0123, 442 079 46 0958
        head, tail = plain[:-4], plain[-4:]
        groups = [head[i : i + 3] for i in range(0, len(head), 3)] + [tail]
    spoken = [" ".join(_ONES[int(d)] for d in g) for g in groups]
    return ("plus " if international else "") + ", ".join(spoken)


def spell(value: object) -> str:
    """Character by character, with a pause between: "AB12" → "A, B, one, two"."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail("spell", "expected text", value)
    words: list[str] = []
    for char in str(value).strip():
        if char.isdigit() and char.isascii():
            words.append(_ONES[int(char)])
        elif char.isalpha():
            words.append(char.upper())
        elif char in _SYMBOLS:
            words.append(_SYMBOLS[char])
        elif char.isspace():
            continue
        else:
            raise _fail("spell", f"cannot say {char!r}", value)
    if not words:
        raise _fail("spell", "expected at least one letter or digit", value)
    return ", ".join(words)


# --- dates and times ---------------------------------------------------------------------------


def year_words(year: int) -> str:
    """2026 → "twenty twenty-six", 2005 → "two thousand five", 1905 → "nineteen oh five"."""
    high, low = divmod(year, 100)
    if year < 1000 or (2000 <= year < 2010) or year % 1000 == 0:
        return cardinal(year)
    if low == 0:
        return f"{cardinal(high)} hundred"
    return f"{cardinal(high)} {cardinal(low) if low >= 10 else 'oh ' + _ONES[low]}"


def date(value: object, year: bool = False, weekday: bool = True) -> str:
    """ "2026-12-03" (or a date) → "Thursday, December third"; ``year=true`` adds
    ", twenty twenty-six"; ``weekday=false`` leaves the day of the week out."""
    if isinstance(value, DateTime):
        day = value.date()
    elif isinstance(value, Date):
        day = value
    elif isinstance(value, str):
        try:
            day = Date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise _fail("date", "expected a date such as 2026-12-03", value) from None
    else:
        raise _fail("date", "expected a date such as 2026-12-03", value)
    words = f"{_MONTHS[day.month - 1]} {ordinal_words(day.day)}"
    if weekday:
        words = f"{_WEEKDAYS[day.weekday()]}, {words}"
    if year:
        words += f", {year_words(day.year)}"
    return words


def time(value: object) -> str:
    """ "15:30" / "3:30pm" (or a time) → "three thirty PM"; "15:00" → "three PM";
    "09:05" → "nine oh five AM"."""
    if isinstance(value, DateTime):
        hour, minute = value.hour, value.minute
    elif isinstance(value, Time):
        hour, minute = value.hour, value.minute
    elif isinstance(value, str) and (match := _TIME_TEXT.match(value.strip())):
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
        half = (match.group(3) or "").lower()
        if half and not 1 <= hour <= 12:
            raise _fail("time", "a 12-hour time has hours 1 to 12", value)
        if half:
            hour = hour % 12 + (12 if half == "p" else 0)
        if hour > 23 or minute > 59:
            raise _fail("time", "expected a time such as 15:30 or 3:30pm", value)
        if not half and match.group(2) is None:
            raise _fail("time", "expected a time such as 15:30 or 3:30pm", value)
    else:
        raise _fail("time", "expected a time such as 15:30 or 3:30pm", value)
    suffix = "PM" if hour >= 12 else "AM"
    words = cardinal(hour % 12 or 12)
    if minute:
        words += " " + (cardinal(minute) if minute >= 10 else f"oh {_ONES[minute]}")
    return f"{words} {suffix}"


def spoken_forms(value: str) -> list[str]:
    """How the say-as filters could read a sensitive value aloud (an amount as "forty-two
    dollars and seventeen cents", in every currency), so a log line can mask those words too.
    Digit by digit needs nothing here: the call's log masks runs of spoken digits itself."""
    try:
        forms = [number(value)] + [currency(value, code) for code in CURRENCY_CODES]
    except SayAsError:
        return []
    return [form for form in dict.fromkeys(forms) if " " in form or "-" in form]


FILTERS: dict[str, Callable[..., str]] = {
    "digits": digits,
    "currency": currency,
    "number": number,
    "ordinal": ordinal,
    "date": date,
    "time": time,
    "phone": phone,
    "spell": spell,
}
"""The say-as filters by the name flows use them under."""
