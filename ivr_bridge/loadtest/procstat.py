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


def read_tree(pid: int, proc_root: Path = Path("/proc")) -> ProcSample:
    """``pid`` and every process under it, summed (``serve --workers N``: the supervisor and
    its workers). Raises ``ProcessLookupError`` when ``pid`` itself has exited; a child that
    exits between the listing and the read is left out of this sample."""
    total = read_proc(pid, proc_root)
    cpu_s, rss = total.cpu_s, total.rss_bytes
    for child in _children(pid, proc_root):
        try:
            sample = read_tree(child, proc_root)
        except ProcessLookupError:
            continue
        cpu_s += sample.cpu_s
        rss += sample.rss_bytes
    return ProcSample(cpu_s=cpu_s, rss_bytes=rss)


def _children(pid: int, proc_root: Path) -> list[int]:
    out: list[int] = []
    try:
        tasks = list((proc_root / str(pid) / "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return out
