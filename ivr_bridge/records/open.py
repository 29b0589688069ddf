"""The record store the settings ask for."""

from __future__ import annotations

from ivr_bridge.config import Settings
from ivr_bridge.records.store import FileRecordStore, RecordStore


def open_record_store(settings: Settings) -> RecordStore | None:
    """None when records are off; the directory store unless ``IVR_RECORDS_DB`` is set."""
    if settings.records == "off":
        return None
    return FileRecordStore(settings.records_dir)
