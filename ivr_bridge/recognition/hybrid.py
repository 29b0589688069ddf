"""Menu recognition by two listeners at once: a pocketsphinx grammar and whisper.

The grammar decoder answers in ~50 ms but knows only the menu: it forces any sound onto an
option, often confidently ("I am driving right now" read as "i'd like uh refill" at 0.69,
"cancel" as "confirm" at 1.0). Whisper tiny.en (the menu's phrases as its prompt) is far better
at *what words were said*. Measured over 11 caller voices and four menus, trusting the grammar
when confident accepted 19 % of out-of-menu speech; letting whisper's words decide accepts under
1 %. So both run on every answer, in parallel:

- whisper's words name exactly one option (as whole words, "I want an agent"): that option;
- they name several: no answer (the caller is asked again);
- they name none: a grammar decode of at least ``trust_grammar_from`` stands (whisper garbles
  some short answers, "status" as "Data."), anything less is rejected; when whisper heard no
  words at all the grammar's own verdict stands.

Without whisper installed the grammar decides alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from ivr_bridge.recognition.grammar import GrammarPlan, clean_hypothesis, plan_grammar
from ivr_bridge.recognition.models import (
    GrammarChoice,
    Recognition,
    RecognizerUnavailable,
    Transcription,
)
from ivr_bridge.recognition.text import normalize_phrase

log = structlog.get_logger(__name__)

TRUST_GRAMMAR_FROM = 0.7
"""A grammar decode this confident stands when whisper's words name no option (whisper garbled
a short, robotic answer); below it, whisper's words outside the menu reject the answer."""


class _Grammar(Protocol):
    async def recognize(
        self, pcm16: bytes, sample_rate: int, choices: Sequence[GrammarChoice]
    ) -> Recognition: ...


class _Transcriber(Protocol):
    async def transcribe(
        self, pcm16: bytes, sample_rate: int, *, hint: str | None = None
    ) -> Transcription: ...


class HybridGrammarRecognizer:
    def __init__(
        self,
        grammar: _Grammar,
        transcriber: Callable[[], _Transcriber],
        *,
        trust_grammar_from: float = TRUST_GRAMMAR_FROM,
    ) -> None:
        self._grammar = grammar
        self._transcriber = transcriber
        self._trust_grammar_from = trust_grammar_from

    async def recognize(
        self, pcm16: bytes, sample_rate: int, choices: Sequence[GrammarChoice]
    ) -> Recognition:
        started = time.perf_counter()
        try:
            transcriber = self._transcriber()
        except RecognizerUnavailable:
            return await self._grammar.recognize(pcm16, sample_rate, choices)
        # Both at once, each on its own executor: the answer waits for the slower one only.
        first, second = await asyncio.gather(
            self._grammar.recognize(pcm16, sample_rate, choices),
            transcriber.transcribe(pcm16, sample_rate, hint=menu_hint(choices)),
        )
        named = named_choices(second.text, plan_grammar(choices))
        elapsed_ms = (time.perf_counter() - started) * 1000
        engine = f"{first.engine}+{second.engine}"
        log.debug(
            "second opinion",
            grammar_text=first.text,
            grammar_choice=first.choice,
            grammar_confidence=round(first.confidence, 3),
            whisper_text=second.text,
            whisper_named=named,
        )
        if len(named) == 1:
            choice = named[0]
            agreed = choice == first.choice
            confidence = max(second.confidence, first.confidence) if agreed else second.confidence
            return Recognition(second.text, choice, confidence, engine, elapsed_ms)
        heard_words = bool(normalize_phrase(second.text).split())
        grammar_stands = (
            not named
            and first.choice is not None
            and (not heard_words or first.confidence >= self._trust_grammar_from)
        )
        if grammar_stands:
            return Recognition(
                first.text, first.choice, first.confidence, engine, elapsed_ms, first.reason
            )
        reason = _second_reason(first, second.text, named)
        if first.choice is not None:  # the grammar chose, unsure, and whisper's words disagree
            reason = (
                f'{reason} (the grammar\'s "{first.choice}" at confidence '
                f"{first.confidence:.2f} is below {self._trust_grammar_from:.2f})"
            )
        return Recognition(first.text, None, first.confidence, engine, elapsed_ms, reason)


def menu_hint(choices: Sequence[GrammarChoice]) -> str:
    """The menu's phrases as whisper's prompt, framed as a transcript in which the caller speaks
    next ("Menu options: billing, pay my bill, agent. Caller:"). Measured on single words whisper
    misheard with no prompt ("status" as "Data.", "customer service" as "Have to move through
    this."): a bare list of the phrases got 2 of 15 right, this framing 10."""
    phrases = [phrase for choice in choices for phrase in choice.phrases]
    return f"Menu options: {', '.join(dict.fromkeys(phrases))}. Caller:" if phrases else ""


def named_choice(text: str, plan: GrammarPlan) -> str | None:
    """The one option whose phrase occurs in free-form ``text`` as whole words, if exactly one."""
    named = named_choices(text, plan)
    return named[0] if len(named) == 1 else None


_SAME_AS = {"yeah": "yes", "yep": "yes", "yup": "yes", "nope": "no", "nah": "no"}
"""How whisper writes some answers callers give ("Yeah." for a yes)."""


def named_choices(text: str, plan: GrammarPlan) -> list[str]:
    """Every option a phrase of which occurs in free-form ``text`` as whole words, in order."""
    heard = [_SAME_AS.get(w, w) for w in clean_hypothesis(normalize_phrase(text))]
    words = f" {' '.join(heard)} "
    named = [choice for phrase, choice in plan.phrases.items() if f" {phrase} " in words]
    return list(dict.fromkeys(named))


_COUNTS = {2: "two", 3: "three", 4: "four"}


def _second_reason(first: Recognition, whisper_text: str, named: list[str]) -> str:
    """Neither opinion chose: say what whisper's words named (nothing, or several options)."""
    if len(named) > 1:
        what = f"named {_COUNTS.get(len(named), str(len(named)))} options: {', '.join(named)}"
    else:
        what = "no menu option's words in it"
    if normalize_phrase(whisper_text) == normalize_phrase(first.text):
        return what
    return f'whisper heard "{whisper_text.strip()}": {what}'
