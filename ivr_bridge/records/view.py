"""A kept call drawn for operators: its record (and recording) as the shared report's view.

The same picture the tester draws for a simulated call (:mod:`ivr_bridge.report`), from the
bridge's own account: the bot's utterances where the caller heard them, cut ones red; the
caller's turns with the bot's latency after each; every barge-in as a line; keys as ticks,
exactly as masked in the record (a PIN stays bullets); the waveforms from the stereo WAV when
the call kept one. The transcript keeps what the caller heard apart from what was cut off
before they could hear it, so an operator reads the call the caller had.
"""

from __future__ import annotations

from ivr_bridge.records.model import BotUtterance, CallerTurn, CallRecord
from ivr_bridge.report.view import BotSpan, CallerSpan, CallView, Moment, TranscriptRow
from ivr_bridge.report.waveform import stereo_wav_peaks

_ENDINGS = {
    "completed": "the bot hung up",
    "transferred": "transferred",
    "caller_hung_up": "the caller hung up",
    "failed": "failed",
}


def record_view(
    record: CallRecord, wav: bytes | None = None, *, audio_src: str | None = None
) -> CallView:
    """``record`` as a view; ``wav`` (its recording) draws the waveforms, ``audio_src`` is where
    a page's player finds it (None: no player). Reads the whole WAV: call it off the loop."""
    duration_ms = max(record.duration_ms, record.audio.duration_ms if record.audio else 0.0)
    caller, bot = stereo_wav_peaks(wav, max(duration_ms, 1000.0)) if wav else ((), ())
    return CallView(
        duration_ms=max(duration_ms, 1000.0),
        caller_peaks=caller,
        bot_peaks=bot,
        utterances=[
            BotSpan(u.start_ms, u.end_ms, _spoken(u), u.interrupted)
            for u in record.utterances
            if u.start_ms is not None and u.end_ms is not None
        ],
        turns=[
            CallerSpan(t.start_ms, t.end_ms, _kind(t), _said(t), t.barge_in, t.latency_ms)
            for t in record.turns
        ],
        moments=_moments(record),
        transcript=_transcript(record),
        audio_src=audio_src,
    )


def describe_outcome(record: CallRecord) -> str:
    shown = _ENDINGS[record.outcome]
    if record.outcome == "transferred" and record.transfer_to:
        shown += f" to {record.transfer_to}"
    return shown


def _spoken(u: BotUtterance) -> str:
    if u.unheard:
        return f"heard: {u.heard} | cut off: {u.unheard}"
    return u.heard or u.text


def _kind(turn: CallerTurn) -> str:
    return "keys" if turn.kind == "dtmf" else "speech"


def _said(turn: CallerTurn) -> str:
    if turn.text is not None:
        return turn.text
    return "(no keys)" if turn.kind == "dtmf" else "(not recognised)"


def _moments(record: CallRecord) -> list[Moment]:
    out = []
    for b in record.barge_ins:
        took = f", stopped {b.onset_to_clear_ms:.0f} ms later" if b.onset_to_clear_ms else ""
        out.append(
            Moment(b.at_ms, "barge_in", f"barge-in by {b.by} at {b.at_ms / 1000:.2f} s{took}")
        )
    for e in record.events:
        if e.get("kind") == "dtmf":
            at = float(e.get("at_ms", e.get("call_ms", 0.0)))
            out.append(Moment(at, "digit", f"key {e.get('digit', '?')}"))
        elif e.get("kind") == "clear":
            at = float(e.get("call_ms", 0.0))
            out.append(Moment(at, "clear", f"clear at {at / 1000:.2f} s"))
    if not any(m.kind == "digit" for m in out):  # a record without its events: the turns' keys
        out += [
            Moment(t.start_ms, "digit", f"keys {t.text or ''}")
            for t in record.turns
            if t.kind == "dtmf"
        ]
    return out


def _said_at(record: CallRecord, utterance: int) -> float:
    """When the bot began an utterance the caller never heard: its event's call time."""
    for e in record.events:
        if e.get("kind") in ("bot_says", "bot_plays") and e.get("utterance") == utterance:
            return float(e.get("call_ms", 0.0))
    return 0.0


def _transcript(record: CallRecord) -> list[TranscriptRow]:
    rows: list[TranscriptRow] = []
    for u in record.utterances:
        at = u.start_ms if u.start_ms is not None else _said_at(record, u.id)
        by = {"hangup": "the hang-up"}.get(u.interrupted_by or "", u.interrupted_by or "the caller")
        note = f"cut off by {by}" if u.interrupted else ""
        if u.start_ms is None:
            note = "never heard" + (f" ({note})" if note else "")
        heard = u.heard if u.start_ms is not None else ""
        unheard = u.unheard if u.start_ms is not None else (u.text or u.unheard)
        rows.append(TranscriptRow(at, "bot", heard, unheard=unheard, note=note))
    for t in record.turns:
        who = "caller (barge-in)" if t.barge_in else "caller"
        extras = []
        if t.engine:
            extras.append(t.engine + (f" {t.confidence:.2f}" if t.confidence is not None else ""))
        if t.latency_ms is not None:
            extras.append(f"bot answered after {t.latency_ms:.0f} ms")
        if t.phases_ms:
            shown = (f"{k} {v}" for k, v in t.phases_ms.items() if k != "total")
            extras.append("(" + ", ".join(shown) + " ms)")
        rows.append(
            TranscriptRow(t.start_ms, who, f"{_kind(t)}: {_said(t)}", note="; ".join(extras))
        )
    for b in record.barge_ins:
        heard = f'after "{b.heard}"' if b.heard else "before a word was heard"
        rows.append(TranscriptRow(b.at_ms, "barge-in", f"by {b.by}, {heard}"))
    rows.sort(key=lambda r: r.at_ms)
    end = describe_outcome(record)
    rows.append(TranscriptRow(record.duration_ms, "end", end, note="; ".join(record.errors)))
    return rows
