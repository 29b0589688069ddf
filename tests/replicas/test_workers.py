"""``ivr-bridge serve --workers 2``: two processes on one port, one /metrics, one drain.

A real supervisor with two real workers (SO_REUSEPORT), the parent's embedded speech server, a
private redis-server, and the simulated caller. Which worker served a call is read from the
workers' JSON log lines (each carries ``worker``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr_bridge.sim import parse_script, run_call
from tests.replicas.cluster import AUTH_TOKEN, FLOWS_DIR, json_log, wait_http
from tests.stores.redis_server import RedisProcess, free_port

pytestmark = pytest.mark.timeout(240)

GREETING = "steps: []\nexpect: {ended: hangup}\n"
"""The welcome flow: greeting, then the bot hangs up."""


class Served:
    def __init__(self, tmp_path: Path) -> None:
        self.redis = RedisProcess(tmp_path)
        self.port = free_port()
        self.log_path = tmp_path / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.redis.start()
        env = {
            **os.environ,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "IVR_REDIS_URL": self.redis.url,
            "IVR_FLOWS_DIR": str(FLOWS_DIR),
            "IVR_LOG_FORMAT": "json",
            "IVR_SHUTDOWN_GRACE_S": "20",
        }
        for name in ("LMNT_API_KEY", "LMNT_BASE_URL", "IVR_PUBLIC_URL", "IVR_CAMPAIGN_DB"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ivr_bridge",
                "serve",
                "--workers",
                "2",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("wb"),
        )
        wait_http(self.url + "/readyz", 120)
        deadline = time.monotonic() + 120
        while len(self.worker_pids()) < 2:  # both workers up, not only the first
            assert time.monotonic() < deadline, self.log_path.read_text()[-3000:]
            time.sleep(0.2)

    def events(self) -> list[dict[str, object]]:
        return json_log(self.log_path)

    def worker_pids(self) -> set[int]:
        """Pids of workers that say they are listening (from their log lines)."""
        return {
            int(e["pid"])  # type: ignore[call-overload]
            for e in self.events()
            if e.get("event") == "bridge listening" and "pid" in e
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.redis.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def metric_sum(text: str, name: str) -> float:
    return sum(
        float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    )


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        return resp.read().decode()


async def greet(served: Served, speed: float = 20.0) -> object:
    result = await run_call(
        voice_url=served.url + "/twilio/voice",
        ws_url=None,
        script=parse_script(GREETING, "workers.yaml"),
        auth_token=AUTH_TOKEN,
        speed=speed,
        call_sid="CA" + uuid.uuid4().hex,
    )
    assert result.passed, result.summary_table()
    return result


def workers_that_streamed(served: Served) -> set[object]:
    return {e.get("worker") for e in served.events() if e.get("event") == "stream started"}


async def test_two_workers_share_the_port_and_one_metrics_page(served: Served) -> None:
    placed = 0
    # The kernel hashes each connection to a worker: keep calling until both have had one
    # (20 calls all on one worker: one chance in half a million).
    while workers_that_streamed(served) != {0, 1} and placed < 20:
        await greet(served)
        placed += 1
    assert workers_that_streamed(served) == {0, 1}
    text = await asyncio.to_thread(scrape, served.url)
    assert metric_sum(text, "ivr_calls_total") == placed  # whichever worker answered the scrape
    assert len(re.findall(r"^ivr_worker_cpu_seconds_total\{", text, re.M)) == 2
    assert metric_sum(text, "ivr_active_calls") == 0


async def test_a_dead_worker_is_replaced_and_sigterm_drains_every_worker(served: Served) -> None:
    assert served.process is not None
    victim = min(served.worker_pids())
    os.kill(victim, signal.SIGKILL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while len(served.worker_pids() - {victim}) < 2:
        assert loop.time() < deadline, "the killed worker was not replaced"
        await asyncio.sleep(0.2)
    # A call in progress when SIGTERM arrives is finished, then every process exits.
    call = asyncio.create_task(greet(served, speed=1.0))
    deadline = loop.time() + 60
    while not workers_that_streamed(served):
        assert loop.time() < deadline, "the call never reached a worker"
        await asyncio.sleep(0.05)
    served.process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(call, 60)  # passed: the greeting was heard and the bot hung up
    code = await asyncio.to_thread(served.process.wait, 60)
    assert code == 0
    for pid in served.worker_pids():
        assert _gone(pid), f"worker {pid} outlived serve"


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (reaped by whoever inherits it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
