"""Reading TwiML the way Twilio acts on it: where to stream, where to go after, how the call ends.

twilio-python only writes TwiML, so reading it is ours; the stdlib parser is enough for the small
documents a voice webhook returns (expat refuses entity-expansion bombs).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin

from ivr_bridge.errors import SimulationError

_PASSIVE_VERBS = frozenset({"Say", "Play", "Pause"})


class TwimlError(SimulationError, ValueError):
    """The document is not TwiML Twilio could run."""


@dataclass(frozen=True, slots=True)
class StreamInstruction:
    """``<Connect [action]><Stream url><Parameter/>…</Stream></Connect>``."""

    url: str
    """Exactly as written in the TwiML (the upgrade is signed over this)."""
    parameters: dict[str, str]
    action_url: str | None
    """Absolute (resolved against the webhook URL), or None when <Connect> has no action."""
    action_method: str = "POST"


@dataclass(frozen=True, slots=True)
class Verdict:
    """How the call ends, as decided by the TwiML Twilio runs after the stream."""

    kind: str
    """``hangup`` | ``dial`` | ``caller_hangup`` | ``stream_closed`` | ``other`` | ``error``."""
    target: str | None = None
    """Dial target (number, SIP URI, client) for ``dial``; a reason for ``error``."""
    verbs: list[str] = field(default_factory=list)
    twiml: str = ""
    said: list[str] = field(default_factory=list)
    """What ``<Say>`` verbs speak before the call ends or moves (an apology shows here)."""

    def describe(self) -> str:
        if self.kind == "dial":
            return f"dial {self.target}"
        if self.kind in ("other", "error") and (self.target or self.verbs):
            return f"{self.kind} ({self.target or ', '.join(self.verbs)})"
        return self.kind


def _parse(text: str) -> ET.Element:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise TwimlError(f"not XML: {exc}") from None
    if root.tag != "Response":
        raise TwimlError(f"root element is <{root.tag}>, not <Response>")
    return root


def find_stream(twiml: str, base_url: str) -> StreamInstruction | None:
    """The bidirectional stream the document opens, or None (``<Start><Stream>`` is one-way)."""
    root = _parse(twiml)
    for connect in root.findall("Connect"):
        stream = connect.find("Stream")
        if stream is None:
            continue
        url = stream.get("url")
        if not url:
            raise TwimlError("<Stream> has no url")
        parameters: dict[str, str] = {}
        for parameter in stream.findall("Parameter"):
            name = parameter.get("name")
            if name:
                parameters[name] = parameter.get("value", "")
        action = connect.get("action")
        return StreamInstruction(
            url=url,
            parameters=parameters,
            action_url=urljoin(base_url, action) if action else None,
            action_method=(connect.get("method") or "POST").upper(),
        )
    return None


def verdict_from_twiml(twiml: str) -> Verdict:
    """What the call does next: the first verb that ends or moves the call decides."""
    try:
        root = _parse(twiml)
    except TwimlError as exc:
        return Verdict("error", target=str(exc), twiml=twiml)
    verbs = [child.tag for child in root]
    said: list[str] = []
    for child in root:
        if child.tag == "Say" and (child.text or "").strip():
            said.append((child.text or "").strip())
        if child.tag == "Hangup":
            return Verdict("hangup", verbs=verbs, twiml=twiml, said=said)
        if child.tag == "Dial":
            target = _dial_target(child)
            return Verdict("dial", target=target, verbs=verbs, twiml=twiml, said=said)
        if child.tag in ("Redirect", "Connect", "Enqueue", "Reject"):
            return Verdict("other", target=child.tag, verbs=verbs, twiml=twiml, said=said)
    if all(verb in _PASSIVE_VERBS for verb in verbs):
        # Nothing left that keeps or moves the call: after the last verb Twilio hangs up.
        return Verdict("hangup", verbs=verbs, twiml=twiml, said=said)
    return Verdict("other", verbs=verbs, twiml=twiml, said=said)


def _dial_target(dial: ET.Element) -> str:
    for noun in ("Number", "Sip", "Client", "Conference", "Queue"):
        element = dial.find(noun)
        if element is not None:
            return (element.text or "").strip()
    return (dial.text or "").strip()


def verdict_after_connect(twiml: str) -> Verdict:
    """With no ``action``, Twilio runs the verbs after ``<Connect>``; none left ends the call."""
    root = _parse(twiml)
    rest = ET.Element("Response")
    seen_connect = False
    for child in root:
        if seen_connect:
            rest.append(child)
        seen_connect = seen_connect or (child.tag == "Connect" and child.find("Stream") is not None)
    return verdict_from_twiml(ET.tostring(rest, encoding="unicode"))
