"""The reminder's words: a script file per campaign in flows/reminders/, a block per language.

A broken script is refused with its file and line before any callee hears it; a call speaks the
contact's language; a contact the words cannot be said to is refused at import."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr_bridge.call.app import AppUnavailable
from ivr_bridge.call.inputs import AnsweredBy, DtmfInput
from ivr_bridge.call.testing import ScriptedCall, digits, utterance
from ivr_bridge.campaign.contacts import parse_contacts
from ivr_bridge.campaign.reminder import ReminderDetails
from ivr_bridge.campaign.script import ReminderScript, load_script, load_scripts
from ivr_bridge.config import DEFAULT_FLOWS_DIR
from ivr_bridge.dialog.reminder import ReminderApp, reminder_app_factory
from ivr_bridge.errors import CallEnding, CampaignError

SHIPPED = load_scripts(DEFAULT_FLOWS_DIR)
DETAILS = ReminderDetails(
    name="Ana Diaz",
    appointment=datetime(2026, 12, 4, 9, 5),
    business="Clínica Elm",
    callback_number="+15005550006",
    fields={"room": "3B"},
)


class Backend:
    def __init__(self) -> None:
        self.reports: list[tuple[str | None, bool]] = []

    async def reminder_details(self, attempt_id: int) -> ReminderDetails | None:
        return DETAILS if attempt_id == 7 else None

    async def report_reminder(
        self, attempt_id: int, call_sid: str, *, decision: str | None, voicemail_left: bool
    ) -> None:
        self.reports.append((decision, voicemail_left))


def app(parameters: Mapping[str, str], backend: Backend | None = None) -> ReminderApp:
    return reminder_app_factory(backend or Backend(), SHIPPED)(parameters)  # type: ignore[return-value]


def test_the_shipped_script_speaks_english_and_spanish() -> None:
    script = SHIPPED["appointment"]
    assert set(script.languages) == {"en", "es"}
    assert script.say("en", "offer", DETAILS).startswith(
        "You have an appointment on Friday, December 4, at 9:05 AM."
    )
    assert script.say("es", "offer", DETAILS).startswith(
        "Tiene una cita el viernes 4 de diciembre a las 9:05."
    )
    assert "1 5 0 0 5 5 5 0 0 0 6" in script.say("es", "voicemail", DETAILS)
    assert (script.language_for("es-MX"), script.language_for("EN-us")) == ("es", "en")
    assert script.language_for("fr") is None


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "reminders" / "clinic.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


GOOD_EN = """\
    opening: "Hello, this is {{ business }}."
    identity: "Is this {{ first_name }}? Press 1 for yes, 2 for no."
    wrong_person: Sorry. Goodbye.
    offer: "Your appointment is {{ weekday }} in room {{ fields.room }}. Press 1 to confirm."
    voicemail: "Please call {{ callback_number | digits }}."
    closing:
      confirmed: Confirmed.
      rescheduled: We will call you.
      cancelled: Cancelled.
      opted_out: No more calls.
      no_decision: Please call us.
