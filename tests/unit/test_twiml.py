"""TwiML builders: parsed back with xml.etree and checked element by element."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ivr_bridge.telephony.twilio.twiml import connect_stream, dial, hangup, say_and_hangup

STREAM_URL = "wss://bridge.example.com/twilio/stream"
ACTION_URL = "https://bridge.example.com/twilio/after-stream"


def parse(twiml: str) -> ET.Element:
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(twiml.encode())
    assert root.tag == "Response"
    return root


# ------------------------------------------------------------------ <Connect><Stream>


def test_connect_stream_structure() -> None:
    params = {"flow": "main", "caller": "+14155550100", "note": 'quotes " & <angles>'}
    root = parse(connect_stream(STREAM_URL, ACTION_URL, params))

    assert [child.tag for child in root] == ["Connect"]  # nothing after </Connect>
    connect = root[0]
    assert connect.attrib == {"action": ACTION_URL}
    assert [child.tag for child in connect] == ["Stream"]
    stream = connect[0]
    assert stream.attrib == {"url": STREAM_URL}
    sent = [(p.tag, p.attrib["name"], p.attrib["value"]) for p in stream]
    assert sent == [("Parameter", name, value) for name, value in params.items()]


def test_connect_stream_with_status_callback_and_no_parameters() -> None:
    callback = "https://bridge.example.com/twilio/stream-status"
    root = parse(connect_stream("ws://127.0.0.1:8080/s", ACTION_URL, {}, status_callback=callback))
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.attrib == {"url": "ws://127.0.0.1:8080/s", "statusCallback": callback}
    assert list(stream) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://bridge.example.com/twilio/stream",
        "bridge.example.com/twilio/stream",
        "wss:///no-host",
    ],
)
def test_connect_stream_refuses_non_websocket_url(url: str) -> None:
    with pytest.raises(ValueError, match="stream_url"):
        connect_stream(url, ACTION_URL, {})


@pytest.mark.parametrize("url", [f"{STREAM_URL}?call=CA1", f"{STREAM_URL}?", f"{STREAM_URL}#x"])
def test_connect_stream_refuses_query_string(url: str) -> None:
    with pytest.raises(ValueError, match=r"stream_url.*query"):
        connect_stream(url, ACTION_URL, {})


def test_connect_stream_parameter_size_limit_names_the_parameter() -> None:
    name = "context"
    fits = "v" * (499 - len(name))
    root = parse(connect_stream(STREAM_URL, ACTION_URL, {name: fits}))
    assert root.find("./Connect/Stream/Parameter").attrib["value"] == fits  # type: ignore[union-attr]

    with pytest.raises(ValueError, match=r"'context'.*500"):
        connect_stream(STREAM_URL, ACTION_URL, {"ok": "1", name: fits + "v"})


def test_connect_stream_refuses_empty_parameter_name_and_action() -> None:
    with pytest.raises(ValueError, match="empty name"):
        connect_stream(STREAM_URL, ACTION_URL, {"": "x"})
    with pytest.raises(ValueError, match="action_url"):
        connect_stream(STREAM_URL, "", {})


# ------------------------------------------------------------------ hangup / say


def test_hangup() -> None:
    root = parse(hangup())
    assert [child.tag for child in root] == ["Hangup"]
    assert root[0].attrib == {}


def test_say_and_hangup_escapes_text() -> None:
    text = "Sorry, we can't take your call <right now> & will call back."
    root = parse(say_and_hangup(text))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == text


@pytest.mark.parametrize("text", ["", "   ", "x" * 4097])
def test_say_and_hangup_refuses_empty_or_oversized_text(text: str) -> None:
    with pytest.raises(ValueError, match="text"):
        say_and_hangup(text)


# ------------------------------------------------------------------ dial


def test_dial_number_with_caller_id_and_timeout() -> None:
    root = parse(dial("+1 (415) 555-0100", caller_id="+14155550199", timeout_s=20))
    assert [child.tag for child in root] == ["Dial"]
    dial_el = root[0]
    assert dial_el.text == "+14155550100"
    assert dial_el.attrib == {"callerId": "+14155550199", "timeout": "20"}


def test_dial_number_plain() -> None:
    dial_el = parse(dial("+442071838750"))[0]
    assert (dial_el.text, dial_el.attrib) == ("+442071838750", {})


def test_dial_sip_uri() -> None:
    uri = "sip:agent@pbx.example.com;transport=tls"
    root = parse(dial(uri, timeout_s=30))
    dial_el = root[0]
    assert dial_el.attrib == {"timeout": "30"}
    assert [(child.tag, child.text) for child in dial_el] == [("Sip", uri)]


@pytest.mark.parametrize(
    "number", ["4155550100", "+0155550100", "+1415555010012345", "call me", "", "+1415abc0100"]
)
def test_dial_refuses_non_e164_numbers(number: str) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        dial(number)


@pytest.mark.parametrize("uri", ["sip:", "sip:agent@", "sip:a b@host", "sip:a@b@c"])
def test_dial_refuses_malformed_sip_uri(uri: str) -> None:
    with pytest.raises(ValueError, match="sip: URI"):
        dial(uri)


def test_dial_refuses_bad_caller_id_and_timeout() -> None:
    with pytest.raises(ValueError, match="caller_id"):
        dial("+14155550100", caller_id="ACME")
    with pytest.raises(ValueError, match="timeout_s"):
        dial("+14155550100", timeout_s=2)
    with pytest.raises(ValueError, match="timeout_s"):
        dial("+14155550100", timeout_s=601)
