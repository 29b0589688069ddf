"""JSGF grammars built from the options a gather step expects, and mapping results back to ids.

Callers rarely say just the option: "uh, billing please", "I'd like technical support". So each
grammar wraps the choices in optional loops of common filler words before and after. A filler that
is itself an option ("yes", "no") is left out of the loops, so it can only ever mean that option.
Pure functions: no decoder needed, so all of this is unit-tested directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ivr_bridge.recognition.models import GrammarChoice, GrammarError
from ivr_bridge.recognition.text import DIGIT_WORDS, normalize_phrase, spoken_digits

LEADING_FILLERS: tuple[str, ...] = (
    "uh",
    "um",
    "okay",
    "yeah",
    "yes",
    "please",
    "i'd like",
    "i want",
    "i want to",
    "i need",
    "i need to",
    "speak to",
    "talk to",
)
"""Words and short phrases callers put before the option.

Deliberately no one-syllable function words ("the", "a", "to" alone): in a loop they are acoustic
sinks that swallow the option itself (measured: accuracy fell from ~90% to ~40%).
"""

TRAILING_FILLERS: tuple[str, ...] = (
    "please",
    "thanks",
    "thank you",
    "uh",
    "um",
)
"""Words and short phrases callers put after the option."""


@dataclass(frozen=True, slots=True)
class GrammarPlan:
    """A normalised grammar: phrase -> choice id and the filler phrases in force."""

    phrases: dict[str, str]
    leading: tuple[str, ...]
    trailing: tuple[str, ...]

    @property
    def words(self) -> set[str]:
        """Every word the grammar can produce (for the dictionary check)."""
        found: set[str] = set()
        for phrase in (*self.phrases, *self.leading, *self.trailing):
            found.update(phrase.split())
        return found


def yes_no_choices() -> list[GrammarChoice]:
    """The confirm/deny grammar most flows need."""
    return [
        GrammarChoice("yes", ("yes", "yeah", "yep", "correct", "that's right", "sure", "okay")),
        GrammarChoice("no", ("no", "nope", "wrong", "that's wrong", "not really")),
    ]


def plan_grammar(choices: Sequence[GrammarChoice], *, fillers: bool = True) -> GrammarPlan:
    """Normalise the choices' phrases and pick the fillers that cannot be mistaken for them."""
    if not choices:
        raise GrammarError("a grammar needs at least one choice")
    phrases: dict[str, str] = {}
    for choice in choices:
        normalised = [p for p in (normalize_phrase(raw) for raw in choice.phrases) if p]
        if not normalised:
            raise GrammarError(f"choice {choice.id!r} has no speakable phrase")
        for phrase in normalised:
            owner = phrases.setdefault(phrase, choice.id)
            if owner != choice.id:
                raise GrammarError(f"phrase {phrase!r} belongs to both {owner!r} and {choice.id!r}")
    if not fillers:
        return GrammarPlan(phrases, (), ())
    return GrammarPlan(
        phrases,
        _usable_fillers(LEADING_FILLERS, phrases),
        _usable_fillers(TRAILING_FILLERS, phrases),
    )


_ANSWER_WORDS = frozenset({"yes", "yeah", "yep", "okay", "no", "nope", "sure"})
"""Short answers: when a grammar listens for any of them, none may be a filler ("yeah" would
otherwise out-score "yes" and turn "yes" into filler + "no")."""


def _usable_fillers(candidates: Iterable[str], phrases: dict[str, str]) -> tuple[str, ...]:
    """Drop fillers that are, or contain, a one-word choice (or any answer word, when one is)."""
    choice_words = {word for phrase in phrases for word in phrase.split()}
    single_words = {phrase for phrase in phrases if " " not in phrase}
    banned = single_words | (_ANSWER_WORDS if choice_words & _ANSWER_WORDS else set())
    return tuple(
        filler
        for filler in candidates
        if filler not in phrases and not banned.intersection(filler.split())
    )


def build_jsgf(choices: Sequence[GrammarChoice], *, fillers: bool = True) -> str:
    """A JSGF grammar accepting one choice phrase, optionally wrapped in filler loops."""
    return plan_to_jsgf(plan_grammar(choices, fillers=fillers))


