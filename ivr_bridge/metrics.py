"""Prometheus metrics, one registry per server so tests and embedded servers never collide."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SPEECH_ERROR_TYPES = frozenset(
    {
        "authentication_error",
        "connection_closed",
        "connection_error",
        "internal_error",
        "internal_server_error",
        "invalid_request_error",
        "not_found_error",
        "protocol_error",
        "rate_limit_error",
        "startup",
        "stalled",
        "timeout",
        "unsupported_audio_format",
    }
)
"""Speech error types kept as a label; anything a speech service makes up becomes ``other``
(a label per free-form string would grow the series without bound)."""


def speech_error_label(error_type: str) -> str:
    return error_type if error_type in SPEECH_ERROR_TYPES else "other"


def add_process_metrics(registry: CollectorRegistry, prefix: str) -> None:
    """What a leak shows up in: the process's fds, memory and CPU (``process_*``), and the
    event loop's task count (``<prefix>_asyncio_tasks``), read at scrape time."""
    ProcessCollector(registry=registry)
    Gauge(
        f"{prefix}_asyncio_tasks", "Tasks alive on the event loop", registry=registry
    ).set_function(_task_count)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped from outside the loop (e.g. a test's registry read)
        return 0.0


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """Set (by ``serve --workers N``) when several processes serve one port: every metric is
    kept in files there and any worker's ``/metrics`` reports all of them."""
    return os.environ.get(MULTIPROC_ENV) or None


def render_all_workers(directory: str) -> bytes:
    """The exposition for every worker writing to ``directory``: counters and histograms
    summed, gauges by their ``multiprocess_mode``, and each live worker's process figures
    labelled by pid (prometheus-client's process collector sees only its own process)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    registry.register(_WorkerProcesses(directory))
    return generate_latest(registry)


class _WorkerProcesses(Collector):
    """CPU, memory and descriptors of each worker whose metric files are in the directory."""

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        cpu = CounterMetricFamily(
            "ivr_worker_cpu_seconds", "CPU time of each worker process", labels=["pid"]
        )
        rss = GaugeMetricFamily(
            "ivr_worker_resident_memory_bytes", "Resident memory of each worker", labels=["pid"]
        )
        fds = GaugeMetricFamily(
            "ivr_worker_open_fds", "Open descriptors of each worker", labels=["pid"]
        )
        for pid in sorted(_worker_pids(self._directory)):
            figures = _process_figures(pid)
            if figures is None:
                continue
            cpu.add_metric([str(pid)], figures[0])
            rss.add_metric([str(pid)], figures[1])
            fds.add_metric([str(pid)], figures[2])
        return [cpu, rss, fds]


def _worker_pids(directory: str) -> set[int]:
    pids = set()
    for name in os.listdir(directory):
        stem = name.rsplit(".", 1)[0]
        tail = stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            pids.add(int(tail))
    return pids


def _process_figures(pid: int) -> tuple[float, float, float] | None:
    """(CPU seconds, RSS bytes, open fds) from /proc, None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_s = (int(fields[11]) + int(fields[12])) / ticks
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError, ValueError):
        return None
    return cpu_s, float(rss), float(fds)


