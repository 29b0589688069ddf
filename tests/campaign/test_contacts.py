"""Contacts CSV: every bad row named by file:line, the good rows kept."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ivr_bridge.campaign.contacts import ContactsError, parse_contacts, read_contacts

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HEADER = "phone,name,appointment,timezone,language,clinic\n"


def _parse(body: str, *, strict: bool = False, header: str = HEADER):
    return parse_contacts(io.StringIO(header + body, newline=""), "c.csv", now=NOW, strict=strict)


def test_a_clean_row_imports_with_its_local_appointment_and_free_fields() -> None:
    result = _parse("+1 (415) 555-0100,Ana Diaz,2026-12-03 14:30,America/Los_Angeles,es,Elm St\n")
    assert not result.problems
    [contact] = result.contacts
    assert contact.phone == "+14155550100"
    assert contact.line == 2
    assert contact.appointment == datetime(2026, 12, 3, 22, 30, tzinfo=UTC)  # PST is UTC-8
    assert contact.local_appointment().hour == 14
    assert contact.language == "es"
    assert contact.fields == {"clinic": "Elm St"}


def test_each_bad_row_is_named_with_its_line_and_reason_and_the_good_rows_import() -> None:
    body = (
        "+14155550100,Ana,2026-12-03 14:30,America/Chicago,,A\n"  # 2 ok
        "4155550101,Bo,2026-12-03 14:30,America/Chicago,,A\n"  # 3 no country code
        "+14155550102,Cy,2026-12-03 14:30,EST,,A\n"  # 4 abbreviation
        "+14155550103,Di,2026-11-03 14:30,America/Chicago,,A\n"  # 5 past
        "+14155550104,Ed,next tuesday,America/Chicago,,A\n"  # 6 not a date
        "+14155550100,Ana again,2026-12-04 09:00,America/Chicago,,A\n"  # 7 duplicate
        "\n"  # 8 blank: skipped silently
        "+14155550105,,2026-12-03 14:30,America/Chicago,,A\n"  # 9 empty name
        "+14155550106,Fay,2026-12-03 14:30,America/Chicago,en,A,extra\n"  # 10 extra cell
        "+14155550107,Gus,2026-12-05 08:00,Europe/Berlin,de-DE,B\n"  # 11 ok
    )
    result = _parse(body)
    assert [c.line for c in result.contacts] == [2, 11]
    problems = {p.line: str(p) for p in result.problems}
    assert sorted(problems) == [3, 4, 5, 6, 7, 9, 10]
    assert problems[3].startswith("c.csv:3: ") and "country code" in problems[3]
    assert "IANA" in problems[4] and "EST" in problems[4]
    assert "already passed" in problems[5]
    assert "2026-12-03 14:30" in problems[6] or "not a date" in problems[6]
    assert "already on line 2" in problems[7]
    assert "empty name" in problems[9]
    assert "more cell" in problems[10]
    assert result.report().endswith("2 of 9 rows imported, 7 rejected")


def test_strict_imports_nothing_when_any_row_is_bad() -> None:
    body = "+14155550100,Ana,2026-12-03 14:30,America/Chicago,,A\n+1,Bo,x,UTC,,A\n"
    with pytest.raises(ContactsError) as info:
        _parse(body, strict=True)
    assert [p.line for p in info.value.problems] == [3]
    assert "c.csv:3:" in str(info.value)


def test_a_quoted_multiline_cell_does_not_shift_later_line_numbers() -> None:
    body = (
        '+14155550100,Ana,2026-12-03 14:30,America/Chicago,,"Suite 4\nsecond floor"\n'
        "+14155550101,Bo,yesterday,America/Chicago,,A\n"
    )
    result = _parse(body)
    assert result.contacts[0].fields["clinic"] == "Suite 4\nsecond floor"
    assert [p.line for p in result.problems] == [4]


def test_a_header_without_a_required_column_refuses_the_whole_file() -> None:
    with pytest.raises(ContactsError) as info:
        _parse("+14155550100,Ana,2026-12-03 14:30\n", header="Phone , Name,Appointment\n")
    assert str(info.value) == (
        "c.csv:1: missing column 'timezone' (columns: phone, name, appointment, timezone)"
    )


def test_an_explicit_offset_is_honoured() -> None:
    result = _parse("+14155550100,Ana,2026-12-03T14:30:00-05:00,America/Chicago,,A\n")
    assert result.contacts[0].appointment == datetime(2026, 12, 3, 19, 30, tzinfo=UTC)


def test_a_file_with_a_byte_order_mark_and_bad_encoding(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_bytes(
        b"\xef\xbb\xbf" + (HEADER + "+14155550100,Ana,2026-12-03 14:30,UTC,,A\n").encode()
    )
    assert len(read_contacts(good, now=NOW).contacts) == 1
    bad = tmp_path / "bad.csv"
    bad.write_bytes(HEADER.encode() + b"+14155550100,Ana\xe9,2026-12-03 14:30,UTC,,A\n")
    with pytest.raises(ContactsError, match=r"bad\.csv:1: not UTF-8"):
        read_contacts(bad, now=NOW)
