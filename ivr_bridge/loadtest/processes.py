"""The processes under test: a bridge (``ivr-bridge serve``) and its speech server, each alone.

Separate processes so ``/proc/<bridge pid>`` measures the bridge and nothing else. Both bind
port 0 is not possible through the CLI, so free loopback ports are picked first.
"""

from __future__ import annotations

import os
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


def start_bridge(
    log_dir: Path, *, speech_url: str, auth_token: str, flows_dir: Path, flow: str
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
        }
    )
    env.pop("LMNT_API_KEY", None)
    proc = _spawn("bridge", ["serve"], env, port, log_dir)
    _wait_http_ok(proc, "/healthz", timeout_s=30)
    return proc
