"""``ivr-bridge call`` and ``ivr-bridge demo`` refuse bad input with exit 2 and a clear message."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ivr_bridge.demo import run_demo
from ivr_bridge.sim.cli import EXIT_USAGE, add_call_arguments, run_call_from_args


async def test_call_with_unreadable_play_file_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not-audio.wav").write_text("this is not a WAV file")
    script = tmp_path / "caller.yaml"
    script.write_text("name: bad-play\nsteps:\n  - play: not-audio.wav\n  - hangup\n")
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    # Port 9 (discard) is never dialled: the file is read before the call is placed.
    args = parser.parse_args(["--url", "http://127.0.0.1:9/twilio/voice", "--script", str(script)])
    assert await run_call_from_args(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "not-audio.wav" in err and "Traceback" not in err


@pytest.mark.parametrize("speed", [0.0, -2.0])
async def test_demo_refuses_a_speed_that_is_not_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], speed: float
) -> None:
    assert await run_demo(argparse.Namespace(out=str(tmp_path), speed=speed)) == 2
    assert "--speed must be > 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - a tiny listing in a test
