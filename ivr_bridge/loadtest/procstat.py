"""CPU time and resident memory of one process, read from ``/proc`` (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcSample:
    cpu_s: float
    """User + system CPU time consumed so far."""
    rss_bytes: int


def read_proc(pid: int, proc_root: Path = Path("/proc")) -> ProcSample:
    """Sample ``pid``; raises ``ProcessLookupError`` when it has exited."""
    try:
        stat = (proc_root / str(pid) / "stat").read_text()
        statm = (proc_root / str(pid) / "statm").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    rss_pages = int(statm.split()[1])
    return ProcSample(cpu_s=(utime + stime) / _TICKS_PER_S, rss_bytes=rss_pages * _PAGE_BYTES)
