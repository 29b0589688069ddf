"""Contacts from a CSV file, judged row by row.

A clinic's export is never clean: a number without its country code, a zone typed as "EST", an
appointment last week, the same patient twice. Each bad row is named as ``file:line: problem``
(the line its record starts on, so a quoted multi-line cell does not shift the count) and the
good rows import; ``strict`` imports none when any row is bad. A file whose header lacks a
required column is refused whole: every row would be wrong the same way.

Columns (case and surrounding spaces ignored): ``phone`` (E.164; spaces, dots, dashes and
brackets are dropped, so ``+1 (415) 555-0100`` is fine), ``name``, ``appointment`` (ISO 8601,
``2026-12-03 14:30`` meaning the callee's local time, or with an explicit offset), ``timezone``
(IANA, e.g. ``America/Chicago``), optional ``language`` (BCP 47, e.g. ``en-US``); every other
column is a free field the reminder's templates can use.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr_bridge.campaign.reminder import ReminderDetails
from ivr_bridge.campaign.script import SAMPLE, ReminderScript
from ivr_bridge.errors import CampaignError

REQUIRED = ("phone", "name", "appointment", "timezone")
OPTIONAL = ("language",)
E164_PATTERN = r"^\+[1-9]\d{7,14}$"
"""E.164 as Twilio takes it: +, a country code, 8-15 digits in all."""
E164 = re.compile(E164_PATTERN)
_PHONE_NOISE = re.compile(r"[\s().\-]")
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_NAME = 100
MAX_FIELD = 500


@dataclass(frozen=True, slots=True)
class Contact:
    line: int
    """Where the row starts in its file (for messages about it later)."""
    phone: str
    name: str
    appointment: datetime
    """Aware, in UTC."""
    timezone: str
    language: str = "en-US"
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_appointment(self) -> datetime:
        return self.appointment.astimezone(self.zone)


@dataclass(frozen=True, slots=True)
class RowProblem:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


@dataclass
class ContactImport:
    source: str
    contacts: list[Contact] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.contacts) + len(self.problems)

    def report(self) -> str:
        lines = [str(problem) for problem in self.problems]
        lines.append(
            f"{self.source}: {len(self.contacts)} of {self.rows} rows imported"
            + (f", {len(self.problems)} rejected" if self.problems else "")
        )
        return "\n".join(lines)


class ContactsError(CampaignError):
    """A contacts file cannot be imported (a missing column; any bad row under ``strict``)."""

    def __init__(self, problems: list[RowProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


def normalise_phone(raw: str) -> str:
    """``+1 (415) 555-0100`` → ``+14155550100``; raises ValueError naming the fix."""
    phone = _PHONE_NOISE.sub("", raw)
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if not phone:
        raise ValueError("phone is empty")
    if not phone.startswith("+"):
        raise ValueError(f"phone {raw!r} has no country code: write it in E.164, e.g. +14155550100")
    if not E164.match(phone):
        raise ValueError(f"phone {raw!r} is not an E.164 number (+, country code, 8-15 digits)")
    return phone


def parse_appointment(raw: str, zone: ZoneInfo) -> datetime:
    text = raw.strip()
    if not text:
        raise ValueError("appointment is empty")
    try:
        when = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise ValueError(
            f"appointment {raw!r} is not a date and time: write e.g. 2026-12-03 14:30"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.astimezone(UTC)


def parse_zone(raw: str) -> ZoneInfo:
    name = raw.strip()
    if not name:
        raise ValueError("timezone is empty: give an IANA zone, e.g. America/New_York")
    try:
        # Legacy names (EST, MST, CET, EST5EDT) exist in the zone database but are fixed
        # offsets or rules of no place: EST never observes daylight saving, so a New York
        # contact filed under it would be called an hour early all summer.
        if "/" not in name and name != "UTC":
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timezone {raw!r} is not an IANA zone: write e.g. America/New_York "
            "(abbreviations like EST do not say whether daylight saving applies)"
        ) from None


def parse_contacts(
    lines: Iterable[str],
    source: str,
    *,
    now: datetime,
    default_language: str = "en-US",
    strict: bool = False,
    script: ReminderScript | None = None,
) -> ContactImport:
    """Judge every row; raises ``ContactsError`` for a bad header, or any bad row if strict.
    With ``script``, a row the script cannot speak to (its language, a field the words use)
    is a bad row too."""
    result = ContactImport(source)
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise ContactsError([RowProblem(source, 1, "the file is empty: no header row")]) from None
    except csv.Error as exc:
        raise ContactsError([RowProblem(source, 1, f"unreadable CSV: {exc}")]) from None
    columns = [name.strip().lower().lstrip("\ufeff") for name in header]
    missing = [name for name in REQUIRED if name not in columns]
    duplicated = sorted({name for name in columns if name and columns.count(name) > 1})
    header_problems = [
        RowProblem(source, 1, f"missing column {name!r} (columns: {', '.join(REQUIRED)})")
        for name in missing
    ] + [RowProblem(source, 1, f"column {name!r} appears twice") for name in duplicated]
    if header_problems:
        raise ContactsError(header_problems)
    seen: dict[str, int] = {}
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.problems.append(RowProblem(source, line, f"unreadable CSV: {exc}"))
            break
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue  # a blank line is not a contact, nor a mistake worth naming
        try:
            contact = _contact(
                start,
                dict(zip(columns, row, strict=False)),
                len(row) - len(columns),
                now=now,
                default_language=default_language,
            )
            problem = script.problem_with(contact.language, _details(contact)) if script else None
            if problem is not None:
                raise ValueError(problem)
        except ValueError as exc:
            result.problems.append(RowProblem(source, start, str(exc)))
            continue
        if contact.phone in seen:
            result.problems.append(
                RowProblem(
                    source, start, f"phone {contact.phone} is already on line {seen[contact.phone]}"
                )
            )
            continue
        seen[contact.phone] = start
        result.contacts.append(contact)
    if strict and result.problems:
        raise ContactsError(result.problems)
    return result


def read_contacts(
    path: Path,
    *,
    now: datetime,
    default_language: str = "en-US",
    strict: bool = False,
    script: ReminderScript | None = None,
) -> ContactImport:
    """``parse_contacts`` over a file (UTF-8, with or without a byte-order mark)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContactsError(
            [RowProblem(str(path), 1, f"not UTF-8 text ({exc.reason}): save the file as UTF-8")]
        ) from None
    except OSError as exc:
        raise ContactsError([RowProblem(str(path), 1, f"cannot read: {exc.strerror}")]) from None
    return parse_contacts(
        io.StringIO(text, newline=""),
        str(path),
        now=now,
        default_language=default_language,
        strict=strict,
        script=script,
    )


