"""A finished call's record, built from its timeline and what the caller heard.

Everything comes from two sources the call already keeps: its events (on the call clock, see
:mod:`ivr_bridge.call.event_log`) and the heard spans of the bot's utterances
(:mod:`ivr_bridge.call.call_audio`). Building it is one pass over the events when the call has
ended, nothing per frame, so keeping records costs a call almost nothing while it runs.

Masking happens here, once: each event's fields as its log line shows them (keys pressed as
bullets, sensitive values masked), the caller's keys in a turn masked only when the flow marked
them sensitive (a menu choice "2" stays readable, a PIN does not), and phone numbers cut to their
last four digits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ivr_bridge.call.call_audio import CallAudio
from ivr_bridge.call.control import CallDetails
from ivr_bridge.call.event_log import CallEventLog, mask_phone_numbers
from ivr_bridge.call.turn_timing import PHASES
from ivr_bridge.records.model import (
    BargeIn,
    BotUtterance,
    CallerTurn,
    CallRecord,
    Outcome,
    RecordAudio,
)

KEYS_TOGETHER_MS = 3000
"""Keys pressed closer than this (with no bot words between) are one turn: "1234#"."""
BARGE_IN_SLACK_MS = 400
"""A turn that began this close after a barge-in's onset is the speech that interrupted."""
_ERROR_EVENTS = {
    "flow_error": "flow error at {step}: {error}",
    "speech_lost": "speech path lost ({error})",
    "llm_error": "LLM request failed ({error})",
    "llm_stt_error": "speech-to-text failed ({error})",
    "llm_unavailable": "LLM unavailable",
    "recognition_unavailable": "recogniser unavailable",
    "transcription_unavailable": "transcription unavailable",
}
_RECOGNISED = ("recognition", "llm_caller_turn", "recording")
_PHASES = frozenset(f"{phase}_ms" for phase in PHASES)
"""The fields of a ``turn_timing`` event."""


@dataclass(frozen=True, slots=True)
class CallEnd:
    """How the stream ended, as the media-stream handler saw it."""

    ending: str
    """``bridge`` (we closed it), ``caller`` (Twilio's stop or a dropped socket), ``error``."""
    started_at: datetime
    ended_at: datetime
    app: str


def build_record(
    details: CallDetails,
    log: CallEventLog,
    audio: CallAudio,
    end: CallEnd,
    *,
    audio_file: str | None = None,
) -> CallRecord:
    events = log.events
    utterances = _utterances(events, log, audio)
    turns = _turns(events, log)
    turns = _with_latency(turns, utterances)
    latencies = sorted(t.latency_ms for t in turns if t.latency_ms is not None)
    action = next((e.get("action") for e in reversed(events) if e["kind"] == "end"), None)
    number = next((e.get("number") for e in reversed(events) if e["kind"] == "end"), None)
    errors = _errors(events)
    duration_ms = max(audio.duration_ms, float(events[-1]["call_ms"]) if events else 0.0)
    return CallRecord(
        call_sid=details.call_sid,
        stream_sid=details.stream_sid,
        app=end.app,
        flow=next((e.get("flow") for e in events if e["kind"] == "flow_step"), None),
        parameters=mask_phone_numbers(details.parameters),
        started_at=end.started_at,
        ended_at=end.ended_at,
        duration_ms=duration_ms,
        outcome=_outcome(action, end.ending),
        ending=end.ending if end.ending in ("bridge", "caller", "error") else "error",  # type: ignore[arg-type]
        transfer_to=_last_four(number) if action == "dial" and number else None,
        utterances=utterances,
        turns=turns,
        barge_ins=_barge_ins(events, log),
        errors=errors,
        latency_p50_ms=_percentile(latencies, 50),
        latency_p95_ms=_percentile(latencies, 95),
        audio=(
            RecordAudio(
                file=audio_file,
                duration_ms=audio.duration_ms,
                bytes=44 + 4 * max(len(audio.caller), len(audio.bot)),
            )
            if audio_file is not None
            else None
        ),
        events=[_masked_event(e, log) for e in events],
    )


def _outcome(action: object, ending: str) -> Outcome:
    if action == "dial":
        return "transferred"
    if action == "apologise" or ending == "error":
        return "failed"
    if action == "hangup":
        return "completed"
    return "caller_hung_up"  # the call ended before the bot decided anything


def _utterances(
    events: list[dict[str, Any]], log: CallEventLog, audio: CallAudio
) -> list[BotUtterance]:
    out: list[BotUtterance] = []
    for e in events:
        kind = e["kind"]
        if kind not in ("bot_says", "bot_plays"):
            continue
        uid = int(e["utterance"])
        span = audio.spans.get(uid)
        if kind == "bot_says":
            heard = str(e.get("text") or "")
            text, unheard = str(e.get("full_text", heard)), str(e.get("unheard") or "")
        else:  # recorded audio: heard or not by its span
            text = heard = f"[recording: {e.get('label', '')}]"
            unheard = ""
        out.append(
            BotUtterance(
                id=uid,
                start_ms=span.start_ms if span else None,
                end_ms=span.end_ms if span else None,
                text=log.mask_text(text),
                heard=log.mask_text(heard),
                unheard=log.mask_text(unheard),
                interrupted=bool(e.get("interrupted")),
                interrupted_by=e.get("by"),
                played_ms=float(e.get("played_ms") or 0.0),
            )
        )
    return out