def plan_to_jsgf(plan: GrammarPlan) -> str:
    by_choice: dict[str, list[str]] = {}
    for phrase, choice_id in plan.phrases.items():
        by_choice.setdefault(choice_id, []).append(phrase)
    lines = ["#JSGF V1.0;", "grammar ivr;"]
    body = "(" + " | ".join(f"<choice{i}>" for i in range(len(by_choice))) + ")"
    if plan.leading:
        body = f"[<leading>] {body}"
    if plan.trailing:
        body = f"{body} [<trailing>]"
    lines.append(f"public <utterance> = {body};")
    for index, (choice_id, choice_phrases) in enumerate(by_choice.items()):
        lines.append(f"// {_comment_safe(choice_id)}")
        lines.append(f"<choice{index}> = {' | '.join(choice_phrases)};")
    if plan.leading:
        lines.append(f"<leading> = ({' | '.join(plan.leading)})+;")
    if plan.trailing:
        lines.append(f"<trailing> = ({' | '.join(plan.trailing)})+;")
    return "\n".join(lines) + "\n"


DIGIT_FILLERS: tuple[str, ...] = ("please", "thanks", "thank you", "it's", "it is", "my number is")
"""Fillers allowed around spoken digits. No "uh"/"um": they swallow a short final digit."""


def digits_jsgf() -> str:
    """A grammar for a number read digit by digit ("one two three", "oh")."""
    digits = " | ".join(DIGIT_WORDS)
    fillers = " | ".join(DIGIT_FILLERS)
    return (
        "#JSGF V1.0;\ngrammar digits;\n"
        "public <utterance> = [<fillers>] <digit>+ [<fillers>];\n"
        f"<digit> = {digits};\n<fillers> = ({fillers})+;\n"
    )


def _comment_safe(text: str) -> str:
    return " ".join(text.split()).replace("*/", "")


def clean_hypothesis(text: str) -> list[str]:
    """Decoder output as plain words (drops <sil>, [NOISE] and alternate-pronunciation marks)."""
    words = []
    for token in text.split():
        if token.startswith(("<", "[", "+")):
            continue
        words.append(token.split("(")[0].lower())
    return words


def match_choice(text: str, plan: GrammarPlan) -> str | None:
    """The choice id when ``text`` is fillers + exactly one phrase + fillers, else None.

    The decoder may return a partial path (a prefix of the grammar) when no complete sentence
    survived its beam; such text must not select an option, so the whole text has to parse.
    """
    words = clean_hypothesis(text)
    best: tuple[int, str] | None = None
    for phrase, choice_id in plan.phrases.items():
        wanted = phrase.split()
        size = len(wanted)
        for start in range(len(words) - size + 1):
            if words[start : start + size] != wanted:
                continue
            if _is_filler_run(words[:start], plan.leading) and _is_filler_run(
                words[start + size :], plan.trailing
            ):
                if best is None or size > best[0]:
                    best = (size, choice_id)
    return best[1] if best else None


def match_digits(text: str) -> str | None:
    """'uh one two three please' -> '123'; None when it is not fillers around digits."""
    words = clean_hypothesis(text)
    digit_positions = [i for i, w in enumerate(words) if w in DIGIT_WORDS]
    if not digit_positions:
        return None
    first, last = digit_positions[0], digit_positions[-1]
    if not _is_filler_run(words[:first], DIGIT_FILLERS) or not _is_filler_run(
        words[last + 1 :], DIGIT_FILLERS
    ):
        return None
    return spoken_digits(" ".join(words[first : last + 1]))


def _is_filler_run(words: list[str], fillers: tuple[str, ...]) -> bool:
    """Whether ``words`` splits into a sequence of filler phrases (empty counts)."""
    options = [f.split() for f in fillers]
    reachable = [True] + [False] * len(words)
    for end in range(1, len(words) + 1):
        reachable[end] = any(
            len(opt) <= end and reachable[end - len(opt)] and words[end - len(opt) : end] == opt
            for opt in options
        )
    return reachable[-1]
