"""What one load run does: how many calls, how fast they arrive, how long they talk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_FLOW = "load_talker.yaml"


@dataclass(frozen=True, slots=True)
class LoadTestConfig:
    calls: int
    """Concurrent calls at the plateau."""
    ramp_s: float = 5.0
    """Call starts are spread evenly over this long (a thundering herd is a different test)."""
    duration_s: float = 20.0
    """How long each call lasts (the caller hangs up then)."""
    barge_in_rate: float = 0.5
    """Share of bot prompts the caller interrupts by speaking; the rest play out in full."""
    url: str | None = None
    """An already running bridge to load (its ``/metrics`` is scraped; no /proc figures unless
    ``bridge_pid`` is given). None: start a bridge and a speech server here."""
    bridge_pid: int | None = None
    workers: int = 0
    """Load-generator processes; 0 picks one per 100 calls (at least 1)."""
    flow: str = DEFAULT_FLOW
    flows_dir: Path = Path("flows")
    auth_token: str = "loadtest-auth-token"
    """Shared with the bridge it starts, so every webhook and upgrade is signed as Twilio does."""
    speech_realtime_factor: float = 0.8
    """Speech-server pacing: 1.0 streams exactly at real time, lower streams faster."""
    speech_first_audio_delay_ms: int = 150
    seed: int = 1
    bridge_workers: int = 1
    records: str = "metadata"
    """``IVR_RECORDS`` of the bridge it starts (``off`` | ``metadata`` | ``audio``); its records
    go to the run's temporary directory."""
    """Processes of the bridge it starts (``serve --workers N``); above 1 they share calls
    through a private redis-server the load test starts too. CPU figures cover them all."""

    def worker_count(self) -> int:
        if self.workers > 0:
            return min(self.workers, self.calls)
        return max(1, min(self.calls, (self.calls + 99) // 100))
