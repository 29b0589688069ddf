"""`ivr-bridge demo` end to end: what a newcomer gets from `make demo` on a fresh machine."""

from __future__ import annotations

import argparse
import array
import json
import wave
from pathlib import Path

import structlog

from ivr_bridge.audio.codec import rms_pcm16
from ivr_bridge.demo import run_demo
from ivr_bridge.dialog.say_as import currency
from ivr_bridge.sim.cli import EXIT_INCONCLUSIVE
from ivr_bridge.sim.scenario.matching import best_match


def _voiced_seconds(samples: array.array, rate: int) -> float:
    """Seconds of 20 ms windows that carry sound (not line silence)."""
    window = rate // 50
    voiced = 0
    for start in range(0, len(samples) - window, window):
        if rms_pcm16(samples[start : start + window].tobytes()) > 300:
            voiced += 1
    return voiced * 0.02


async def test_demo_records_a_whole_support_call(tmp_path: Path) -> None:
    saved = structlog.get_config()  # the demo configures logging for a terminal; keep it local
    try:
        exit_code = await run_demo(argparse.Namespace(out=str(tmp_path), speed=8.0))
        if exit_code == EXIT_INCONCLUSIVE:  # too busy to judge its timing at 8x: real time
            exit_code = await run_demo(argparse.Namespace(out=str(tmp_path), speed=1.0))
    finally:
        structlog.configure(**saved)
    assert exit_code == 0, "the demo call did not meet its own expectations"

    with wave.open(str(tmp_path / "call.wav")) as wav:
        assert wav.getnchannels() == 2
        rate = wav.getframerate()
        frames = array.array("h", wav.readframes(wav.getnframes()))
    caller, heard = frames[0::2], frames[1::2]
    assert _voiced_seconds(heard, rate) >= 2.0, "right channel must hold the bot's speech"
    assert _voiced_seconds(caller, rate) >= 0.3, "left channel must hold the caller's speech"

    transcript = json.loads((tmp_path / "transcript.json").read_text())
    assert transcript["verdict"]["kind"] == "hangup"
    said = [turn["detail"] for turn in transcript["turns"]]
    assert "balance" in said and "12345678#" in said
    kinds = {event["event"] for event in transcript["events"]}
    assert {"barge_in", "clear", "digit"} <= kinds
    assert len(transcript["utterances"]) >= 4

    # What the caller heard, transcribed from the recording by whisper, is what the flow said:
    # the neural voice is understood, and the say-as filters read the digits and the amount.
    balance = 12345678 * 7919 % 100_000 / 100  # the demo's stand-in balance API
    prompts = [
        "Thanks for calling Example Bank support.",  # then the menu, cut by the caller
        "Please enter your account number, then press the pound key.",
        f"The balance on the account ending in five, six, seven, eight is {currency(balance)}.",
        "Thank you for calling Example Bank. Goodbye.",
    ]
    transcribed = [u["text"] for u in transcript["utterances"]]
    # Each prompt in order, in one utterance each (a prompt may follow the one before it
    # without a gap, or after one: the recorder splits utterances at silences).
    found, at = [], 0
    for prompt in prompts:
        hit = next(
            (i for i in range(at, len(transcribed)) if best_match(prompt, transcribed[i]).passes()),
            None,
        )
        found.append(hit is not None)
        at = hit + 1 if hit is not None else at
    assert found == [True] * len(prompts), transcribed
