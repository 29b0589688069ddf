"""``dial`` targets: the tester places the call itself over Twilio (here: the REST stand-in),
Twilio streams the far end back to the tester's own WebSocket, and keys go as call redirects.
The number is answered by our support line (an ``app`` number of the stand-in), so both legs
are real: the bridge's signed webhook and stream, the tester's signed stream."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ivr_bridge.sim.twilio_rest import Persona, TwilioRestStandIn
from ivr_bridge.tester.dialing import STREAM_PATH, Credentials, open_dialler
from ivr_bridge.tester.runner import run_suite
from ivr_bridge.tester.suite import parse_suite
from ivr_bridge.tester.targets import open_targets
from tests.e2e.conftest import AUTH_TOKEN

ACCOUNT = "AC" + "e" * 32
AGENT = "+13125550140"
SUITE = f"""\
name: real number
allow_numbers: ["{AGENT}"]
defaults:
  target: {{dial: {{to: "{AGENT}", from: "+15005550006", time_limit_s: 60}}}}
  speed: 1
scenarios:
  - name: a key over the phone
    steps:
      - barge_in: {{after_ms: 1500, press: "1"}}
      - wait_for_bot
      - hangup
    expect:
      ended: caller_hangup
      # What the agent says while the key plays never reaches the tester (no stream then), and
      # how far the greeting got before the key depends on how soon it started.
      bot_said: ["Thanks for calling Example Bank", "then press the pound key"]
"""


@pytest.fixture
async def standin(make_bridge: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    bridge = await make_bridge(voice="heart")  # the neural voice: whisper hears it as a person
    voice_url = f"{bridge.base_url}/twilio/voice?flow=support_line.yaml"
    twilio = TwilioRestStandIn(
        account_sid=ACCOUNT,
        auth_token=AUTH_TOKEN,
        personas=lambda phone: (
            Persona("app", ring_ms=800, voice_url=voice_url) if phone == AGENT else Persona("busy")
        ),
    )
    await twilio.start()
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_API_BASE_URL", twilio.base_url)
    monkeypatch.delenv("IVR_TESTER_PUBLIC_URL", raising=False)
    yield twilio
    await twilio.close()


async def test_the_tester_dials_a_number_and_presses_keys_by_redirecting_the_call(
    standin: TwilioRestStandIn, tmp_path: Path
) -> None:
    pytest.importorskip("faster_whisper")
    from ivr_bridge.sim.scenario.hearing import load_bot_transcriber

    loaded = parse_suite(SUITE, tmp_path / "real.yaml")
    async with open_targets(loaded, None) as targets:
        result = await run_suite(
            loaded, targets, out_dir=tmp_path / "out", transcriber=load_bot_transcriber()
        )
    [scenario] = result.scenarios
    [run] = scenario.runs
    assert run.result is not None, run.error
    if run.status == "inconclusive":
        pytest.skip(f"inconclusive (the machine fell behind): {run.reason()}")
    assert run.status == "pass", run.result.summary_table()
    [call] = standin.calls.values()
    # What Twilio was asked: inline TwiML streaming back to the tester, no AMD, a time limit.
    assert call.to == AGENT and call.form["TimeLimit"] == "60"
    assert "MachineDetection" not in call.form
    assert "<Connect><Stream url=" in call.form["Twiml"] and STREAM_PATH in call.form["Twiml"]
    # The key went as a redirect: the far end got it as a dtmf event, on a second stream.
    assert call.relay is not None and call.relay.digits_played == ["1"]
    events = [e["event"] for e in run.result.events]
    assert events.count("stream_started") == 2
    assert call.relay.ended_by == "caller"  # the script hung up at the account number prompt
    assert call.relay.app_verdict is not None  # and the app was asked what next, as Twilio does
    said = [c for c in run.result.expectations if c.name.startswith("bot said")]
    assert all(c.status == "pass" for c in said), run.result.summary_table()
    transcript = json.loads(
        (tmp_path / "out" / "a-key-over-the-phone" / "1" / "transcript.json").read_text()
    )
    assert transcript["verdict"]["kind"] == "caller_hangup"


async def test_a_stream_upgrade_without_twilios_signature_is_refused(
    standin: TwilioRestStandIn,
) -> None:
    async with open_dialler(None) as dialler, aiohttp.ClientSession() as http:
        url = dialler.stream_url.replace("ws://", "http://")
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
        async with http.get(url, headers={**upgrade, "X-Twilio-Signature": "forged"}) as r:
            assert r.status == 403
        assert dialler.refused_upgrades == 1


def test_dialling_without_credentials_names_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    with pytest.raises(Exception, match="TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        Credentials.from_env()


LIVE = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "IVR_TESTER_PUBLIC_URL", "IVR_TESTER_LIVE_TO")


@pytest.mark.skipif(
    not all(os.environ.get(name) for name in LIVE),
    reason="live dial test: set " + ", ".join(LIVE) + " (and IVR_TESTER_LIVE_FROM)",
)
async def test_live_a_real_number_answers_and_is_heard(tmp_path: Path) -> None:
    """Against Twilio itself: the agent at IVR_TESTER_LIVE_TO speaks within 20 s of answering."""
    to = os.environ["IVR_TESTER_LIVE_TO"]
    from_ = os.environ.get("IVR_TESTER_LIVE_FROM", "")
    suite = f"""\
name: live
allow_numbers: ["{to}"]
defaults:
  target: {{dial: {{to: "{to}", from: "{from_}", time_limit_s: 60}}}}
  speed: 1
scenarios:
  - name: the agent speaks
    steps: [wait_for_bot, hangup]
    expect: {{min_bot_utterances: 1}}
"""
    loaded = parse_suite(suite, tmp_path / "live.yaml")
    async with open_targets(loaded, None) as targets:
        result = await run_suite(loaded, targets, out_dir=tmp_path / "out")
    [run] = result.scenarios[0].runs
    assert run.status == "pass", run.reason()
