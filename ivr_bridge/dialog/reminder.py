"""The appointment reminder: an outbound call app that tells people from machines.

With asynchronous answering-machine detection Twilio connects the call at once and decides who
answered a few seconds later (``AnsweredBy`` arrives as a caller input). So the call opens with
one short, neutral line that is fine for either ("Hello, this is the clinic calling"), then
waits for the verdict, listening:

- ``human`` or ``unknown``: a light identity check ("Am I speaking with Ana?") before any
  detail, then the appointment and the choices, by key or by voice (a pocketsphinx grammar;
  an answer heard with low confidence is asked again, never acted on): 1 / "confirm",
  2 / "reschedule", 3 / "cancel", 9 / "stop calling", * / "repeat". No answer twice: the call
  ends without a decision.
- ``machine_start``: silence until the greeting ends (``machine_end_*``): the message must never
  be spoken over the greeting. Then the voicemail, which holds no private detail (who called,
  "about an upcoming appointment", a number to call back), and hang up.
- ``fax``: hang up.

What was decided goes to the ``ReminderBackend`` (the campaign store) before the goodbye, so a
callee who hangs up during it still counts. The dialog never learns about campaigns: it reads
its words' details and reports a decision through that one small interface. The words are a
script in ``flows/reminders/`` (``campaign.script``), in the contact's language; a language
without phrases is answered by key only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ivr_bridge.call.app import DEFAULT_FAILURE, AppFactory, AppUnavailable, FailurePolicy
from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.call.inputs import AnsweredBy, DtmfInput, SpeechInput
from ivr_bridge.campaign.reminder import ReminderBackend
from ivr_bridge.campaign.script import (
    DEFAULT_SCRIPT,
    SCRIPTS_SUBDIR,
    Phrases,
    ReminderScript,
)
from ivr_bridge.dialog.services import FlowServices, GrammarChoice, RecognizerUnavailable
from ivr_bridge.recognition.models import GrammarError

REMINDER_APP = "reminder"
ATTEMPT_PARAMETER = "attempt"
SCRIPT_PARAMETER = "script"
LANGUAGE_PARAMETER = "language"
AMD_WAIT_MS = 6_000
"""How long after the opening line the call waits for the machine verdict (then: a person)."""
GREETING_WAIT_MS = 30_000
"""How long a machine's greeting may run before the message is left anyway."""
CHOICE_WAIT_MS = 8_000
CHOICES = {"1": "confirmed", "2": "rescheduled", "3": "cancelled", "9": "opted_out"}
MIN_CONFIDENCE = 0.4
"""A spoken answer below this grammar confidence is asked again rather than acted on: a
wrongly heard "cancel" costs a patient their appointment."""
IDENTITY_KEYS = {"1": "right_person", "2": "wrong_person"}
OFFER_KEYS = {"1": "confirm", "2": "reschedule", "3": "cancel", "9": "stop", "*": "repeat"}
"""Key → the script's phrases that mean it (fixed: a key decides the reported outcome)."""


def grammar(phrases: Phrases, keys: Mapping[str, str]) -> dict[str, GrammarChoice]:
    """Key → what may be said instead (keys whose phrases are empty are keys only)."""
    return {
        key: GrammarChoice(name, getattr(phrases, name))
        for key, name in keys.items()
        if getattr(phrases, name)
    }


