"""Does the caller's sentence end here? The words of a pause, judged for the short end-of-turn wait.

An LLM turn waits ``end_silence_ms`` (600 ms) of silence before it answers, because callers
pause mid-sentence ("I'd like to ... check my order") and answering into that pause cuts them
off. But most turns end as sentences, and for those the full wait is dead air. So the words
heard at a pause (``call.lookahead``) are judged: a turn that *ends as a sentence* may end after
a shorter wait (``sentence_silence_ms``, 450 ms: longer than callers' mid-sentence pauses, so
a misjudged fragment still gets more time than a pause usually takes), anything else keeps the
full one.

Ends as a sentence: the recogniser closed it (whisper writes ``.``, ``?`` or ``!`` at what it
hears as a sentence's end; Deepgram's ``speech_final`` is its own verdict) *and* the last word
is not one a sentence goes on from. Whisper punctuates fragments too ("I want to."), so the last
word decides: articles, prepositions, conjunctions, auxiliaries, subject pronouns and fillers
("to", "the", "and", "is", "we", "um"), and numbers, which callers read out in groups with
pauses between ("one two three ... four") — a turn ending in a number waits the full time.
Words that end sentences as often as they lead on stay out of the list: objects ("Cancel it.",
"Thank you."), "here", "there" and question words ("Why?", "Where?").
"""

from __future__ import annotations

import re

_CONTINUES = frozenset(
    """
    a an the this that these those my your our their his her its some any every no
    to of for in on at by with from into onto about as than like after before over under
    and or but so because if when while though although unless until whether nor then
    is are was were am be been being do does did have has had will would can could should
    shall may might must gonna wanna gotta need want
    i we they he she which whose
    um uh er erm ah hmm mm like
    not just also really very
    """.split()
)
"""Words a sentence goes on from: a pause after one of them is mid-sentence."""
_NUMBER = re.compile(r"^(\d[\d,.\-]*|zero|oh|one|two|three|four|five|six|seven|eight|nine|ten)$")
_CLOSED = (".", "?", "!")


def ends_as_sentence(text: str) -> bool:
    """The recogniser closed the sentence and its last word is not one it goes on from."""
    stripped = text.strip()
    if not stripped.endswith(_CLOSED):
        return False
    words = re.findall(r"[\w'\-]+", stripped.lower())
    if not words:
        return False
    last = words[-1].strip("-'")
    if last in _CONTINUES or _NUMBER.match(last):
        return False
    return not stripped.endswith("...")
