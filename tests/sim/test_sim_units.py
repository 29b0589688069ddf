"""Pure pieces of the simulator: playout buffer, TwiML verdicts, caller-script validation."""

from __future__ import annotations

import pytest

from ivr_bridge.sim.scenario.script import (
    BargeInStep,
    HangupStep,
    IfBotSaidStep,
    ScriptError,
    WaitForBotStep,
    load_script,
    parse_script,
    shipped_scripts,
)
from ivr_bridge.sim.twilio.jitter import PlayoutBuffer
from ivr_bridge.sim.twilio.twiml import find_stream, verdict_after_connect, verdict_from_twiml


def test_marks_echo_at_the_boundary_after_their_audio() -> None:
    buffer = PlayoutBuffer()
    buffer.push_audio(b"\x01" * 240)  # 1.5 frames
    assert buffer.push_mark("a") == []
    buffer.push_audio(b"\x02" * 160)
    assert buffer.push_mark("b") == []
    first = buffer.advance()
    assert first.audio == b"\x01" * 160 and first.echoes == []
    second = buffer.advance()  # "a" passed inside this frame: echoed when it ends
    assert second.audio == b"\x01" * 80 + b"\x02" * 80 and second.echoes == []
    third = buffer.advance()
    assert third.echoes == ["a"] and third.bot_bytes == 80
    fourth = buffer.advance()
    assert fourth.echoes == ["b"] and fourth.bot_bytes == 0 and fourth.audio == b"\xff" * 160


def test_mark_with_nothing_buffered_echoes_at_once_unless_audio_is_playing() -> None:
    buffer = PlayoutBuffer()
    assert buffer.push_mark("idle") == ["idle"]
    buffer.push_audio(b"\x01" * 160)
    buffer.advance()  # the frame is now playing
    assert buffer.push_mark("tail") == []
    assert buffer.advance().echoes == ["tail"]


def test_clear_drops_queue_and_returns_pending_marks() -> None:
    buffer = PlayoutBuffer()
    buffer.push_audio(b"\x01" * 800)
    buffer.push_mark("m1")
    buffer.push_audio(b"\x01" * 800)
    buffer.push_mark("m2")
    buffer.advance()
    cleared = buffer.clear()
    assert cleared.echoes == ["m1", "m2"] and cleared.dropped_bytes == 1440
    assert buffer.advance().bot_bytes == 0


def test_verdicts() -> None:
    hangup = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'
    assert verdict_from_twiml(hangup).kind == "hangup"
    dial = "<Response><Say>Transferring</Say><Dial><Number>+15551234567</Number></Dial></Response>"
    verdict = verdict_from_twiml(dial)
    assert (verdict.kind, verdict.target) == ("dial", "+15551234567")
    assert verdict_from_twiml("<Response><Dial>+1555</Dial></Response>").target == "+1555"
    assert verdict_from_twiml("<Response><Redirect>/x</Redirect></Response>").kind == "other"
    assert verdict_from_twiml("<Response><Say>bye</Say></Response>").kind == "hangup"
    assert verdict_from_twiml("not xml").kind == "error"
    after = verdict_after_connect(
        '<Response><Connect><Stream url="wss://h/s"/></Connect><Dial>+1999</Dial></Response>'
    )
    assert (after.kind, after.target) == ("dial", "+1999")


def test_find_stream_resolves_action_and_parameters() -> None:
    twiml = (
        '<Response><Connect action="/twilio/after-stream"><Stream url="wss://h/twilio/media">'
        '<Parameter name="a" value="1"/><Parameter name="b" value="x y"/></Stream></Connect>'
        "</Response>"
    )
    stream = find_stream(twiml, "https://h/twilio/voice")
    assert stream is not None
    assert stream.url == "wss://h/twilio/media"
    assert stream.parameters == {"a": "1", "b": "x y"}
    assert stream.action_url == "https://h/twilio/after-stream"
    one_way = '<Response><Start><Stream url="wss://h/s"/></Start></Response>'
    assert find_stream(one_way, "https://h/") is None


def test_script_shorthands_and_barge_in() -> None:
    script = parse_script(
        "steps:\n  - wait_for_bot\n  - barge_in: {after_ms: 300, say: stop}\n  - hangup:\n"
    )
    kinds = [type(step) for step in script.steps]
    assert kinds == [WaitForBotStep, BargeInStep, HangupStep]
    assert script.steps[0].wait_for_bot.quiet_ms == 600


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("steps:\n  - say: hi\n  - shout: hello\n", 3, "a step is one of"),
        ("steps:\n  - press: '12x'\n", 2, "press"),
        ("steps:\n  - silence: 10\n  - barge_in:\n      after_ms: 5\n", 4, "exactly one of"),
        ("expect:\n  ended: maybe\n", 2, "expect.ended"),
        ("steps: [\n", 2, "invalid YAML"),
    ],
)
def test_script_errors_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ScriptError) as info:
        parse_script(text, "calls/test.yaml")
    message = str(info.value)
    assert message.startswith(f"calls/test.yaml:{line}:"), message
    assert fragment in message


def test_shipped_scripts_are_valid() -> None:
    names = shipped_scripts()
    assert {"greeting", "listen", "press-digits", "say-and-listen", "barge-in"} <= set(names)
    for name in names:
        script = load_script(name)
        # A script either does something or waits for the bridge to end the call.
        assert script.steps or script.expect.ended == "hangup"


async def test_every_queued_caller_step_is_resolved_however_many_are_waiting() -> None:
    import asyncio

    from ivr_bridge.sim.scenario.recording import CallRecorder
    from ivr_bridge.sim.twilio import protocol as sim_protocol
    from ivr_bridge.sim.twilio.clock import VirtualClock
    from ivr_bridge.sim.twilio.session import CallEnded, StreamSession

    ids = sim_protocol.StreamIds("AC1", "CA1", "MZ1")
    session = StreamSession(None, ids, VirtualClock(), CallRecorder(), {})  # type: ignore[arg-type]
    speeches = [asyncio.create_task(session.speak(b"\x00" * 160)) for _ in range(70)]
    digits = [asyncio.create_task(session.press("1")) for _ in range(70)]
    await asyncio.sleep(0)
    for frame in range(70):  # the line sends one 20 ms frame per segment, oldest first
        assert session._next_caller_frame(frame * 20.0) == b"\x00" * 160
    await asyncio.sleep(0)
    assert [task.result()[0] for task in speeches] == [frame * 20.0 for frame in range(70)]
    session._cancel_pending()  # the call ends with the digits still queued
    await asyncio.sleep(0)
    assert all(isinstance(task.exception(), CallEnded) for task in digits)


def test_if_bot_said_branches_parse_with_bare_steps_and_else() -> None:
    script = parse_script(
        "steps:\n"
        "  - wait_for_bot\n"
        "  - if_bot_said:\n"
        "      phrase: press one\n"
        "      then: [{press: '1'}, wait_for_bot]\n"
        "      else: [hangup]\n"
    )
    [_, branch] = script.steps
    assert isinstance(branch, IfBotSaidStep) and script.branches and script.needs_words()
    assert [type(s).__name__ for s in branch.if_bot_said.then] == ["PressStep", "WaitForBotStep"]
    assert [type(s).__name__ for s in branch.if_bot_said.otherwise] == ["HangupStep"]
    with pytest.raises(ScriptError, match="inside a branch"):
        parse_script("steps:\n  - if_bot_said: {phrase: x, then: [{shout: hi}]}\n")
