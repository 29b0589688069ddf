"""Text normalisation for grammars: what callers say, spelled as the dictionary spells it.

Phrases come from flow files written by people ("Press 2 for Billing!", "A&E"); the decoder only
knows lower-case dictionary words, so digits are spelled out and punctuation dropped here.
"""

from __future__ import annotations

import re

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()

DIGIT_WORDS: dict[str, str] = {word: str(i) for i, word in enumerate(_ONES[:10])}
DIGIT_WORDS["oh"] = "0"
"""Spoken digit -> character; "oh" is how people say 0 in numbers."""

_TOKEN = re.compile(r"[a-z0-9']+")


def number_to_words(number: int) -> str:
    """Spell 0..999 as words; longer numbers are read digit by digit like phone numbers."""
    if number < 0:
        raise ValueError("negative numbers are not spoken in menus")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        head = f"{_ONES[hundreds]} hundred"
        return head + (f" {number_to_words(rest)}" if rest else "")
    return " ".join(_ONES[int(d)] for d in str(number))


def normalize_phrase(phrase: str) -> str:
    """Lower-case words only: digits spelled out, '&' as 'and', other punctuation removed."""
    text = phrase.lower().replace("&", " and ").replace("-", " ").replace("_", " ")
    text = text.replace("\u2019", "'")
    words: list[str] = []
    for token in _TOKEN.findall(text):
        token = token.strip("'")
        if not token:
            continue
        for part in re.findall(r"\d+|[a-z']+", token):
            words.append(number_to_words(int(part)) if part.isdigit() else part)
    return " ".join(words)


def spoken_digits(text: str) -> str | None:
    """'one two three' -> '123'; None when any word is not a digit (or there are none)."""
    words = normalize_phrase(text).split()
    if not words or any(w not in DIGIT_WORDS for w in words):
        return None
    return "".join(DIGIT_WORDS[w] for w in words)
