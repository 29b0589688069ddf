"""What the caller actually heard of an interrupted utterance, word by word.

Played audio comes from acknowledged marks (``Utterance.bytes_played``), word positions from the
speech service's timestamps (seconds from the utterance's first audio byte). A word counts as
heard once at least half of it played: the caller who hears "bill-" heard "billing" as much as
anyone can tell, and the LLM dialog cuts its history with this text.
"""

from __future__ import annotations

from collections.abc import Sequence

from ivr_bridge.speech.session import WordTiming


def heard_words(words: Sequence[WordTiming], played_ms: float) -> list[str]:
    """The words whose midpoint lies within the first ``played_ms`` of audio."""
    played_s = played_ms / 1000
    return [w.text for w in words if w.start + w.duration / 2 <= played_s]


def heard_text(
    text: str,
    words: Sequence[WordTiming],
    played_ms: float,
    total_ms: float | None,
    *,
    interrupted: bool,
) -> str:
    """The heard part of ``text``; all of it when not interrupted.

    Without word timestamps (recorded audio, a provider that sends none) the heard share of
    the text's words is estimated from the share of audio played, when the total is known.
    """
    if not interrupted:
        return text
    if words:
        return " ".join(heard_words(words, played_ms))
    if not total_ms or total_ms <= 0:
        return ""
    tokens = text.split()
    share = min(1.0, played_ms / total_ms)
    return " ".join(tokens[: int(len(tokens) * share)])


def unheard_part(text: str, heard: str) -> str:
    """The words of ``text`` after the ``heard`` ones (the part a barge-in cut off)."""
    if heard == text:
        return ""
    tokens = text.split()
    return " ".join(tokens[len(heard.split()) :])
