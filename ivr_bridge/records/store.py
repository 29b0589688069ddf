"""Where call records live: the contract, and the embedded default (a directory).

One JSON file per call (``<CallSid>.json``) and, with ``IVR_RECORDS=audio``, its stereo WAV
beside it. Files, not a database, because a single bridge needs nothing else and an operator can
read, copy or delete a record with the tools they already have. Several replicas share one
history through the PostgreSQL store (:mod:`ivr_bridge.records.sql`), which keeps the metadata
in the database and the recordings in a directory (a shared volume).

File work runs in a thread: a listing reads many files and must never hold up a call's audio.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Protocol

import structlog

from ivr_bridge.errors import RecordError
from ivr_bridge.records.model import CallRecord, RecordSummary

log = structlog.get_logger(__name__)

_SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_sid(call_sid: str) -> str:
    """A CallSid is also a file name: anything else (``../x``) is refused."""
    if not _SID.fullmatch(call_sid):
        raise RecordError(f"not a call id: {call_sid!r}")
    return call_sid


class RecordStore(Protocol):
    async def save(self, record: CallRecord, wav: bytes | None = None) -> None:
        """Keep ``record`` (replacing one with the same CallSid) and its recording."""
        ...

    async def get(self, call_sid: str) -> CallRecord | None: ...

    async def list(
        self,
        *,
        limit: int = 50,
        before: datetime | None = None,
        outcome: str | None = None,
        flow: str | None = None,
    ) -> list[RecordSummary]:
        """The newest records first (started before ``before``, when given)."""
        ...

    async def audio(self, call_sid: str) -> bytes | None:
        """The call's stereo WAV, or None when it has none."""
        ...

    async def purge(self, older_than: datetime) -> int:
        """Remove records (and recordings) of calls started before ``older_than``."""
        ...

    async def close(self) -> None: ...


class FileRecordStore:
    """Records as files in ``directory`` (created on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, call_sid: str, suffix: str) -> Path:
        return self.directory / f"{check_sid(call_sid)}{suffix}"

    async def save(self, record: CallRecord, wav: bytes | None = None) -> None:
        await asyncio.to_thread(self._save, record, wav)

    def _save(self, record: CallRecord, wav: bytes | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if wav is not None:  # the recording first: a record never points at a missing file
            write_atomically(self._path(record.call_sid, ".wav"), wav)
        write_atomically(
            self._path(record.call_sid, ".json"), record.model_dump_json(indent=1).encode()
        )

    async def get(self, call_sid: str) -> CallRecord | None:
        return await asyncio.to_thread(self._get, call_sid)

    def _get(self, call_sid: str) -> CallRecord | None:
        path = self._path(call_sid, ".json")
        try:
            return CallRecord.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise RecordError(f"{path}: not a call record ({exc})") from exc

    async def list(
        self,
        *,
        limit: int = 50,
        before: datetime | None = None,
        outcome: str | None = None,
        flow: str | None = None,
    ) -> list[RecordSummary]:
        return await asyncio.to_thread(self._list, limit, before, outcome, flow)

    def _list(
        self, limit: int, before: datetime | None, outcome: str | None, flow: str | None
    ) -> builtins.list[RecordSummary]:
        found: builtins.list[RecordSummary] = []
        for path in self._newest_first():
            try:
                record = CallRecord.model_validate_json(path.read_bytes())
            except (OSError, ValueError) as exc:  # one bad file must not hide the others
                log.warning("skipped an unreadable call record", path=str(path), error=str(exc))
                continue
            if before is not None and record.started_at >= before:
                continue
            if outcome is not None and record.outcome != outcome:
                continue
            if flow is not None and (record.flow or record.app) != flow:
                continue
            found.append(RecordSummary.of(record))
        found.sort(key=lambda s: s.started_at, reverse=True)
        return found[:limit]

    def _newest_first(self) -> builtins.list[Path]:
        if not self.directory.is_dir():
            return []
        paths = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.endswith(".json") and entry.is_file():
                    paths.append((entry.stat().st_mtime, Path(entry.path)))
        return [p for _, p in sorted(paths, reverse=True)]

    async def audio(self, call_sid: str) -> bytes | None:
        path = self._path(call_sid, ".wav")
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def purge(self, older_than: datetime) -> int:
        return await asyncio.to_thread(self._purge, older_than)

    def _purge(self, older_than: datetime) -> int:
        removed = 0
        for path in self._newest_first():
            try:
                record = CallRecord.model_validate_json(path.read_bytes())
            except (OSError, ValueError):
                continue
            if record.started_at < older_than:
                path.with_suffix(".wav").unlink(missing_ok=True)
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    async def close(self) -> None:
        return None


def write_atomically(path: Path, data: bytes) -> None:
    """A reader (a listing, a retention pass, another replica) never sees half a file.

    Blocking: call it in a thread. The temporary name is this writer's own, so two replicas
    saving the same call on a shared volume cannot write into each other's half-done file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
