"""``ivr-bridge campaign``: what an operator types, and what they read back."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from ivr_bridge.cli import main

CSV = (
    "phone,name,appointment,timezone,clinic\n"
    "+1 (312) 555-0100,Ana Diaz,2030-12-09 14:30,America/Chicago,Elm St\n"
    "3125550101,Bo Lee,2030-12-09 14:30,America/Chicago,Elm St\n"
    "+13125550102,Cy Young,2030-12-09 14:30,America/Chicago,Oak Ave\n"
)


def run(capsys: pytest.CaptureFixture[str], db: str, *argv: str) -> tuple[int, str, str]:
    code = main(["campaign", "--db", db, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_import_start_status_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CSV, encoding="utf-8")
    assert run(capsys, db, "create", "flu", "--caller-id", "+15005550006")[0] == 0
    code, out, err = run(capsys, db, "import", "flu", str(contacts))
    assert code == 0
    assert f"{contacts}:3: phone '3125550101' has no country code" in err
    assert "2 of 3 rows imported, 1 rejected" in out
    code, _, err = run(capsys, db, "import", "flu", str(contacts), "--strict")
    assert code == 2 and f"{contacts}:3:" in err  # nothing imported under --strict
    assert run(capsys, db, "start", "flu")[0] == 0
    code, out, _ = run(capsys, db, "status", "flu")
    assert code == 0 and "flu (running)" in out and "0/2 contacts finished" in out
    code, out, _ = run(capsys, db, "export", "flu")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["phone"], r["attempt"], r["state"]) for r in rows] == [
        ("+13125550100", "1", "scheduled"),
        ("+13125550102", "1", "scheduled"),
    ]
    assert rows[0]["scheduled_local"] == "2030-12-07T14:30-06:00"  # 48 h before, local time


def test_mistakes_are_named_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    code, _, err = run(capsys, db, "start", "nope")
    assert (code, err.strip()) == (2, "ivr-bridge: no campaign named 'nope'")
    code, _, err = run(capsys, db, "create", "x", "--caller-id", "+15005550006", "--hours", "9-5")
    assert code == 2 and "use HH:MM" in err
    code, _, err = run(
        capsys, db, "create", "x", "--caller-id", "+15005550006", "--days", "weekdays"
    )
    assert code == 2 and "day names" in err


def test_a_campaign_needs_words_that_exist_and_contacts_they_can_be_said_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'c.db'}"
    code, _, err = run(
        capsys, db, "create", "x", "--caller-id", "+15005550006", "--script", "dental"
    )
    assert code == 2
    assert "flows/reminders/dental.yaml: cannot read the reminder script" in err
    assert run(capsys, db, "create", "flu", "--caller-id", "+15005550006")[0] == 0
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "phone,name,appointment,timezone,language\n"
        "+13125550100,Ana Diaz,2030-12-09 14:30,America/Chicago,es-MX\n"
        "+13125550101,Luc Petit,2030-12-09 14:30,America/Chicago,fr-CA\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, db, "import", "flu", str(contacts))
    assert code == 0 and "1 of 2 rows imported" in out
    assert f"{contacts}:3: language 'fr-CA': the reminder script 'appointment' speaks en, es" in err