def _details(contact: Contact) -> ReminderDetails:
    """What the script's words will be filled with (the campaign's own names: samples)."""
    return dataclasses.replace(
        SAMPLE,
        name=contact.name,
        appointment=contact.appointment.astimezone(ZoneInfo(contact.timezone)),
        fields=contact.fields,
    )


def _contact(
    line: int, cells: dict[str, str], extra: int, *, now: datetime, default_language: str
) -> Contact:
    if extra > 0:
        raise ValueError(f"{extra} more cell(s) than the header has columns (an unquoted comma?)")
    absent = [name for name in REQUIRED if not cells.get(name, "").strip()]
    if absent:
        raise ValueError(f"empty {', '.join(absent)}")
    phone = normalise_phone(cells["phone"])
    name = cells["name"].strip()
    if len(name) > MAX_NAME:
        raise ValueError(f"name is {len(name)} characters long (at most {MAX_NAME})")
    zone = parse_zone(cells["timezone"])
    appointment = parse_appointment(cells["appointment"], zone)
    if appointment <= now:
        local = appointment.astimezone(zone)
        raise ValueError(f"appointment {local:%Y-%m-%d %H:%M} ({zone.key}) has already passed")
    language = cells.get("language", "").strip() or default_language
    if not LANGUAGE.match(language):
        raise ValueError(f"language {language!r} is not a language tag: write e.g. en-US or es")
    fields = {
        key: value.strip()
        for key, value in cells.items()
        if key and key not in REQUIRED and key not in OPTIONAL
    }
    long = [key for key, value in fields.items() if len(value) > MAX_FIELD]
    if long:
        raise ValueError(f"field {long[0]!r} is longer than {MAX_FIELD} characters")
    return Contact(line, phone, name, appointment, zone.key, language, fields)
