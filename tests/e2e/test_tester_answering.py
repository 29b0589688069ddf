"""``ivr-bridge test`` from the callee's side: our reminder campaign dials the shipped callee
suite through the tester's Twilio REST stand-in (people, an answering machine, a busy line, one
that rings out), and the same suite against a reminder whose voicemail words regressed fails,
naming the message and the number it concerns."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "reminder_callees.yaml"

pytest.importorskip("faster_whisper")
pytest.importorskip("hibari")


def start(suite: Path, out: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ivr_bridge", "test", str(suite), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    stdout, stderr = proc.communicate(timeout=300)
    return proc.returncode, stdout + stderr


def by_name(out: Path) -> dict[str, dict[str, Any]]:
    results = json.loads((out / "results.json").read_text())
    return {s["name"]: s for s in results["scenarios"]}


def checks(scenario: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in scenario["calls"][0]["checks"]}


def test_the_reminder_campaign_passes_its_callees_and_a_regressed_message_fails(
    tmp_path: Path,
) -> None:
    # The regression: the voicemail message no longer says who it is for.
    broken = tmp_path / "broken"
    shutil.copytree(ROOT / "flows", broken / "flows")
    words = broken / "flows" / "reminders" / "appointment.yaml"
    text = words.read_text()
    assert "with a message for {{ first_name }} about an upcoming" in text
    words.write_text(
        text.replace("with a message for {{ first_name }} about an upcoming", "about an")
    )
    (broken / "suites").mkdir()
    shutil.copy(SUITE, broken / "suites" / SUITE.name)
    # Both runs at once: each is a campaign with its own bridge, stand-in and numbers.
    good = start(SUITE, tmp_path / "good", ROOT)
    bad = start(broken / "suites" / SUITE.name, tmp_path / "bad", broken)
    good_rc, good_out = finish(good)
    bad_rc, bad_out = finish(bad)

    if good_rc == 3:
        pytest.skip(f"inconclusive (the caller's clock fell behind):\n{good_out}")
    assert good_rc == 0, good_out
    scenarios = by_name(tmp_path / "good")
    assert all(s["status"] == "pass" for s in scenarios.values())
    machine = checks(scenarios["answering machine gets the message after the tone"])
    assert machine["message_after_tone"]["status"] == "pass"
    assert "after the tone" in machine["message_after_tone"]["detail"]
    assert machine["outcome"]["detail"] == "the campaign recorded voicemail"
    busy = checks(scenarios["busy line is tried once now"])
    assert busy["calls"]["detail"].startswith("1 call(s) to +1555010")
    confirmed = checks(scenarios["confirms by key"])
    assert confirmed["outcome"]["detail"] == "the campaign recorded confirmed"
    assert "heard" in confirmed["bot said: Am I speaking with Ana"]["detail"]
    for name in ("confirms by key", "answering machine gets the message after the tone"):
        out_dir = Path(scenarios[name]["calls"][0]["out_dir"])
        assert (out_dir / "call.wav").exists()  # the report's recording of what was heard
    assert (tmp_path / "good" / "report.html").exists()

    if bad_rc == 3:
        pytest.skip(f"inconclusive (the caller's clock fell behind):\n{bad_out}")
    assert bad_rc == 1, bad_out
    scenarios = by_name(tmp_path / "bad")
    failed = {n for n, s in scenarios.items() if s["status"] == "fail"}
    assert failed == {"answering machine gets the message after the tone"}, bad_out
    reason = scenarios["answering machine gets the message after the tone"]["calls"][0]["reason"]
    assert reason.startswith("bot said: a message for Lee"), reason
    assert "FAIL" in bad_out and "answering machine" in bad_out
