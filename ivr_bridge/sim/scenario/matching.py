"""Does what the caller heard say what a check expects? Loose on purpose, strict where it counts.

The words come from a speech recogniser listening to 8 kHz µ-law, so exact substrings fail on
noise the agent is not to blame for ("forty two" for "42", a dropped "the", "your" for "you're").
A phrase matches when some stretch of the heard words is close to it letter by letter (difflib's
ratio) *and* its words are there (recall; a word counts when heard in another spelling,
"canceled", as a word that sounds the same, "here", or inside a compound, "examplebank"): a
long prompt may lose a word, a prompt with its key word changed or a different prompt that
shares a few words does not pass.

Apologies are found the same way: a call that ends with the agent saying sorry is a failure
whatever the TwiML after it says, so callers of :func:`apology_in` mark such an ending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

DEFAULT_SIMILARITY = 0.85
"""How close a heard stretch must be to the expected phrase (0-1): a phrase of up to six words
must be heard whole (one wrong word in five is 0.8), a longer one may lose a word."""

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SAME_WORD = 0.85
"""Two words this alike (difflib ratio over letters) are one word heard two ways."""
_TOKEN = re.compile(r"[a-z0-9']+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3})")
_DOLLARS = re.compile(r"\$(\d{1,6})(?:\.(\d{2}))?\b")
_RUN_TOGETHER = re.compile(r"(?<=[a-z])(?=[A-Z])")
"""A recogniser writes a name as one word ("ExampleBankSupport"): a word starts at each capital."""
_APOLOGY = re.compile(
    r"\b(sorry|apologi[sz]e|technical difficult\w*|something went wrong|could not connect|"
    r"cannot be connected|can ?not help right now|can't help right now|having trouble|"
    r"not available right now)\b"
)


def _number_words(n: int) -> list[str]:
    """English words for 0 ≤ n < 1,000,000 (what a recogniser may write instead of digits)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        rest = _number_words(n % 100) if n % 100 else []
        return [_ONES[n // 100], "hundred", *rest]
    rest = _number_words(n % 1000) if n % 1000 else []
    return [*_number_words(n // 1000), "thousand", *rest]


def words(text: str, *, amounts: bool = False) -> list[str]:
    """Lower-case words with numbers spelled out: "$42.50" and "forty two fifty" compare alike;
    with ``amounts``, "$42.50" is "forty two dollars and fifty cents" (as a say-as bot says it)."""
    out: list[str] = []
    text = _RUN_TOGETHER.sub(" ", text)
    text = _THOUSANDS.sub("", text.lower().replace("-", " "))
    if amounts:
        text = _DOLLARS.sub(_amount_in_words, text)
    for token in _TOKEN.findall(text):
        if token.isdigit():
            if len(token) > 6 or token.startswith("0"):
                out += [_ONES[int(d)] for d in token]  # account numbers are read digit by digit
            else:
                out += _number_words(int(token))
        else:
            out.append(token.strip("'"))
    return [w for w in out if w]


def _amount_in_words(match: re.Match[str]) -> str:
    """ "$12.50" as said: "twelve dollars and fifty cents" (a recogniser writes amounts so)."""
    dollars, cents = int(match.group(1)), int(match.group(2) or 0)
    said = " ".join(_number_words(dollars)) + (" dollar" if dollars == 1 else " dollars")
    if cents:
        said += " and " + " ".join(_number_words(cents)) + (" cent" if cents == 1 else " cents")
    return f" {said} "


@dataclass(frozen=True, slots=True)
class Match:
    score: float
    """0-1: how close the best stretch of what was heard is to the phrase."""
    heard: str
    """That stretch (empty when nothing was heard)."""

    def passes(self, similarity: float = DEFAULT_SIMILARITY) -> bool:
        return self.score >= similarity


def best_match(expected: str, heard: str) -> Match:
    """The stretch of ``heard`` closest to ``expected``, scored as the module docstring says;
    an amount a recogniser wrote ("$42.50") matches it said either way."""
    best = _best_match(words(expected), words(heard))
    if _DOLLARS.search(heard) or _DOLLARS.search(expected):
        spelled = _best_match(words(expected, amounts=True), words(heard, amounts=True))
        best = max(best, spelled, key=lambda m: m.score)
    return best


def _best_match(want: list[str], got: list[str]) -> Match:
    if not want:
        return Match(1.0, "")
    if not got:
        return Match(0.0, "")
    best = Match(0.0, "")
    n, phrase = len(want), " ".join(want)
    for size in range(max(1, n - 2), n + 3):
        for start in range(0, max(1, len(got) - size + 1)):
            window = got[start : start + size]
            ratio = SequenceMatcher(None, phrase, " ".join(window), autojunk=False).ratio()
            recall = sum(1 for w in want if _present(w, window)) / n
            score = min(ratio, recall)
            if score > best.score:
                best = Match(round(score, 3), " ".join(window))
    return best


def _present(word: str, window: list[str]) -> bool:
    """The word, a spelling of it ("canceled"), or a compound holding it ("examplebank")."""
    for heard in window:
        if word == heard:
            return True
        if (
            len(word) >= 4
            and len(heard) > len(word)
            and (heard.startswith(word) or heard.endswith(word))
        ):
            return True
        if SequenceMatcher(None, word, heard).ratio() >= _SAME_WORD:
            return True
        if len(word) >= 3 and soundex(word) == soundex(heard):  # "hear" / "here", "for" / "four"
            return True
    return False


_SOUNDEX = {
    c: d
    for d, letters in enumerate(("", "bfpv", "cgjkqsxz", "dt", "l", "mn", "r"))
    for c in letters
}


def soundex(word: str) -> str:
    """American Soundex: words that sound alike to a recogniser share a code."""
    letters = [c for c in word.lower() if c.isalpha()]
    if not letters:
        return ""
    code, last = [letters[0]], _SOUNDEX.get(letters[0], 0)
    for c in letters[1:]:
        digit = _SOUNDEX.get(c, 0)
        if digit and digit != last:
            code.append(str(digit))
        if c not in "hw":
            last = digit
    return "".join([*code, "0", "0", "0"])[:4]


def apology_in(text: str) -> str | None:
    """The apologetic words in ``text`` ("sorry", "technical difficulties"...), or None."""
    found = _APOLOGY.search(" ".join(words(text)))
    return found.group(0) if found else None
