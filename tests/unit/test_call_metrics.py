"""The call metrics as someone scraping ``/metrics`` sees them: a call's events and its record in,
samples out, every label bounded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ivr_bridge.call.clock import CallClock
from ivr_bridge.call.event_log import CallEventLog
from ivr_bridge.records.model import BargeIn, CallerTurn, CallRecord
from ivr_bridge.server.call_metrics import MAX_FLOWS, MAX_TOOLS, CallMetrics

START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


def record(flow: str | None = "support", **fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "call_sid": "CA1",
        "app": "flow",
        "flow": flow,
        "started_at": START,
        "ended_at": START,
        "duration_ms": 42_000.0,
        "outcome": "completed",
    }
    values.update(fields)
    return CallRecord(**values)


def turn(end_ms: float, latency_ms: float | None) -> CallerTurn:
    return CallerTurn(kind="speech", start_ms=end_ms - 800, end_ms=end_ms, latency_ms=latency_ms)


LLM_CALL: list[tuple[str, dict[str, Any]]] = [
    ("llm_start", {"step": "agent", "provider": "openai"}),
    ("caller_speech", {"start_ms": 1000, "end_ms": 2200}),
    ("llm_caller_turn", {"text_chars": 17, "engine": "faster-whisper:tiny.en", "stt_ms": 310}),
    ("llm_usage", {"prompt_tokens": 420, "completion_tokens": 31}),
    ("llm_round", {"status": "answered", "first_token_ms": 640, "filler": False, "tools": []}),
    ("bot_says", {"utterance": 2, "text": "Your balance is twelve dollars."}),
    ("caller_speech", {"start_ms": 6000, "end_ms": 6900}),
    ("llm_caller_turn", {"text_chars": 9, "engine": "faster-whisper:tiny.en", "stt_ms": 95}),
    ("llm_error", {"error": "rate_limited", "status": 429, "attempts": 3}),
    ("llm_round", {"status": "failed", "first_token_ms": None, "filler": True, "tools": []}),
    ("llm_usage", {"prompt_tokens": 455, "completion_tokens": None}),
    ("llm_round", {"status": "answered", "first_token_ms": 1800, "tools": ["end_call"]}),
    ("llm_tool", {"name": "end_call"}),
    ("end", {"action": "hangup", "number": None}),
]


def test_a_calls_events_become_stt_first_token_token_error_and_tool_figures(
    registry: CollectorRegistry,
) -> None:
    metrics = CallMetrics(registry)
    for kind, fields in LLM_CALL:
        metrics.observe_event(kind, fields)

    whisper = {"engine": "faster-whisper:tiny.en"}
    assert value(registry, "ivr_stt_seconds_count", **whisper) == 2
    assert value(registry, "ivr_stt_seconds_sum", **whisper) == pytest.approx(0.405)
    assert value(registry, "ivr_stt_seconds_bucket", le="0.1", **whisper) == 1
    assert value(registry, "ivr_llm_first_token_seconds_count") == 2  # the failed round had none
    assert value(registry, "ivr_llm_first_token_seconds_sum") == pytest.approx(2.44)
    assert value(registry, "ivr_llm_first_token_seconds_bucket", le="1.0") == 1
    assert value(registry, "ivr_llm_tokens_total", direction="prompt") == 875
    assert value(registry, "ivr_llm_tokens_total", direction="completion") == 31
    assert value(registry, "ivr_llm_errors_total", kind="rate_limited") == 1
    assert value(registry, "ivr_llm_tool_calls_total", tool="end_call") == 1


def test_flow_recognition_and_recordings_are_timed_by_engine(registry: CollectorRegistry) -> None:
    metrics = CallMetrics(registry)
    metrics.observe_event(
        "recognition", {"step": "menu", "engine": "pocketsphinx", "elapsed_ms": 120, "text": "x"}
    )
    metrics.observe_event(
        "recording", {"step": "msg", "engine": "faster-whisper", "elapsed_ms": 900}
    )
    metrics.observe_event("recording", {"step": "msg", "engine": None, "elapsed_ms": None})
    metrics.observe_event("recognition", {"text": "yes", "accepted": True})  # no timing: skipped

    assert value(registry, "ivr_stt_seconds_count", engine="pocketsphinx") == 1
    assert value(registry, "ivr_stt_seconds_sum", engine="faster-whisper") == pytest.approx(0.9)
    assert value(registry, "ivr_stt_seconds_count", engine="unknown") == 0


def test_odd_fields_are_ignored_and_unknown_error_kinds_are_other(
    registry: CollectorRegistry,
) -> None:
    metrics = CallMetrics(registry)
    metrics.observe_event("llm_round", {"first_token_ms": "soon"})
    metrics.observe_event("llm_round", {"first_token_ms": -5})
    metrics.observe_event("llm_usage", {"prompt_tokens": True, "completion_tokens": -3})
    metrics.observe_event("llm_caller_turn", {"engine": "echo"})
    metrics.observe_event("llm_error", {"error": "the model said something new"})
    metrics.observe_event("llm_error", {"error": "timeout", "stage": "first_token"})
    metrics.observe_event("llm_unavailable", {"step": "agent", "reason": "no api key"})
    metrics.observe_event("bot_first_audio", {"utterance": 1, "tts_ms": 80})

    assert value(registry, "ivr_llm_first_token_seconds_count") == 0
    assert value(registry, "ivr_llm_tokens_total", direction="prompt") == 0
    assert value(registry, "ivr_stt_seconds_count", engine="echo") == 0
    assert value(registry, "ivr_llm_errors_total", kind="other") == 1
    assert value(registry, "ivr_llm_errors_total", kind="timeout") == 1
    assert value(registry, "ivr_llm_errors_total", kind="unavailable") == 1


def test_tool_names_a_model_invents_are_clamped_to_other(registry: CollectorRegistry) -> None:
    metrics = CallMetrics(registry)
    for n in range(MAX_TOOLS + 10):
        metrics.observe_event("llm_tool", {"name": f"made_up_{n}"})
    metrics.observe_event("llm_tool", {"name": "made_up_0"})

    assert value(registry, "ivr_llm_tool_calls_total", tool="made_up_0") == 2
    assert value(registry, "ivr_llm_tool_calls_total", tool=f"made_up_{MAX_TOOLS - 1}") == 1
    assert value(registry, "ivr_llm_tool_calls_total", tool=f"made_up_{MAX_TOOLS}") == 0
    assert value(registry, "ivr_llm_tool_calls_total", tool="other") == 10
    assert _series(registry, "ivr_llm_tool_calls_total") == MAX_TOOLS + 1


def test_a_finished_call_counts_its_outcome_length_barge_ins_and_turn_responses(
    registry: CollectorRegistry,
) -> None:
    metrics = CallMetrics(registry)
    metrics.observe_record(
        record(
            turns=[turn(2200, 640.0), turn(6900, 1900.0), turn(9000, None)],
            barge_ins=[
                BargeIn(at_ms=4000, utterance=2, by="speech"),
                BargeIn(at_ms=8000, utterance=3, by="dtmf"),
            ],
        )
    )
    metrics.observe_record(record(outcome="transferred", duration_ms=130_000.0))
    metrics.observe_record(record(flow=None, app="reminder", outcome="caller_hung_up"))

    support = {"flow": "support"}
    assert value(registry, "ivr_call_outcomes_total", outcome="completed", **support) == 1
    assert value(registry, "ivr_call_outcomes_total", outcome="transferred", **support) == 1
    assert (
        value(registry, "ivr_call_outcomes_total", flow="reminder", outcome="caller_hung_up") == 1
    )
    assert value(registry, "ivr_call_duration_seconds_count", **support) == 2
    assert value(registry, "ivr_call_duration_seconds_sum", **support) == pytest.approx(172.0)
    assert value(registry, "ivr_call_duration_seconds_bucket", le="60.0", **support) == 1
    assert value(registry, "ivr_call_barge_ins_total", **support) == 2
    assert value(registry, "ivr_call_barge_ins_total", flow="reminder") == 0
    assert registry.get_sample_value("ivr_call_barge_ins_total", {"flow": "reminder"}) == 0.0
    # the unanswered turn is not a response time
    assert value(registry, "ivr_turn_response_seconds_count", **support) == 2
    assert value(registry, "ivr_turn_response_seconds_sum", **support) == pytest.approx(2.54)
    assert value(registry, "ivr_turn_response_seconds_bucket", le="1.0", **support) == 1


def test_flows_beyond_the_cap_are_other(registry: CollectorRegistry) -> None:
    metrics = CallMetrics(registry)
    for n in range(MAX_FLOWS + 5):
        metrics.observe_record(record(flow=f"flow-{n}"))

    assert value(registry, "ivr_call_outcomes_total", flow="flow-0", outcome="completed") == 1
    assert value(registry, "ivr_call_outcomes_total", flow="other", outcome="completed") == 5
    assert (
        value(registry, "ivr_call_outcomes_total", flow=f"flow-{MAX_FLOWS}", outcome="completed")
        == 0
    )
    assert _series(registry, "ivr_call_outcomes_total") == MAX_FLOWS + 1


def test_with_the_known_flows_any_other_name_is_other_at_once(registry: CollectorRegistry) -> None:
    metrics = CallMetrics(registry, flows={"support", "reminder"})
    metrics.observe_record(record(flow="support"))
    metrics.observe_record(record(flow="../../etc/passwd"))
    metrics.observe_record(record(flow=None, app="", outcome="failed"))

    assert value(registry, "ivr_call_outcomes_total", flow="support", outcome="completed") == 1
    assert value(registry, "ivr_call_outcomes_total", flow="other", outcome="completed") == 1
    assert value(registry, "ivr_call_outcomes_total", flow="none", outcome="failed") == 1


def test_dropped_records_and_webhook_deliveries(registry: CollectorRegistry) -> None:
    metrics = CallMetrics(registry)
    metrics.record_dropped()
    metrics.webhook_result("delivered", 1)
    metrics.webhook_result("delivered", 3)
    metrics.webhook_result("failed", 6)
    metrics.webhook_result("dropped", 0)
    metrics.webhook_result("rejected", 1)  # the webhook's word for a refusing receiver
    metrics.webhook_result("something else", 2)

    assert value(registry, "ivr_call_records_dropped_total") == 1
    assert value(registry, "ivr_call_webhook_deliveries_total", outcome="delivered") == 2
    assert value(registry, "ivr_call_webhook_deliveries_total", outcome="failed") == 1
    assert value(registry, "ivr_call_webhook_deliveries_total", outcome="dropped") == 1
    assert value(registry, "ivr_call_webhook_deliveries_total", outcome="rejected") == 1
    assert value(registry, "ivr_call_webhook_deliveries_total", outcome="other") == 1
    assert value(registry, "ivr_call_webhook_attempts_count") == 5  # a dropped one made none
    assert value(registry, "ivr_call_webhook_attempts_sum") == 13
    assert value(registry, "ivr_call_webhook_attempts_bucket", le="1.0") == 2


def test_it_is_a_call_event_logs_observer(registry: CollectorRegistry) -> None:
    """Wired the way the conductor wires ``on_event``: every event recorded reaches it."""
    metrics = CallMetrics(registry)
    log = CallEventLog(CallClock(), observer=metrics.observe_event)
    log.record("llm_caller_turn", text_chars=5, engine="deepgram:nova-2", stt_ms=210)
    log.record("llm_usage", prompt_tokens=12, completion_tokens=3)

    assert value(registry, "ivr_stt_seconds_count", engine="deepgram:nova-2") == 1
    assert value(registry, "ivr_llm_tokens_total", direction="completion") == 3


def test_another_prefix_and_the_bridges_own_metrics_share_a_registry(
    registry: CollectorRegistry,
) -> None:
    from ivr_bridge.metrics import BridgeMetrics

    BridgeMetrics(registry)  # ivr_calls_total{ending} is the bridge's: no name may collide
    CallMetrics(registry).observe_record(record())
    CallMetrics(registry, prefix="edge").observe_record(record())
    text = generate_latest(registry).decode()

    assert 'ivr_call_outcomes_total{flow="support",outcome="completed"} 1.0' in text
    assert 'edge_call_outcomes_total{flow="support",outcome="completed"} 1.0' in text


def _series(registry: CollectorRegistry, name: str) -> int:
    return sum(1 for metric in registry.collect() for s in metric.samples if s.name == name)
