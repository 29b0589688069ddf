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
its words' details and reports a decision through that one small interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ivr_bridge.call.app import DEFAULT_FAILURE, AppFactory, AppUnavailable, FailurePolicy
from ivr_bridge.call.control import BargeInPolicy, CallControl
from ivr_bridge.call.inputs import AnsweredBy, DtmfInput, SpeechInput
from ivr_bridge.campaign.reminder import ReminderBackend, ReminderDetails
from ivr_bridge.dialog.services import FlowServices, GrammarChoice, RecognizerUnavailable
from ivr_bridge.recognition.models import GrammarError

REMINDER_APP = "reminder"
ATTEMPT_PARAMETER = "attempt"
AMD_WAIT_MS = 6_000
"""How long after the opening line the call waits for the machine verdict (then: a person)."""
GREETING_WAIT_MS = 30_000
"""How long a machine's greeting may run before the message is left anyway."""
CHOICE_WAIT_MS = 8_000
CHOICES = {"1": "confirmed", "2": "rescheduled", "3": "cancelled", "9": "opted_out"}
MIN_CONFIDENCE = 0.4
"""A spoken answer below this grammar confidence is asked again rather than acted on: a
wrongly heard "cancel" costs a patient their appointment."""
IDENTITY = {
    "1": GrammarChoice(
        "yes", ("yes", "yeah", "speaking", "this is she", "this is he", "that's me")
    ),
    "2": GrammarChoice("no", ("no", "wrong number", "they are not here", "not me")),
}
"""Key → the spoken phrases that mean it."""
OFFER = {
    "1": GrammarChoice("confirm", ("confirm", "yes", "i will be there", "keep it")),
    "2": GrammarChoice(
        "reschedule", ("reschedule", "change it", "another time", "a different day")
    ),
    "3": GrammarChoice("cancel", ("cancel", "cancel it", "i can't make it")),
    "9": GrammarChoice("stop", ("stop calling", "do not call", "don't call me", "remove me")),
    "*": GrammarChoice("repeat", ("repeat", "say that again")),
}


def spoken_time(when: datetime) -> str:
    hour = when.strftime("%I").lstrip("0")
    minutes = "" if when.minute == 0 else f":{when.minute:02d}"
    return f"{when.strftime('%A, %B')} {when.day}, at {hour}{minutes} {when.strftime('%p')}"


def spoken_number(number: str) -> str:
    return " ".join(number.lstrip("+"))


@dataclass(frozen=True, slots=True)
class ReminderApp:
    attempt_id: int
    backend: ReminderBackend
    services: FlowServices
    name: str = REMINDER_APP
    voice: str | None = None
    failure: FailurePolicy = DEFAULT_FAILURE

    async def run(self, call: CallControl) -> None:
        details = await self.backend.reminder_details(self.attempt_id)
        if details is None:
            call.record_event("reminder_unknown_attempt", attempt=self.attempt_id)
            await call.hangup()
            return
        first = details.name.split()[0]
        await call.say(
            f"Hello, this is {details.business} calling.", barge_in=BargeInPolicy("none")
        )
        verdict = await self._answered_by(call, AMD_WAIT_MS)
        if verdict == "machine_start":
            verdict = await self._answered_by(call, GREETING_WAIT_MS, past_start=True)
        if verdict == "fax":
            await call.hangup()
            return
        if verdict is not None and verdict.startswith("machine"):
            await self._voicemail(call, details, first)
            return
        await self._person(call, details, first)

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

    async def _voicemail(self, call: CallControl, details: ReminderDetails, first: str) -> None:
        await call.say(
            f"Hello, this is {details.business} with a message for {first} about an upcoming "
            f"appointment. Please call us back at {spoken_number(details.callback_number)}. "
            "Thank you, goodbye.",
            barge_in=BargeInPolicy("none"),
        )
        await self.backend.report_reminder(
            self.attempt_id, call.details.call_sid, decision=None, voicemail_left=True
        )
        await call.hangup()

    async def _person(self, call: CallControl, details: ReminderDetails, first: str) -> None:
        call.discard_inputs(keys=False)
        key = await self._ask(
            call,
            f"Am I speaking with {first}? Say yes or press 1. Say no or press 2.",
            IDENTITY,
        )
        if key != "1":
            await call.say("Sorry for the trouble. We will try again another time. Goodbye.")
            await call.hangup()
            return
        offer = (
            f"You have an appointment on {spoken_time(details.appointment)}. "
            "To confirm it, say confirm or press 1. To reschedule, say reschedule or press 2. "
            "To cancel, say cancel or press 3. If you do not want these calls, say stop "
            "calling or press 9. To hear this again, press star."
        )
        key = await self._ask(call, offer, OFFER, repeat_key="*")
        decision = CHOICES.get(key or "")
        await self.backend.report_reminder(
            self.attempt_id, call.details.call_sid, decision=decision, voicemail_left=False
        )
        closing = {
            "confirmed": "Thank you, your appointment is confirmed. Goodbye.",
            "rescheduled": "Thank you. Someone will call you to find a new time. Goodbye.",
            "cancelled": "Your appointment is cancelled. Thank you for letting us know. Goodbye.",
            "opted_out": "You will not get these calls from us again. Goodbye.",
        }.get(
            decision or "",
            f"We did not get an answer. Please call us at "
            f"{spoken_number(details.callback_number)}. Goodbye.",
        )
        await call.say(closing)
        await call.hangup()

    async def _ask(
        self,
        call: CallControl,
        prompt: str,
        choices: dict[str, GrammarChoice],
        *,
        repeat_key: str | None = None,
    ) -> str | None:
        """Say ``prompt`` (a key or speech cuts it) and wait for a key of ``choices``, or a
        phrase of one (answered as its key); twice, then None."""
        keys = set(choices)
        for _ in range(2):
            await call.say(prompt, barge_in=BargeInPolicy("any"))
            while True:
                item = await call.next_input(CHOICE_WAIT_MS)
                if item is None:
                    break
                answer = None
                if isinstance(item, DtmfInput) and item.digit in keys:
                    answer = item.digit
                elif isinstance(item, SpeechInput):
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
    backend: ReminderBackend, services: Callable[[], FlowServices] = FlowServices
) -> AppFactory:
    def factory(parameters: Mapping[str, str]) -> ReminderApp:
        raw = parameters.get(ATTEMPT_PARAMETER, "")
        if not raw.isdigit():
            raise AppUnavailable(f"a reminder call needs its attempt id (got {raw!r})")
        return ReminderApp(int(raw), backend, services())

    return factory