@dataclass(frozen=True, slots=True)
class ReminderApp:
    attempt_id: int
    backend: ReminderBackend
    services: FlowServices
    script: ReminderScript
    words: str
    """The script's language block this call speaks (``en``, ``es``...)."""
    name: str = REMINDER_APP
    failure: FailurePolicy = DEFAULT_FAILURE

    @property
    def voice(self) -> str | None:
        return self.script.languages[self.words].voice

    @property
    def language(self) -> str | None:
        return self.words.split("-")[0]

    async def run(self, call: CallControl) -> None:
        details = await self.backend.reminder_details(self.attempt_id)
        if details is None:
            call.record_event("reminder_unknown_attempt", attempt=self.attempt_id)
            await call.hangup()
            return

        def line(part: str) -> str:
            return self.script.say(self.words, part, details)

        await call.say(line("opening"), barge_in=BargeInPolicy("none"))
        verdict = await self._answered_by(call, AMD_WAIT_MS)
        if verdict == "machine_start":
            verdict = await self._answered_by(call, GREETING_WAIT_MS, past_start=True)
        if verdict == "fax":
            await call.hangup()
            return
        if verdict is not None and verdict.startswith("machine"):
            await call.say(line("voicemail"), barge_in=BargeInPolicy("none"))
            await self.backend.report_reminder(
                self.attempt_id, call.details.call_sid, decision=None, voicemail_left=True
            )
            await call.hangup()
            return
        await self._person(call, line)

    async def _answered_by(
        self, call: CallControl, wait_ms: float, *, past_start: bool = False
    ) -> str | None:
        """The machine verdict, waiting up to ``wait_ms`` of call time (None: not known)."""
        deadline = call.clock.now_ms() + wait_ms
        while (left := deadline - call.clock.now_ms()) > 0:
            item = await call.next_input(left)
            if item is None:
                return None
            if isinstance(item, AnsweredBy):
                if past_start and item.answered_by == "machine_start":
                    continue
                return item.answered_by
            if isinstance(item, DtmfInput) and not past_start:
                return "human"  # machines do not press keys
        return None

    async def _person(self, call: CallControl, line: Callable[[str], str]) -> None:
        call.discard_inputs(keys=False)
        phrases = self.script.languages[self.words].phrases
        key = await self._ask(
            call, line("identity"), set(IDENTITY_KEYS), grammar(phrases, IDENTITY_KEYS)
        )
        if key != "1":
            await call.say(line("wrong_person"))
            await call.hangup()
            return
        key = await self._ask(
            call, line("offer"), set(OFFER_KEYS), grammar(phrases, OFFER_KEYS), repeat_key="*"
        )
        decision = CHOICES.get(key or "")
        await self.backend.report_reminder(
            self.attempt_id, call.details.call_sid, decision=decision, voicemail_left=False
        )
        await call.say(line(f"closing.{decision or 'no_decision'}"))
        await call.hangup()

    async def _ask(
        self,
        call: CallControl,
        prompt: str,
        keys: set[str],
        choices: dict[str, GrammarChoice],
        *,
        repeat_key: str | None = None,
    ) -> str | None:
        """Say ``prompt`` (a key, or speech when there are phrases, cuts it) and wait for one
        of ``keys``, or a phrase of ``choices`` (answered as its key); twice, then None."""
        barge_in = BargeInPolicy("any" if choices else "dtmf")
        for _ in range(2):
            await call.say(prompt, barge_in=barge_in)
            while True:
                item = await call.next_input(CHOICE_WAIT_MS)
                if item is None:
                    break
                answer = None
                if isinstance(item, DtmfInput) and item.digit in keys:
                    answer = item.digit
                elif isinstance(item, SpeechInput) and choices:
                    answer = await self._heard(call, item, choices)
                    if answer is None:
                        break  # not understood: ask again
                if answer is None:
                    continue
                if answer == repeat_key:
                    break
                return answer
        return None

    async def _heard(
        self, call: CallControl, item: SpeechInput, choices: dict[str, GrammarChoice]
    ) -> str | None:
        by_id = {choice.id: key for key, choice in choices.items()}
        try:
            result = await self.services.grammar().recognize(
                item.pcm16, 8000, list(choices.values())
            )
        except (RecognizerUnavailable, GrammarError) as exc:
            call.record_event("recognition_unavailable", error=str(exc))
            return None
        accepted = result.choice is not None and result.confidence >= MIN_CONFIDENCE
        call.record_event(
            "recognition",
            text=result.text,
            choice=result.choice,
            confidence=round(result.confidence, 3),
            accepted=accepted,
        )
        return by_id.get(result.choice or "") if accepted else None


def reminder_app_factory(
    backend: ReminderBackend,
    scripts: Mapping[str, ReminderScript],
    services: Callable[[], FlowServices] = FlowServices,
) -> AppFactory:
    """Reminder calls by their start parameters: the attempt, the script (default
    ``appointment``) and the contact's language (a block the script lacks: its first one)."""

    def factory(parameters: Mapping[str, str]) -> ReminderApp:
        raw = parameters.get(ATTEMPT_PARAMETER, "")
        if not raw.isdigit():
            raise AppUnavailable(f"a reminder call needs its attempt id (got {raw!r})")
        name = parameters.get(SCRIPT_PARAMETER) or DEFAULT_SCRIPT
        script = scripts.get(name)
        if script is None:
            raise AppUnavailable(
                f"no reminder script {name!r} in flows/{SCRIPTS_SUBDIR} "
                f"(there are: {', '.join(scripts) or 'none'})"
            )
        language = parameters.get(LANGUAGE_PARAMETER, "")
        words = script.language_for(language) or next(iter(script.languages))
        return ReminderApp(int(raw), backend, services(), script, words)

    return factory