"""


def test_a_misspelt_variable_is_refused_with_its_file_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: clinic\nlanguages:\n  en:\n"
        + GOOD_EN.replace("{{ first_name }}", "{{ frist_name }}"),
    )
    with pytest.raises(CampaignError) as caught:
        load_script(path)
    assert str(caught.value).startswith(f"{path}:5: languages.en.identity:")
    assert "frist_name" in str(caught.value)


def test_a_bare_yes_key_is_explained(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: clinic\nlanguages:\n  en:\n" + GOOD_EN + "    phrases:\n      yes: [yes]\n",
    )
    with pytest.raises(
        CampaignError, match=r"clinic.yaml:16: languages.en.phrases.True: .*quote it"
    ):
        load_script(path)


def test_missing_words_and_a_wrong_name_are_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "name: clinic\nlanguages:\n  en:\n" + GOOD_EN.replace("    offer", "    offr")
    )
    with pytest.raises(CampaignError) as caught:
        load_script(path)
    assert f"{path}:7: languages.en.offr: Extra inputs are not permitted" in str(caught.value)
    assert f"{path}:3: languages.en.offer: Field required" in str(caught.value)  # the en: block
    path.write_text("name: other\nlanguages:\n  en:\n" + GOOD_EN, encoding="utf-8")
    with pytest.raises(CampaignError, match="differs from the file's"):
        load_script(path)


def test_an_import_refuses_contacts_the_words_cannot_be_said_to(tmp_path: Path) -> None:
    script = load_script(_write(tmp_path, "name: clinic\nlanguages:\n  en:\n" + GOOD_EN))
    csv = (
        "phone,name,appointment,timezone,language,room\n"
        "+13125550100,Ana Diaz,2026-12-03 14:30,America/Chicago,en-US,3B\n"
        "+13125550101,Luc Petit,2026-12-03 14:30,America/Chicago,fr,4A\n"
        "+13125550102,Bo Chen,2026-12-03 14:30,America/Chicago,en,\n"
    )
    result = parse_contacts(
        io.StringIO(csv, newline=""),
        "c.csv",
        now=datetime(2026, 12, 1, tzinfo=UTC),
        script=script,
    )
    assert [c.phone for c in result.contacts] == ["+13125550100", "+13125550102"]
    [problem] = [str(p) for p in result.problems]
    assert problem.startswith("c.csv:3: language 'fr': the reminder script 'clinic' speaks en")
    # An empty cell is still a field: the words say "room" and nothing; a column the words
    # use but the file lacks is refused.
    without_room = csv.replace(",room", "").replace(",3B", "").replace(",4A", "")
    result = parse_contacts(
        io.StringIO(without_room.replace("en,\n", "en\n"), newline=""),
        "c.csv",
        now=datetime(2026, 12, 1, tzinfo=UTC),
        script=script,
    )
    assert result.contacts == []
    assert "c.csv:2: the reminder script's offer cannot be said to this contact" in str(
        result.problems[0]
    )
    assert "room" in str(result.problems[0])


async def test_a_spanish_contact_hears_spanish_and_answers_by_key() -> None:
    backend = Backend()
    reminder = app({"attempt": "7", "language": "es-MX"}, backend)
    assert (reminder.language, reminder.words) == ("es", "es")
    call = ScriptedCall(
        [
            AnsweredBy("human", 900.0),
            utterance("sí, soy yo"),  # no Spanish phrases: speech does not answer...
            *digits("1"),  # ...a key does
            *digits("1"),
        ]
    )
    with pytest.raises(CallEnding):
        await reminder.run(call)
    assert call.said[0] == "Hola, le llama Clínica Elm."
    assert call.said[1].startswith("¿Hablo con Ana?")
    assert call.said[2].startswith("Tiene una cita el viernes 4 de diciembre a las 9:05.")
    assert call.said[-1] == "Gracias, su cita está confirmada. Adiós."
    assert backend.reports == [("confirmed", False)]
    assert all(p is not None and p.mode == "dtmf" for p in call.policies[1:3])


async def test_an_english_contact_may_answer_by_voice_or_key() -> None:
    reminder = app({"attempt": "7", "language": "en-US"})
    assert (reminder.language, reminder.words) == ("en", "en")
    call = ScriptedCall([AnsweredBy("human", 900.0), DtmfInput("1", 2000.0), None, None])
    with pytest.raises(CallEnding):
        await reminder.run(call)
    assert call.said[1].startswith("Am I speaking with Ana?")
    assert call.policies[1] is not None and call.policies[1].mode == "any"
    assert call.said[-1].startswith("We did not get an answer. Please call us at 1 5 0 0")


def test_a_language_the_script_lacks_gets_its_first_block_and_a_missing_script_apologises() -> None:
    assert app({"attempt": "7", "language": "fr"}).words == "en"
    assert app({"attempt": "7"}).script.name == "appointment"
    with pytest.raises(AppUnavailable, match=r"no reminder script 'flu'.*there are: appointment"):
        app({"attempt": "7", "script": "flu"})
    with pytest.raises(AppUnavailable, match="attempt id"):
        app({"script": "appointment"})


def test_every_shipped_script_loads() -> None:
    assert SHIPPED and all(isinstance(s, ReminderScript) for s in SHIPPED.values())
