"""The record store the settings ask for."""

from __future__ import annotations

from ivr_bridge.config import Settings
from ivr_bridge.records.sql import SqlRecordStore
from ivr_bridge.records.store import FileRecordStore, RecordStore


def open_record_store(settings: Settings) -> RecordStore | None:
    """None when records are off; the database store when ``IVR_RECORDS_DB`` is set (its
    recordings in ``IVR_RECORDS_DIR``), else the directory store.

    Nothing connects here: the database is reached (and its table made) on first use."""
    if settings.records == "off":
        return None
    if settings.records_db:
        return SqlRecordStore.from_url(settings.records_db, settings.records_dir)
    return FileRecordStore(settings.records_dir)