def _turns(events: list[dict[str, Any]], log: CallEventLog) -> list[CallerTurn]:
    turns: list[CallerTurn] = []
    keys: list[tuple[float, str]] = []
    keys_cut_in = False
    onsets = [
        float(e["onset_ms"])
        for e in events
        if e["kind"] == "barge_in" and e.get("by") != "dtmf" and "onset_ms" in e
    ]
    pending: int | None = None
    """Index of a speech turn still waiting for its recognised words."""

    def flush_keys() -> None:
        nonlocal keys_cut_in
        if keys:
            pressed = "".join(k for _, k in keys)
            shown = log.mask_text(pressed) if len(pressed) > 1 else _mask_key(pressed, log)
            turns.append(
                CallerTurn(
                    kind="dtmf",
                    start_ms=keys[0][0],
                    end_ms=keys[-1][0],
                    text=shown,
                    barge_in=keys_cut_in,
                )
            )
            keys.clear()
        keys_cut_in = False

    for e in events:
        kind = e["kind"]
        if kind == "dtmf":
            at = float(e.get("at_ms", e["call_ms"]))
            if keys and at - keys[-1][0] > KEYS_TOGETHER_MS:
                flush_keys()
            keys.append((at, str(e.get("digit", ""))))
        elif kind == "barge_in" and e.get("by") == "dtmf":
            keys_cut_in = keys_cut_in or bool(keys)
        elif kind in ("bot_says", "bot_plays"):
            flush_keys()
        elif kind == "caller_speech":
            flush_keys()
            start, end = float(e["start_ms"]), float(e["end_ms"])
            barge = any(start - BARGE_IN_SLACK_MS <= o <= end for o in onsets)
            turns.append(CallerTurn(kind="speech", start_ms=start, end_ms=end, barge_in=barge))
            pending = len(turns) - 1
        elif kind == "turn_timing":
            flush_keys()  # the answer to keys just pressed
            if turns and turns[-1].phases_ms is None:
                phases = {k.removesuffix("_ms"): int(v) for k, v in e.items() if k in _PHASES}
                turns[-1] = turns[-1].model_copy(update={"phases_ms": phases})
        elif kind in _RECOGNISED and pending is not None:
            said = e.get("caller_text", e.get("text"))
            turn = turns[pending]
            turns[pending] = turn.model_copy(
                update={
                    "text": None if said is None else log.mask_text(str(said)),
                    "confidence": e.get("confidence"),
                    "engine": e.get("engine"),
                    "stt_ms": e.get("stt_ms", e.get("elapsed_ms")),
                }
            )
            pending = None
    flush_keys()
    return sorted(turns, key=lambda t: t.start_ms)


def _mask_key(key: str, log: CallEventLog) -> str:
    """One key is masked only when the flow marked a value that is exactly it sensitive."""
    return "•" if key and key in log.sensitive else key


def _with_latency(turns: list[CallerTurn], utterances: list[BotUtterance]) -> list[CallerTurn]:
    """Each turn the bot answered: its end → the next utterance the caller heard begin, when
    no other turn of the caller's came between (then that later turn is the one answered)."""
    starts = sorted(u.start_ms for u in utterances if u.start_ms is not None)
    out = []
    for n, turn in enumerate(turns):
        following = turns[n + 1].start_ms if n + 1 < len(turns) else float("inf")
        answer = next((s for s in starts if s >= turn.end_ms), None)
        latency = None
        if answer is not None and answer <= following:
            latency = round(answer - turn.end_ms, 1)
        out.append(turn.model_copy(update={"latency_ms": latency}))
    return out


def _barge_ins(events: list[dict[str, Any]], log: CallEventLog) -> list[BargeIn]:
    return [
        BargeIn(
            at_ms=float(e.get("onset_ms", e["call_ms"])),
            utterance=int(e["utterance"]),
            by=str(e.get("by", "speech")),
            onset_to_clear_ms=e.get("onset_to_clear_ms"),
            heard=log.mask_text(str(e.get("heard_text") or "")),
        )
        for e in events
        if e["kind"] == "barge_in"
    ]


def _errors(events: Iterable[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        template = _ERROR_EVENTS.get(e["kind"])
        if template is not None:
            fields = {"step": "?", "error": "?", **e}
            out.append(template.format_map(fields))
        elif e["kind"] == "end" and e.get("action") == "apologise":
            out.append("the call apologised and ended (its app or speech path failed)")
    return out


def _masked_event(event: dict[str, Any], log: CallEventLog) -> dict[str, Any]:
    head = {"kind": event["kind"], "call_ms": event["call_ms"]}
    rest = {k: v for k, v in event.items() if k not in head}
    return {**head, **log.masked(rest)}


def _last_four(number: str) -> str:
    return "•" * max(0, len(number) - 4) + number[-4:]


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    rank = max(0, min(len(values) - 1, round(pct / 100 * (len(values) - 1))))
    return values[rank]
