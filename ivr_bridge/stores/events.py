"""Live-call events as JSON, for the hop from one replica to another.

The events are small frozen dataclasses in ``ivr_bridge.call.registry``; each crosses Redis as
``{"type": ..., fields...}``. An unknown type or a malformed body is refused with a
``ValueError`` (the receiver logs and drops it: a newer replica's event must not crash an older
one during a rolling update).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ivr_bridge.call.registry import CallEvent, HangUpNow, MachineDetected, TransferNow

_TYPES: dict[str, type[Any]] = {
    "hangup": HangUpNow,
    "transfer": TransferNow,
    "machine_detected": MachineDetected,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def encode_event(call_sid: str, event: CallEvent) -> str:
    body = {"type": _NAMES[type(event)], **dataclasses.asdict(event)}
    return json.dumps({"call_sid": call_sid, "event": body}, separators=(",", ":"))


def decode_event(raw: str | bytes) -> tuple[str, CallEvent]:
    try:
        message = json.loads(raw)
        call_sid = message["call_sid"]
        body = dict(message["event"])
        cls = _TYPES[body.pop("type")]
        if not isinstance(call_sid, str):
            raise TypeError("call_sid is not a string")
        event: CallEvent = cls(**body)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a live-call event: {exc!r}") from None
    return call_sid, event
