"""The simulated caller against a scripted fake bridge: wire shapes, signatures, marks, clear."""

from __future__ import annotations

import base64
import itertools
import json

from sim_fakes import AUTH_TOKEN, SPEED, Peer, dial_twiml, tone
from twilio.request_validator import RequestValidator

from ivr_bridge.audio.codec import rms_pcm16, ulaw_to_pcm16
from ivr_bridge.sim import parse_script, run_call

SILENT_SCRIPT = parse_script("steps: []\ncaller: {max_duration_ms: 20000}")


def _script(text: str):
    return parse_script(text, "inline.yaml")


async def _call(bridge, script, **kwargs):
    return await run_call(
        voice_url=bridge.voice_url,
        ws_url=None,
        script=script,
        auth_token=AUTH_TOKEN,
        speed=SPEED,
        out_dir=kwargs.pop("out_dir", None),
        **kwargs,
    )


def _heard_voiced_frames(result, start_ms: float = 0, end_ms: float = 1e12) -> int:
    audio = result.recorder.heard_audio
    count = 0
    for i in range(0, len(audio) - 159, 160):
        t = i / 8
        if start_ms <= t < end_ms and rms_pcm16(ulaw_to_pcm16(bytes(audio[i : i + 160]))) > 500:
            count += 1
    return count


