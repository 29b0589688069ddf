"""The processes under test: a bridge (``ivr-bridge serve``) and its speech server, each alone.

Separate processes so ``/proc/<bridge pid>`` measures the bridge and nothing else. Both bind
port 0 is not possible through the CLI, so free loopback ports are picked first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ivr_bridge.errors import LoadTestError


class ProcessStartError(LoadTestError):
    """A process under test did not come up; the message carries its last output."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def output_tail(self, limit: int = 2000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-limit:]

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (graceful drain), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


def _wait_http_ok(proc: ManagedProcess, path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise ProcessStartError(
                f"{proc.name} exited with {proc.process.returncode}:\n{proc.output_tail()}"
            )
        try:
            with urllib.request.urlopen(proc.base_url + path, timeout=1) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            return  # it answers HTTP: up (the speech server's routes want a key)
        except OSError:
            pass
        time.sleep(0.1)
    proc.stop()
    raise ProcessStartError(f"{proc.name} not ready after {timeout_s:.0f} s:\n{proc.output_tail()}")


def _spawn(
    name: str, args: list[str], env: dict[str, str], port: int, log_dir: Path
) -> ManagedProcess:
    log = (log_dir / f"{name}.log").open("w+b")
    process = subprocess.Popen(
        [sys.executable, "-m", "ivr_bridge", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return ManagedProcess(name, process, f"http://127.0.0.1:{port}", log)


def start_speech_server(
    log_dir: Path, *, realtime_factor: float, first_audio_delay_ms: int
) -> ManagedProcess:
    port = free_port()
    args = [
        "speech-server",
        "--port",
        str(port),
        "--realtime-factor",
        str(realtime_factor),
        "--first-audio-delay-ms",
        str(first_audio_delay_ms),
    ]
    proc = _spawn("speech-server", args, dict(os.environ), port, log_dir)
    _wait_http_ok(proc, "/v1/ai/voice/list", timeout_s=30)
    return proc


def start_redis(log_dir: Path) -> ManagedProcess:
    """A private redis-server on a free port, for a bridge with several workers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ProcessStartError(
            "--bridge-workers above 1 needs redis-server (Debian: apt-get install redis-server)"
        )
    port = free_port()
    log = (log_dir / "redis.log").open("w+b")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    proc = ManagedProcess("redis", process, f"redis://127.0.0.1:{port}/0", log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.stop()
    raise ProcessStartError(f"redis-server did not start:\n{proc.output_tail()}")


def start_bridge(
    log_dir: Path,
    *,
    speech_url: str,
    auth_token: str,
    flows_dir: Path,
    flow: str,
    workers: int = 1,
    redis_url: str | None = None,
    records: str = "metadata",
) -> ManagedProcess:
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "IVR_PORT": str(port),
            "IVR_HOST": "127.0.0.1",
            "LMNT_BASE_URL": speech_url,
            "TWILIO_AUTH_TOKEN": auth_token,
            "IVR_FLOWS_DIR": str(flows_dir),
            "IVR_FLOW": flow,
            "IVR_LOG_LEVEL": "warning",
            "IVR_SHUTDOWN_GRACE_S": "2",
            "IVR_WORKERS": str(workers),
            "IVR_RECORDS": records,
            "IVR_RECORDS_DIR": str(log_dir / "records"),
        }
    )
    env.pop("LMNT_API_KEY", None)
    env.pop("IVR_REDIS_URL", None)
    if redis_url is not None:
        env["IVR_REDIS_URL"] = redis_url
    proc = _spawn("bridge", ["serve"], env, port, log_dir)
    _wait_http_ok(proc, "/healthz", timeout_s=30)
    if workers > 1:  # the first worker to listen answers: wait until each one has
        _wait_workers(proc, workers, timeout_s=60)
    return proc


def _wait_workers(proc: ManagedProcess, workers: int, timeout_s: float) -> None:
    """Every worker answers ``/healthz`` with its pid; each new connection may reach any."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < workers:
        if time.monotonic() > deadline or proc.process.poll() is not None:
            proc.stop()
            raise ProcessStartError(
                f"{len(seen)} of {workers} bridge workers answered:\n{proc.output_tail()}"
            )
        try:
            with urllib.request.urlopen(proc.base_url + "/healthz", timeout=1) as response:
                seen.add(int(json.loads(response.read())["pid"]))
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
