"""Each call's record, from the media-stream handler to the keeper (``IVR_RECORDS``).

The handler knows what no layer below it does: which app ran, when the stream started, who
closed it. This module joins that to the call's own timeline when the stream is over, and holds
the bridge's one :class:`~ivr_bridge.records.keeper.RecordKeeper`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ivr_bridge.call.call_audio import CallAudio
from ivr_bridge.call.conductor import CallConductor
from ivr_bridge.call.control import CallDetails
from ivr_bridge.call.event_log import mask_phone_numbers
from ivr_bridge.config import Settings
from ivr_bridge.records.build import CallEnd, build_record
from ivr_bridge.records.keeper import RecordKeeper, RecordSink
from ivr_bridge.records.model import CallRecord
from ivr_bridge.records.open import open_record_store
from ivr_bridge.server.call_metrics import CallMetrics


def open_record_keeper(
    settings: Settings,
    sinks: list[RecordSink] | None = None,
    metrics: CallMetrics | None = None,
) -> RecordKeeper:
    return RecordKeeper(
        open_record_store(settings),
        retention_days=settings.records_retention_days,
        sinks=sinks,
        on_record=metrics.observe_record if metrics is not None else None,
        on_dropped=metrics.record_dropped if metrics is not None else None,
    )


def call_record(
    details: CallDetails,
    conductor: CallConductor | None,
    *,
    app: str,
    started_at: datetime,
    ending: str,
    keep_audio: bool,
    start_error: str | None = None,
) -> tuple[CallRecord, CallAudio | None]:
    """The finished call's record and, when it is to be kept, its audio."""
    ended_at = datetime.now(UTC)
    if conductor is None:  # the app or its speech session never started: the caller was told
        record = CallRecord(
            call_sid=details.call_sid,
            stream_sid=details.stream_sid,
            app=app,
            parameters=mask_phone_numbers(details.parameters),
            started_at=started_at,
            ended_at=ended_at,
            duration_ms=(ended_at - started_at).total_seconds() * 1000,
            outcome="failed",
            ending="bridge" if ending == "bridge" else "error",
            errors=[f"the call could not start: {start_error or 'unknown error'}"],
        )
        return record, None
    audio = conductor.audio
    has_audio = keep_audio and bool(audio.caller or audio.bot)
    record = build_record(
        details,
        conductor.event_log,
        audio,
        CallEnd(ending=ending, started_at=started_at, ended_at=ended_at, app=app),
        audio_file=f"{details.call_sid}.wav" if has_audio else None,
    )
    return record, audio if has_audio else None