@dataclass
class BridgeMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        if multiprocess_dir() is None:  # one process: its own figures (else: per worker)
            add_process_metrics(r, "ivr")
        self.active_calls = Gauge(
            "ivr_active_calls",
            "Media streams currently open",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.speech_sessions_open = Gauge(
            "ivr_speech_sessions_open",
            "Speech-session sockets opened and not yet closed (one per live call)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.calls_total = Counter(
            "ivr_calls_total", "Media streams ended, by how they ended", ["ending"], registry=r
        )
        self.frames_in = Counter(
            "ivr_frames_in_total", "Twilio messages received, by event", ["event"], registry=r
        )
        self.frames_out = Counter(
            "ivr_frames_out_total", "Messages sent to Twilio, by event", ["event"], registry=r
        )
        self.malformed_frames = Counter(
            "ivr_malformed_frames_total",
            "Twilio frames that could not be parsed (logged and skipped)",
            ["kind"],
            registry=r,
        )
        self.tts_first_audio = Histogram(
            "ivr_tts_first_audio_seconds",
            "Flush sent to the speech session until its first audio byte",
            buckets=(0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0),
            registry=r,
        )
        self.start_to_first_media = Histogram(
            "ivr_start_to_first_media_seconds",
            "Twilio 'start' received until the first outbound media frame",
            buckets=(0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0),
            registry=r,
        )
        self.signature_rejections = Counter(
            "ivr_signature_rejections_total",
            "Requests refused for a missing or wrong X-Twilio-Signature",
            ["route"],
            registry=r,
        )
        self.speech_errors = Counter(
            "ivr_speech_session_errors_total",
            "Speech session failures, by type",
            ["type"],
            registry=r,
        )
        self.barge_ins = Counter(
            "ivr_barge_ins_total",
            "Prompts cut short by the caller, by what interrupted them",
            ["by"],
            registry=r,
        )
        self.false_interruptions = Counter(
            "ivr_false_interruptions_total",
            "Speech onsets that paused the bot but were not confirmed (noise, a cough); it resumed",
            registry=r,
        )
        self.vad_confirmer_rejections = Counter(
            "ivr_vad_confirmer_rejections_total",
            "Speech onsets over an audible prompt that webrtcvad heard and the confirmer "
            "(silero, IVR_VAD_CONFIRM) rejected as noise: the bot was not interrupted",
            registry=r,
        )
        self.lookahead_recognitions = Counter(
            "ivr_lookahead_recognitions_total",
            "Caller pauses recognised ahead of the end of the utterance, by what became of them: "
            "used (the utterance ended there: no second run), dropped (the caller went on)",
            ["result"],
            registry=r,
        )
        self.early_endpoints = Counter(
            "ivr_early_endpoints_total",
            "Utterances ended after the short wait because their words already answered",
            registry=r,
        )
        self.turn_phase_seconds = Histogram(
            "ivr_turn_phase_seconds",
            "One caller turn's answer, piece by piece: endpointing (voice end → utterance "
            "delivered), recognition (delivered → text; 0 when recognised ahead), first_token "
            "(request → model's first token), tts (text → first audio), release (first audio → "
            "sent to Twilio), total (voice end → first audio sent)",
            ["phase"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 2.5, 5.0),
            registry=r,
        )
        self.barge_in_latency = Histogram(
            "ivr_barge_in_onset_to_clear_seconds",
            "Caller speech onset (or digit) until 'clear' was sent, on the call's audio clock",
            buckets=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0),
            registry=r,
        )
        self.event_loop_lag = Histogram(
            "ivr_event_loop_lag_seconds",
            "How late a 10 ms timer fires on the bridge's event loop: the delay every inbound "
            "frame waits before it is handled (sampled continuously)",
            buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25),
            registry=r,
        )
        self.playback_underruns = Counter(
            "ivr_playback_underruns",
            "Times Twilio played everything we sent while the utterance still had audio to come "
            "(silence heard inside an utterance because audio was late); pauses between "
            "utterances and barge-in pauses are not counted",
            registry=r,
        )
        self.playback_underrun_seconds = Counter(
            "ivr_playback_underrun_seconds",
            "Total length of those dry spells (from Twilio's last echo to the next frame sent)",
            registry=r,
        )
        self.speech_recoveries = Counter(
            "ivr_speech_recoveries_total",
            "Speech sessions that failed mid-call, by whether a replacement took over",
            ["result"],
            registry=r,
        )
        self.streams_refused = Counter(
            "ivr_streams_refused_total",
            "Media streams closed because they were not a usable call, by reason",
            ["reason"],
            registry=r,
        )
        self.shared_state_up = Gauge(
            "ivr_shared_state_up",
            "1 while the replicas' shared state (IVR_REDIS_URL) answers, 0 while it is away "
            "(absent: state kept in this process; several workers: the lowest)",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.control_requests = Counter(
            "ivr_control_requests_total",
            "Requests to the control route, by result",
            ["result"],
            registry=r,
        )
        self.playback_stale_frames = Counter(
            "ivr_playback_stale_frames",
            "Media frames of a cleared prompt sent after its 'clear' (should stay 0)",
            registry=r,
        )
        self.campaign_callbacks = Counter(
            "ivr_campaign_callbacks_total",
            "Twilio status and answering-machine callbacks, by kind and whether a campaign "
            "placed the call",
            ["kind", "known"],
            registry=r,
        )
        self.campaign_dials = Counter(
            "ivr_campaign_dials_total",
            "What the dispatcher did with each due attempt: placed, retry (Twilio said later), "
            "failed, opted_out, expired_window, outside_hours",
            ["result"],
            registry=r,
        )
        self.amd_results = Counter(
            "ivr_amd_results_total",
            "Answering-machine verdicts (the 'unknown' share is worth watching)",
            ["answered_by"],
            registry=r,
        )

        self.campaign_first_audio = Histogram(
            "ivr_campaign_dial_to_first_audio_seconds",
            "A campaign call: the dial request until the bridge sent its first audio (ringing "
            "included: the callee's part of it shows up here too)",
            buckets=(0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 60.0),
            registry=r,
        )
        self.campaign_attempts = Gauge(
            "ivr_campaign_attempts",
            "Attempts by campaign and outcome, read from the campaign database (the same on "
            "every replica: aggregate with max, not sum)",
            ["campaign", "outcome"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.campaign_answer_rate = Gauge(
            "ivr_campaign_answer_rate",
            "Share of placed attempts someone or something answered, by campaign",
            ["campaign"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.campaign_amd_unknown_rate = Gauge(
            "ivr_campaign_amd_unknown_rate",
            "Share of answering-machine verdicts that were 'unknown', by campaign",
            ["campaign"],
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def observe_underrun(self, gap_s: float) -> None:
        """Playback told of a dry spell inside an utterance (``gap_s`` long)."""
        self.playback_underruns.inc()
        self.playback_underrun_seconds.inc(gap_s)
