"""Read a Prometheus /metrics page the way an operator's scraper would."""

from __future__ import annotations

import aiohttp


async def metrics(base_url: str) -> dict[str, float]:
    """Every sample on ``base_url``/metrics, by its full name with labels."""
    async with aiohttp.ClientSession() as http, http.get(base_url + "/metrics") as resp:
        text = await resp.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def metric(base_url: str, name: str, default: float | None = 0.0) -> float:
    """One sample (``name`` with its labels, e.g. ``x_total{kind="json"}``)."""
    samples = await metrics(base_url)
    if name not in samples and default is None:
        raise AssertionError(f"{name} missing from {base_url}/metrics")
    return samples.get(name, default or 0.0)
