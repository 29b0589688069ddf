"""Three real bridge processes behind a real nginx (round robin), one speech server, Redis.

The shape of a deployment on loopback: each ``ivr-bridge serve`` is its own process with its own
port, nginx upgrades WebSockets and spreads requests, Redis is a private ``redis-server`` the
test may restart. Every bridge logs JSON to a file of its own, so a test can tell which replica
served a call's webhook, its stream and its after-stream request.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.stores.redis_server import RedisProcess, free_port

AUTH_TOKEN = "replica-test-auth-token-0123456789"
CONTROL_TOKEN = "replica-test-control-token-0123456789"
SUPPORT_NUMBER = "+15005550006"
FLOWS_DIR = Path(__file__).resolve().parents[2] / "flows"

NGINX_CONF = """\
{user}
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream bridges {{
{servers}
    }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://bridges;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_buffering off;
        }}
    }}
}}
"""


def json_log(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines a bridge wrote so far (a line still being written is skipped)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def wait_http(url: str, limit_s: float = 30.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


@dataclass
class Replica:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, Any]]:
        return json_log(self.log_path)

    def saw(self, event: str, call_sid: str) -> bool:
        return any(e.get("event") == event and e.get("call_sid") == call_sid for e in self.events())


@dataclass
class Cluster:
    workdir: Path
    redis: RedisProcess
    replicas: list[Replica] = field(default_factory=list)
    speech: subprocess.Popen[bytes] | None = None
    nginx: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """Where Twilio (the simulated caller) reaches the service: nginx."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, replicas: int = 3) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise RuntimeError(
                "nginx is not installed: make test installs it (apt-get install nginx-light)"
            )
        self.redis.start()
        speech_port = free_port()
        self.speech = subprocess.Popen(
            [sys.executable, "-m", "ivr_bridge", "speech-server", "--port", str(speech_port)],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "speech.log").open("wb"),
        )
        self.port = free_port()
        self.replicas = [
            Replica(f"bridge-{i + 1}", free_port(), self.workdir / f"bridge-{i + 1}.log")
            for i in range(replicas)
        ]
        env = {
            **os.environ,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "IVR_CONTROL_TOKEN": CONTROL_TOKEN,
            "IVR_PUBLIC_URL": self.url,
            "IVR_REDIS_URL": self.redis.url,
            "IVR_WORKERS": "1",
            "IVR_FLOWS_DIR": str(FLOWS_DIR),
            "IVR_FLOW": "support_line.yaml",
            "IVR_SUPPORT_NUMBER": SUPPORT_NUMBER,
            "IVR_LOG_FORMAT": "json",
            "IVR_LOG_LEVEL": "info",
            "IVR_SHUTDOWN_GRACE_S": "2",
            "LMNT_BASE_URL": f"http://127.0.0.1:{speech_port}",
            "LMNT_API_KEY": "replica-test",
        }
        for name in ("IVR_CAMPAIGN_DB", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)
        wait_http(
            f"http://127.0.0.1:{speech_port}/v1/ai/voice/list", 60, {"X-API-Key": "replica-test"}
        )
        for replica in self.replicas:
            replica.process = subprocess.Popen(
                [sys.executable, "-m", "ivr_bridge", "serve", "--port", str(replica.port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=replica.log_path.open("wb"),
            )
        for replica in self.replicas:
            wait_http(replica.url + "/readyz", 90)
        servers = "\n".join(
            f"        server {r.url.removeprefix('http://')};" for r in self.replicas
        )
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                user="user root;" if os.geteuid() == 0 else "",
                dir=self.workdir,
                servers=servers,
                port=self.port,
            )
        )
        self.nginx = subprocess.Popen(
            [
                nginx,
                "-c",
                str(conf),
                "-p",
                str(self.workdir),
                "-e",
                str(self.workdir / "nginx-error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_http(self.url + "/healthz", 15)  # one request through: the next goes to replica 2
        self.skip_to_replica(0)

    def skip_to_replica(self, index: int) -> None:
        """Send plain requests through nginx until the next one lands on ``replicas[index]``
        (round robin: a known start makes each call's route predictable)."""
        for _ in range(len(self.replicas) * 2):
            with urllib.request.urlopen(self.url + "/healthz", timeout=5) as resp:
                pid = json.loads(resp.read()).get("pid")
            served = next(
                (i for i, r in enumerate(self.replicas) if r.process and r.process.pid == pid), None
            )
            if served is not None and (served + 1) % len(self.replicas) == index:
                return
        raise AssertionError("could not tell the replicas apart through nginx (/healthz pid)")

    def replica_of(self, event: str, call_sid: str) -> Replica | None:
        return next((r for r in self.replicas if r.saw(event, call_sid)), None)

    def kill(self, replica: Replica) -> None:
        assert replica.process is not None
        replica.process.send_signal(signal.SIGKILL)
        replica.process.wait(10)

    def stop(self) -> None:
        procs = [self.nginx, *(r.process for r in self.replicas), self.speech]
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in procs:
            if proc is not None:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.redis.stop()
