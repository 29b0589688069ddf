"""Menu recognition with a second opinion: pocketsphinx first, whisper when it is unsure.

The grammar decoder answers in ~50 ms and is right most of the time, but on short words inside a
phone call it is often unsure, or confidently picks an option of similar length ("agent please"
heard as "uh goodbye please"). Whisper tiny.en is far better at *what words were said* but slower
(~0.1 x real time here) and knows nothing of the menu. So: accept a confident grammar decode as
it is; otherwise transcribe free-form (the menu's phrases as whisper's prompt) and map whisper's
words onto the same options. Whisper's text is free-form ("I want an agent"), so an option
counts as named when one of its phrases appears as whole words and no other option's does; then
whisper's reading wins. When it names none (or several), the grammar's own verdict stands
(accepted only above its rejection threshold).
"""

from __future__ import annotations

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

CONFIRM_BELOW = 0.6
"""Grammar decodes less confident than this are checked with whisper."""


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
        confirm_below: float = CONFIRM_BELOW,
    ) -> None:
        self._grammar = grammar
        self._transcriber = transcriber
        self._confirm_below = confirm_below

    async def recognize(
        self, pcm16: bytes, sample_rate: int, choices: Sequence[GrammarChoice]
    ) -> Recognition:
        started = time.perf_counter()
        first = await self._grammar.recognize(pcm16, sample_rate, choices)
        if first.choice is not None and first.confidence >= self._confirm_below:
            return first
        try:
            transcriber = self._transcriber()
        except RecognizerUnavailable:
            return first
        second = await transcriber.transcribe(pcm16, sample_rate, hint=menu_hint(choices))
        named = named_choices(second.text, plan_grammar(choices))
        choice = named[0] if len(named) == 1 else None
        elapsed_ms = (time.perf_counter() - started) * 1000
        engine = f"{first.engine}+{second.engine}"
        log.debug(
            "second opinion",
            grammar_text=first.text,
            grammar_choice=first.choice,
            grammar_confidence=round(first.confidence, 3),
            whisper_text=second.text,
            whisper_choice=choice,
        )
        if choice is None:
            reason = first.reason
            if first.choice is None:
                reason = _second_reason(first, second.text, named)
            return Recognition(
                first.text, first.choice, first.confidence, engine, elapsed_ms, reason
            )
        agreed = choice == first.choice
        confidence = max(second.confidence, first.confidence) if agreed else second.confidence
        return Recognition(second.text, choice, confidence, engine, elapsed_ms)


def menu_hint(choices: Sequence[GrammarChoice]) -> str:
    """The menu's phrases as whisper's prompt ("Billing, pay my bill, agent."): the words the
    caller is likely to say, written as they should come back."""
    phrases = [phrase for choice in choices for phrase in choice.phrases]
    return (", ".join(dict.fromkeys(phrases)) + ".").capitalize() if phrases else ""


def named_choice(text: str, plan: GrammarPlan) -> str | None:
    """The one option whose phrase occurs in free-form ``text`` as whole words, if exactly one."""
    named = named_choices(text, plan)
    return named[0] if len(named) == 1 else None


def named_choices(text: str, plan: GrammarPlan) -> list[str]:
    """Every option a phrase of which occurs in free-form ``text`` as whole words, in order."""
    words = f" {' '.join(clean_hypothesis(normalize_phrase(text)))} "
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
