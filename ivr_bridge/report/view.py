"""What a drawn call is made of, whoever measured it.

The tester fills a :class:`CallView` from the caller's line (what a simulated caller heard), the
records from a bridge's own account of a call (:mod:`ivr_bridge.records.view`). Times are call
milliseconds; text is plain (escaped when drawn), already masked by whoever built the view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Peaks = tuple[tuple[float, float], ...]
"""One (low, high) pair per timeline column, in -1..1 (a min-max envelope)."""


@dataclass(frozen=True, slots=True)
class BotSpan:
    """Bot audio the caller heard, as a bar under the bot's lane."""

    start_ms: float
    end_ms: float
    text: str
    """Its words (its tooltip)."""
    interrupted: bool = False
    """Cut off (drawn red)."""


@dataclass(frozen=True, slots=True)
class CallerSpan:
    """One caller turn (speech, a recording played, keys), as a bar under the caller's lane."""

    start_ms: float
    end_ms: float
    kind: str
    detail: str
    barge_in: bool = False
    latency_ms: float | None = None
    """End of the turn → the bot's next audio heard; drawn as a bracket."""


MomentKind = Literal["clear", "barge_in", "mark", "digit"]


@dataclass(frozen=True, slots=True)
class Moment:
    """An instant on the timeline: a ``clear``, a barge-in, a mark echoed, a key pressed."""

    at_ms: float
    kind: MomentKind
    label: str


@dataclass(frozen=True, slots=True)
class Badge:
    """A verdict shown beside a transcript line (the tester's checks)."""

    status: Literal["pass", "fail", "inconclusive"]
    name: str


@dataclass(frozen=True, slots=True)
class TranscriptRow:
    at_ms: float
    who: str
    """``bot``, ``caller``, ``caller (barge-in)``, ``end``... (``bot`` and ``caller*`` coloured)."""
    text: str
    """What was said (for the bot: what the caller heard)."""
    unheard: str = ""
    """The bot's words the caller never heard (shown struck through, apart from ``text``)."""
    note: str = ""
    """After the words, in grey (``cut off by speech``, a latency)."""
    badges: tuple[Badge, ...] = ()


@dataclass(slots=True)
class CallView:
    duration_ms: float
    """The timeline's length (at least a second)."""
    caller_peaks: Peaks = ()
    bot_peaks: Peaks = ()
    """Envelopes of the two channels (empty: no recording to draw)."""
    utterances: list[BotSpan] = field(default_factory=list)
    turns: list[CallerSpan] = field(default_factory=list)
    moments: list[Moment] = field(default_factory=list)
    transcript: list[TranscriptRow] = field(default_factory=list)
    audio_src: str | None = None
    """The stereo recording for the player: a ``data:`` URI or a URL; None: no player."""
    bot_lane: str = "bot (heard)"
