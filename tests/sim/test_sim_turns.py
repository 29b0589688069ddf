"""Turn-taking steps on the virtual clock: waiting for the bot, barging in, speaking, latencies."""

from __future__ import annotations

import argparse
import json
import time
import wave

from sim_fakes import AUTH_TOKEN, SPEED, Peer, tone

from ivr_bridge.audio.codec import rms_pcm16, ulaw_to_pcm16
from ivr_bridge.sim import parse_script, run_call, until_conclusive
from ivr_bridge.sim.cli import add_call_arguments, run_call_from_args
from ivr_bridge.sim.scenario.result import REAL_TIME_FLOOR_MS
from ivr_bridge.sim.scenario.runner import quiet_for


def _dtmf_times(result) -> dict[str, float]:
    return {e["digit"]: e["t_ms"] for e in result.events if e["event"] == "digit"}


async def test_wait_for_bot_then_barge_in_and_latency(make_bridge) -> None:
    async def behaviour(peer: Peer) -> None:
        await peer.send_media(tone(2000))  # greeting
        await peer.send_mark("greeting")
        await peer.wait_until(lambda: len(peer.of("dtmf")) == 1)
        await peer.wait_media(15)  # answer 300 ms after the digit
        await peer.send_media(tone(3000, freq=660))
        await peer.send_mark("menu")
        await peer.wait_until(lambda: len(peer.of("dtmf")) == 2)
        await peer.send_clear()
        await peer.wait_media(5)
        await peer.close()

    bridge = await make_bridge(behaviour)
    script = parse_script(
        """
steps:
  - wait_for_bot: {quiet_ms: 400}
  - press: "1"
  - barge_in: {after_ms: 500, press: "9"}
expect:
  ended: hangup
  clear_after_barge_in_ms: 200
  min_bot_utterances: 2
""",
        "inline.yaml",
    )
    result = await until_conclusive(
        lambda speed: run_call(
            voice_url=bridge.voice_url,
            ws_url=None,
            script=script,
            auth_token=AUTH_TOKEN,
            speed=speed,
            out_dir=None,
        ),
        SPEED,
    )
    greeting, menu = result.utterances
    digits = _dtmf_times(result)
    # wait_for_bot returned once the greeting had played out and 400 ms of quiet followed
    # (above real time: as much call time as its real-time floor asks for).
    quiet_ms = quiet_for(400, result.speed)
    assert digits["1"] >= greeting.end_ms + quiet_ms
    assert digits["1"] - greeting.end_ms <= quiet_ms + 60
    barge = next(e for e in result.events if e["event"] == "barge_in")
    assert barge["into_utterance_ms"] == 500 and barge["bot_audible"] is True
    assert digits["9"] >= menu.start_ms + 500
    assert menu.interrupted and menu.end_ms - menu.start_ms < 1000
    first_turn = result.turns[0]
    assert first_turn.kind == "press" and first_turn.latency_ms is not None
    # The server answered 15 frames (300 ms) after the digit, plus its own scheduling delay.
    assert 280 <= first_turn.latency_ms <= 340 + result.slack_ms
    assert result.passed, result.summary_table()


async def test_say_sends_synthesised_caller_speech(make_bridge) -> None:
    async def behaviour(peer: Peer) -> None:
        def spoke() -> bool:
            return any(
                m["event"] == "media" and set(m["media"]["payload"]) != {"/"} for m in peer.received
            )

        await peer.wait_until(spoke)
        await peer.wait_until(lambda: len(peer.of("dtmf")) == 1)
        await peer.close()

    bridge = await make_bridge(behaviour)
    script = parse_script('steps:\n  - say: "I would like to pay my bill"\n  - press: "5"\n')
    result = await run_call(
        voice_url=bridge.voice_url,
        ws_url=None,
        script=script,
        auth_token=AUTH_TOKEN,
        speed=SPEED,
        out_dir=None,
    )
    turn = result.turns[0]
    assert turn.kind == "say" and turn.detail == "I would like to pay my bill"
    assert 800 <= turn.end_ms - turn.start_ms <= 4000
    caller = result.recorder.caller_audio
    start, end = int(turn.start_ms * 8), int(turn.end_ms * 8)
    assert rms_pcm16(ulaw_to_pcm16(bytes(caller[start:end]))) > 300  # real speech on the line
    assert set(caller[: int(turn.start_ms * 8)]) == {0xFF}  # silence before the caller spoke
    assert _dtmf_times(result)["5"] >= turn.end_ms


