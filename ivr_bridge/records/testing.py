"""A record store in memory: the test double for code that keeps or reads call records."""

from __future__ import annotations

from datetime import datetime

from ivr_bridge.records.model import CallRecord, RecordSummary
from ivr_bridge.records.store import check_sid


class MemoryRecordStore:
    def __init__(self) -> None:
        self.records: dict[str, CallRecord] = {}
        self.recordings: dict[str, bytes] = {}
        self.saves = 0

    async def save(self, record: CallRecord, wav: bytes | None = None) -> None:
        check_sid(record.call_sid)
        self.saves += 1
        self.records[record.call_sid] = record
        if wav is not None:
            self.recordings[record.call_sid] = wav

    async def get(self, call_sid: str) -> CallRecord | None:
        return self.records.get(call_sid)

    async def list(
        self,
        *,
        limit: int = 50,
        before: datetime | None = None,
        outcome: str | None = None,
        flow: str | None = None,
    ) -> list[RecordSummary]:
        chosen = [
            r
            for r in self.records.values()
            if (before is None or r.started_at < before)
            and (outcome is None or r.outcome == outcome)
            and (flow is None or (r.flow or r.app) == flow)
        ]
        chosen.sort(key=lambda r: r.started_at, reverse=True)
        return [RecordSummary.of(r) for r in chosen[:limit]]

    async def audio(self, call_sid: str) -> bytes | None:
        return self.recordings.get(call_sid)

    async def purge(self, older_than: datetime) -> int:
        old = [sid for sid, r in self.records.items() if r.started_at < older_than]
        for sid in old:
            del self.records[sid]
            self.recordings.pop(sid, None)
        return len(old)

    async def close(self) -> None:
        return None
