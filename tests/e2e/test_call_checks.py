"""``ivr-bridge call`` checks what the bot said from the audio the caller heard (speech-to-text of
the line), and a call that ends in an apology is not a clean hang-up."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from ivr_bridge.sim.cli import (
    EXIT_EXPECTATION_FAILED,
    EXIT_OK,
    add_call_arguments,
    run_call_from_args,
)
from tests.e2e.conftest import AUTH_TOKEN

pytest.importorskip("faster_whisper")
pytest.importorskip("hibari")


def _args(bridge: Any, script: Path, out: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    return parser.parse_args(
        [
            "--url", f"{bridge.base_url}/twilio/voice",
            "--script", str(script),
            "--auth-token", AUTH_TOKEN,
            "--speed", "4",
            "--out", str(out),
        ]
    )  # fmt: skip


async def test_bot_said_passes_on_the_words_heard_and_fails_on_words_never_said(
    make_bridge: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge = await make_bridge(voice="heart")
    script = tmp_path / "greeting.yaml"
    script.write_text(
        "name: greeting\n"
        "steps:\n  - wait_for_bot\n  - hangup\n"
        "expect:\n"
        "  ended: hangup\n"
        "  bot_said:\n"
        "    - thanks for calling\n"
        "    - have a great day\n"
        "    - your appointment is confirmed\n"
    )
    assert await run_call_from_args(_args(bridge, script, tmp_path / "out")) == (
        EXIT_EXPECTATION_FAILED
    )
    out = capsys.readouterr().out
    rows = {line.split("  ")[0]: line for line in out.splitlines() if line.startswith("bot said")}
    assert " pass " in rows["bot said: thanks for calling"], out
    assert " pass " in rows["bot said: have a great day"], out
    assert "FAIL" in rows["bot said: your appointment is confirmed"], out
    assert "not verifiable" not in out


async def test_a_call_that_ends_in_an_apology_fails_ended_hangup(
    make_bridge: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "broken.yaml").write_text(
        "name: broken\n"
        "steps:\n"
        "  - say: Hello.\n"
        '  - say: "{{ 1 // 0 }}"\n'  # fails while the call runs
        "  - hangup: true\n"
    )
    bridge = await make_bridge(voice="heart", flows_dir=flows, flow="broken.yaml")
    script = tmp_path / "caller.yaml"
    script.write_text(
        "name: apology\nsteps:\n  - wait_for_bot\n  - wait_for_bot\n  - hangup\n"
        "expect:\n  ended: hangup\n"
    )
    assert await run_call_from_args(_args(bridge, script, tmp_path / "out")) == (
        EXIT_EXPECTATION_FAILED
    )
    out = capsys.readouterr().out
    [row] = [line for line in out.splitlines() if line.startswith("ended: hangup")]
    assert "FAIL" in row and "apology" in row, out


async def test_with_no_check_on_words_nothing_is_transcribed(
    make_bridge: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge = await make_bridge()
    script = tmp_path / "plain.yaml"
    script.write_text(
        "name: plain\nsteps:\n  - wait_for_bot\n  - hangup\nexpect:\n  min_bot_utterances: 1\n"
    )
    assert await run_call_from_args(_args(bridge, script, tmp_path / "out")) == EXIT_OK
    transcript = (tmp_path / "out" / "transcript.json").read_text()
    assert '"text": null' in transcript