async def test_cli_writes_outputs_and_fails_on_unmet_expectation(make_bridge, tmp_path) -> None:
    async def behaviour(peer: Peer) -> None:
        await peer.wait_media(2)
        await peer.send_media(tone(600))
        await peer.send_media(tone(2000))
        await peer.wait_media(10)  # 200 ms in: clear the rest
        await peer.send_clear()
        await peer.wait_media(10)
        await peer.close()

    bridge = await make_bridge(behaviour)
    script_file = tmp_path / "call.yaml"
    script_file.write_text("steps: []\nexpect:\n  ended: dial\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            "--url",
            bridge.voice_url,
            "--script",
            str(script_file),
            "--out",
            str(out),
            "--auth-token",
            AUTH_TOKEN,
            "--speed",
            str(SPEED),
        ]
    )
    assert await run_call_from_args(args) == 1  # the call ended with a hangup, not a dial

    transcript = json.loads((out / "transcript.json").read_text())
    assert transcript["verdict"]["kind"] == "hangup" and transcript["passed"] is False
    assert [e["event"] for e in transcript["events"]].count("clear") == 1
    with wave.open(str(out / "call.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        frames = wav.readframes(wav.getnframes())
    right = b"".join(frames[i + 2 : i + 4] for i in range(0, len(frames), 4))
    loud_ms = sum(
        20 for i in range(0, len(right) - 319, 320) if rms_pcm16(right[i : i + 320]) > 500
    )
    # Only what played before the clear (about 200 ms, later by the round trip's real time at
    # this speed); the cleared rest never appears, and every byte was either heard or cleared.
    slack_ms = transcript["caller_lag_ms"] + REAL_TIME_FLOOR_MS * SPEED
    assert 0 < loud_ms <= 200 + slack_ms
    stats = transcript["stats"]
    assert stats["bot_bytes_cleared"] + stats["bot_bytes_heard"] == 2600 * 8
    assert stats["bot_bytes_heard"] <= (220 + slack_ms) * 8


async def test_cli_rejects_bad_script_with_file_and_line(tmp_path, capsys) -> None:
    script_file = tmp_path / "bad.yaml"
    script_file.write_text("steps:\n  - say: hi\n  - shout: hello\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--ws-url", "ws://127.0.0.1:9/x", "--script", str(script_file)])
    assert await run_call_from_args(args) == 2
    assert f"{script_file}:3:" in capsys.readouterr().err


async def test_a_stalled_machine_shifts_no_server_message_onto_another_clock(make_bridge) -> None:
    """The caller stamps what the server sends with its own line time, like everything else.

    The peer stalls the whole event loop for 100 ms before answering a digit with ``clear`` (a
    busy CI machine does this): 2 s of call time at 20x. Stamped on wall time x speed, the clear
    would land ~2 s after the barge-in; on the line's clock, which stalled too, it lands within
    a few frames, and the run reports how far its line fell behind."""

    async def behaviour(peer: Peer) -> None:
        await peer.send_media(tone(3000))
        await peer.send_mark("menu")
        await peer.wait_until(lambda: len(peer.of("dtmf")) == 1)
        time.sleep(0.1)  # noqa: ASYNC251 - the point: the loop stalls, as on a loaded machine
        await peer.send_clear()
        await peer.wait_media(5)
        await peer.close()

    bridge = await make_bridge(behaviour)
    script = parse_script('steps:\n  - barge_in: {after_ms: 400, press: "9"}\n', "stall.yaml")
    result = await run_call(
        voice_url=bridge.voice_url, ws_url=None, script=script, auth_token=AUTH_TOKEN, speed=SPEED
    )
    barge = next(e for e in result.events if e["event"] == "barge_in")
    clear = next(e for e in result.events if e["event"] == "clear")
    assert clear["t_ms"] - barge["t_ms"] <= 200, (barge, clear)
    assert result.lag_ms >= 1000  # the stall is on record: the run can say it fell behind
