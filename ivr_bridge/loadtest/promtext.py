"""Reading the bridge's ``/metrics``: histogram buckets, differenced, turned into quantiles."""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Cumulative bucket counts by upper bound (``+Inf`` last), plus the sum."""

    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    total: float

    @property
    def count(self) -> float:
        return self.cumulative[-1] if self.cumulative else 0.0

    def minus(self, earlier: HistogramSnapshot | None) -> HistogramSnapshot:
        """Observations made since ``earlier`` (the same histogram, scraped before)."""
        if earlier is None or earlier.bounds != self.bounds:
            return self
        return HistogramSnapshot(
            self.bounds,
            tuple(a - b for a, b in zip(self.cumulative, earlier.cumulative, strict=True)),
            self.total - earlier.total,
        )

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket holding the q-th observation (as PromQL's
        ``histogram_quantile``); the upper finite bound when it falls in ``+Inf``."""
        n = self.count
        if n <= 0:
            return None
        rank = q * n
        lower_bound, lower_count = 0.0, 0.0
        for bound, cum in zip(self.bounds, self.cumulative, strict=True):
            if cum >= rank:
                if math.isinf(bound):
                    return lower_bound
                if cum == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                    cum - lower_count
                )
            lower_bound, lower_count = bound, cum
        return lower_bound


def parse_histogram(text: str, name: str) -> HistogramSnapshot | None:
    """One (unlabelled) histogram from Prometheus text exposition; None when absent."""
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        buckets: list[tuple[float, float]] = []
        total = 0.0
        for sample in family.samples:
            if sample.name == name + "_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name == name + "_sum":
                total = sample.value
        buckets.sort()
        return HistogramSnapshot(tuple(b for b, _ in buckets), tuple(c for _, c in buckets), total)
    return None


def counter_total(text: str, name: str) -> float:
    """Sum of a counter over all its label sets (0 when absent)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == name.removesuffix("_total"):
            total += sum(s.value for s in family.samples if s.name == name)
    return total