async def test_messages_match_twilio_shapes(make_bridge) -> None:
    async def behaviour(peer: Peer) -> None:
        await peer.wait_until(lambda: len(peer.of("dtmf")) == 2)
        await peer.wait_media(5)
        await peer.close()

    bridge = await make_bridge(behaviour)
    result = await _call(bridge, _script("steps:\n  - silence: 200\n  - press: '4#'\n"))
    messages = bridge.peers[0].received

    assert messages[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = messages[1]
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    body = start["start"]
    assert body["customParameters"] == {"tenant": "acme", "lang": "en"}
    assert body["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert body["tracks"] == ["inbound"]
    assert body["streamSid"] == start["streamSid"] and body["streamSid"].startswith("MZ")
    assert body["callSid"] == result.call_sid and body["accountSid"].startswith("AC")

    sequence = [m["sequenceNumber"] for m in messages[1:]]
    assert all(isinstance(s, str) for s in sequence)
    assert [int(s) for s in sequence] == list(range(1, len(sequence) + 1))
    assert all(m["streamSid"] == start["streamSid"] for m in messages[1:])

    media = [m["media"] for m in messages if m["event"] == "media"]
    assert len(media) >= 15
    assert [m["chunk"] for m in media] == [str(i) for i in range(1, len(media) + 1)]
    stamps = [m["timestamp"] for m in media]
    assert all(isinstance(s, str) for s in stamps)
    assert 100 <= int(stamps[0]) <= 170
    assert all(int(b) - int(a) == 20 for a, b in itertools.pairwise(stamps))
    for frame in media:
        assert frame["track"] == "inbound"
        assert base64.b64decode(frame["payload"]) == b"\xff" * 160  # silence: nothing was said

    digits = [m for m in messages if m["event"] == "dtmf"]
    assert [d["dtmf"] for d in digits] == [
        {"track": "inbound_track", "digit": "4"},
        {"track": "inbound_track", "digit": "#"},
    ]
    assert result.verdict.kind == "hangup"
    first, second = (e["t_ms"] for e in result.events if e["event"] == "digit")
    assert first >= 200 and second - first == 200  # after the silence, then gap_ms


async def test_webhook_and_upgrade_are_signed(make_bridge) -> None:
    async def behaviour(peer: Peer) -> None:
        await peer.wait_media(3)
        await peer.close()

    bridge = await make_bridge(behaviour)
    result = await _call(bridge, SILENT_SCRIPT)
    validator = RequestValidator(AUTH_TOKEN)

    url, form, headers = bridge.voice_requests[0]
    assert url == bridge.voice_url
    assert validator.validate(url, form, headers["X-Twilio-Signature"])
    assert not RequestValidator("other-token").validate(url, form, headers["X-Twilio-Signature"])
    assert form["CallSid"] == result.call_sid
    assert form["AccountSid"].startswith("AC")
    assert form["Direction"] == "inbound" and form["ApiVersion"] == "2010-04-01"
    assert {"From", "To", "CallStatus"} <= form.keys()

    # The upgrade is signed over the stream URL exactly as the TwiML wrote it, with no params.
    signature = bridge.upgrade_headers[0]["X-Twilio-Signature"]
    assert validator.validate(bridge.media_url, {}, signature)

    action_url, action_form, action_headers = bridge.action_requests[0]
    assert action_url == f"{bridge.base}/twilio/after-stream"
    assert validator.validate(action_url, action_form, action_headers["X-Twilio-Signature"])
    assert action_form["CallSid"] == result.call_sid


async def test_mark_echoes_only_after_its_audio_played(make_bridge) -> None:
    async def behaviour(peer: Peer) -> None:
        await peer.wait_media(2)
        await peer.send_mark("idle")  # nothing buffered: echoed at once
        await peer.wait_echo("idle")
        peer.marks_at_idle = peer.media_count()
        await peer.send_media(tone(1000))
        await peer.send_mark("after-tone")
        peer.sent_at = peer.media_count()
        await peer.wait_echo("after-tone")
        peer.echoed_at = peer.media_count()
        await peer.close()

    bridge = await make_bridge(behaviour)
    result = await _call(bridge, SILENT_SCRIPT)
    peer = bridge.peers[0]
    echoes = [m["mark"]["name"] for m in peer.of("mark")]
    assert echoes == ["idle", "after-tone"]
    # The line clock is the caller's media frames: 1 s of audio is 50 frames of playback.
    assert peer.echoed_at - peer.sent_at >= 49
    played = [e for e in result.events if e["event"] == "mark_echoed"]
    assert [e["cleared"] for e in played] == [False, False]
    utterance = result.utterances[0]
    assert 980 <= utterance.end_ms - utterance.start_ms <= 1020
    assert played[1]["t_ms"] >= utterance.end_ms
    assert _heard_voiced_frames(result) == 50


async def test_clear_drops_buffered_audio_and_echoes_pending_marks(make_bridge) -> None:
    async def behaviour(peer: Peer) -> None:
        await peer.wait_media(2)
        await peer.send_media(tone(3000))
        await peer.send_mark("prompt-1")
        await peer.wait_media(25)  # about 500 ms into the prompt
        peer.clear_at = peer.media_count()
        await peer.send_clear()
        await peer.wait_echo("prompt-1")
        peer.echo_at = peer.media_count()
        await peer.wait_media(10)
        await peer.close()

    bridge = await make_bridge(behaviour)
    result = await _call(bridge, SILENT_SCRIPT)
    peer = bridge.peers[0]
    # Echoed at once, not after 2.5 s (125 frames) of playback; the peer counts line frames, so
    # the round trip's real time shows as frames at this speed (the run's slack).
    slack_frames = result.slack_ms / 20
    assert peer.echo_at - peer.clear_at <= 2 + slack_frames
    clear = next(e for e in result.events if e["event"] == "clear")
    assert clear["echoed"] == ["prompt-1"] and clear["dropped_ms"] >= 2000
    echo = next(e for e in result.events if e["event"] == "mark_echoed")
    assert echo["cleared"] is True
    heard = _heard_voiced_frames(result)
    # About 500 ms (25 frames): the cleared ~2.5 s never reach the heard channel.
    assert 0 < heard <= 25 + slack_frames
    assert heard * 160 == result.stats.bot_bytes_heard
    assert result.utterances[0].interrupted
    assert result.stats.bot_bytes_cleared + result.stats.bot_bytes_heard == 3000 * 8


async def test_stop_sent_when_caller_hangs_up(make_bridge) -> None:
    bridge = await make_bridge()
    result = await _call(bridge, _script("steps:\n  - silence: 300\n  - hangup\n"))
    messages = bridge.peers[0].received
    stop = messages[-1]
    assert stop["event"] == "stop"
    assert stop["stop"] == {
        "accountSid": messages[1]["start"]["accountSid"],
        "callSid": result.call_sid,
    }
    assert int(stop["sequenceNumber"]) == len(messages) - 1
    assert result.verdict.kind == "caller_hangup"
    assert bridge.action_requests == []  # Twilio does not run the action after a hangup


async def test_dial_verdict_from_action_url(make_bridge, tmp_path) -> None:
    async def behaviour(peer: Peer) -> None:
        await peer.wait_media(5)
        await peer.close()

    bridge = await make_bridge(behaviour, after_stream=dial_twiml("+15551234567"))
    script = _script("steps: []\nexpect:\n  dial: '+15551234567'\n")
    result = await _call(bridge, script, out_dir=tmp_path)
    assert result.verdict.kind == "dial" and result.verdict.target == "+15551234567"
    assert result.passed

    wrong = _script("steps: []\nexpect:\n  ended: hangup\n")
    result = await _call(bridge, wrong)
    assert not result.passed
    assert [e.passed for e in result.expectations] == [False, True]


async def test_direct_mode_uses_script_parameters_and_no_webhook(make_bridge) -> None:
    async def behaviour(peer: Peer) -> None:
        await peer.wait_media(3)
        await peer.close()

    bridge = await make_bridge(behaviour)
    script = _script("parameters: {campaign: spring}\nsteps: []\n")
    result = await run_call(
        voice_url=None,
        ws_url=bridge.media_url,
        script=script,
        auth_token=AUTH_TOKEN,
        speed=SPEED,
        out_dir=None,
    )
    assert bridge.voice_requests == [] and bridge.action_requests == []
    assert bridge.peers[0].received[1]["start"]["customParameters"] == {"campaign": "spring"}
    assert result.verdict.kind == "stream_closed"


async def test_messages_twilio_would_reject_fail_the_call(make_bridge) -> None:
    async def behaviour(peer: Peer) -> None:
        await peer.wait_media(2)
        await peer.ws.send_bytes(b"\x00\x01")
        await peer.ws.send_str('{"event": "mark", "streamSid": "MZwrong", "mark": {"name": "x"}}')
        await peer.ws.send_str(json.dumps({"event": "media", "streamSid": peer.stream_sid}))
        await peer.wait_media(5)
        await peer.close()

    bridge = await make_bridge(behaviour)
    result = await _call(bridge, SILENT_SCRIPT)
    codes = [e["code"] for e in result.events if e["event"] == "protocol_error"]
    assert codes == [31950, 31951, 31951]
    assert not result.passed
    assert bridge.peers[0].of("mark") == []  # a rejected mark is never echoed
