"""``ivr-bridge calls list|show`` against a records directory, as an operator on the box runs it."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from ivr_bridge.cli import main
from ivr_bridge.records.store import FileRecordStore
from tests.unit.record_fakes import MENU_UNHEARD, PIN, STARTED, stereo_wav, support_call

SID = "CA0000000000000000000000000000beef"


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "call-records"
    monkeypatch.setenv("IVR_RECORDS", "audio")
    monkeypatch.setenv("IVR_RECORDS_DIR", str(directory))
    monkeypatch.delenv("IVR_RECORDS_DB", raising=False)
    return directory


def keep(directory: Path) -> None:
    """Two records as the bridge leaves them (the CLI runs its own event loop: tests are sync)."""
    store = FileRecordStore(directory)
    asyncio.run(store.save(support_call(SID), stereo_wav()))
    earlier = support_call("CAearlier", started_at=STARTED - timedelta(hours=1), outcome="failed")
    asyncio.run(store.save(earlier))


def test_list_shows_the_newest_first_and_filters(
    records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keep(records)
    assert main(["calls", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["started", "(UTC)", "call"]
    assert [line.split()[2] for line in lines[1:]] == [SID, "CAearlier"]
    assert main(["calls", "list", "--outcome", "failed", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["call_sid"] for s in listed] == ["CAearlier"] and listed[0]["outcome"] == "failed"
    assert main(["calls", "list", "--limit", "1", "--json"]) == 0
    assert [s["call_sid"] for s in json.loads(capsys.readouterr().out)] == [SID]
    assert main(["calls", "list", "--flow", "nonesuch.yaml"]) == 0
    assert "no calls match" in capsys.readouterr().err


def test_show_prints_the_transcript_with_the_unheard_words_apart(
    records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keep(records)
    assert main(["calls", "show", SID]) == 0
    out = capsys.readouterr().out
    assert f"call {SID}: the bot hung up (completed)" in out
    assert f"[not heard: {MENU_UNHEARD}]" in out
    assert f"keys: {PIN}" in out and "1234" not in out
    assert main(["calls", "show", SID, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["call_sid"] == SID


def test_show_html_writes_the_page_with_its_recording_inside(
    records: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keep(records)
    out = tmp_path / "call.html"
    assert main(["calls", "show", SID, "--html", str(out)]) == 0
    html = out.read_text()
    assert '<svg class="timeline"' in html and 'src="data:audio/wav;base64,' in html
    assert main(["calls", "show", "CAearlier", "--html", str(out)]) == 0
    assert "no recording kept" in capsys.readouterr().out


def test_no_records_and_unknown_calls_are_clear_errors_naming_the_directory(
    records: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calls", "list"]) == 2
    err = capsys.readouterr().err
    assert "no call records in" in err and str(records) in err and "IVR_RECORDS_DIR" in err
    assert main(["calls", "show", "CAnosuch"]) == 2
    err = capsys.readouterr().err
    assert "no record of call CAnosuch" in err and "IVR_RECORDS_DIR" in err
    assert main(["calls", "show", "../etc/passwd"]) == 2
    assert "is not a CallSid" in capsys.readouterr().err


def test_records_off_says_how_to_turn_them_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVR_RECORDS", "off")
    assert main(["calls", "list"]) == 2
    assert "IVR_RECORDS=off" in capsys.readouterr().err


def test_dir_overrides_the_setting(
    records: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "elsewhere"
    keep(other)
    assert main(["calls", "--dir", str(other), "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
