"""What every call came to, on ``/metrics``: its events live, its record when it is over.

Two feeds, so each figure comes from where it is true. The call's events (``observe_event``, the
conductor's ``on_event``) carry what is measured while it runs: how long speech recognition took,
how long the model took to its first token, tokens spent, model errors and tool calls. The
finished record (``observe_record``) carries what only the whole call knows: how it ended, how
long it lasted, how many times the caller cut in, and each turn's response time, end of the
caller's turn → the next bot audio the caller *heard* (from the heard spans, which no single
event marks). That keeps ``observe_event`` stateless: one observer serves every call at once and
no call can leave state behind.

Every label is bounded. Flow names come from the flows directory, engines and tool names from
configuration, but a model may invent a tool and an unknown ``?flow=`` could be anything, so each
label keeps its own value only for the first few distinct values (or the known set, when the
server passes it) and clamps the rest to ``other``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Histogram

from ivr_bridge.llm.types import ErrorKind
from ivr_bridge.records.model import CallRecord, Outcome

OTHER = "other"
MAX_FLOWS = 64
MAX_ENGINES = 16
MAX_TOOLS = 32
LLM_ERROR_KINDS = frozenset({*get_args(ErrorKind), "unavailable"})
"""The provider-neutral error kinds (``llm.types.ErrorKind``) and ``unavailable`` (no model or
recogniser configured for an ``llm`` step)."""
WEBHOOK_OUTCOMES = frozenset({"delivered", "failed", "rejected", "dropped"})
"""Delivered (2xx), failed (every attempt failed), rejected (the receiver refused it: a 4xx not
retried), dropped (its queue was full, or the bridge stopped before it went)."""
_OUTCOMES = frozenset(get_args(Outcome))
_STT_EVENTS = {"recognition": "elapsed_ms", "llm_caller_turn": "stt_ms", "recording": "elapsed_ms"}
"""Events that carry a recognition time, and the field it is in."""

_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_RESPONSE_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)
_DURATION_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1800.0, 3600.0)
_ATTEMPT_BUCKETS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


class LabelCap:
    """A label's values: the known ones (when given) or the first ``limit`` distinct values seen
    keep their own series; anything else is ``other``. Empty values are ``none``."""

    def __init__(self, limit: int, known: Collection[str] | None = None) -> None:
        self._limit = limit
        self._known = frozenset(known) if known is not None else None
        self._seen: set[str] = set()

    def __call__(self, value: object) -> str:
        if value is None or value == "":
            return "none"
        text = str(value)
        if self._known is not None:
            return text if text in self._known else OTHER
        if text in self._seen:
            return text
        if len(self._seen) < self._limit:
            self._seen.add(text)
            return text
        return OTHER


class CallMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        prefix: str = "ivr",
        *,
        flows: Collection[str] | None = None,
    ) -> None:
        """``flows``: the names a call's ``flow`` label may take (the flows directory's, and the
        app names of calls that run no flow); None: the first ``MAX_FLOWS`` seen."""
        r, p = registry, prefix
        self._flow = LabelCap(MAX_FLOWS, None if flows is None else {*flows, "none"})
        self._engine = LabelCap(MAX_ENGINES)
        self._tool = LabelCap(MAX_TOOLS)
        self.stt_seconds = Histogram(
            f"{p}_stt_seconds",
            "Time to recognise one caller utterance (grammar, transcription or an LLM turn's "
            "speech-to-text), by engine",
            ["engine"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.turn_response_seconds = Histogram(
            f"{p}_turn_response_seconds",
            "End of a caller's turn until the caller heard the bot's next audio, by flow "
            "(observed when the call ends; turns the bot did not answer are not counted)",
            ["flow"],
            buckets=_RESPONSE_BUCKETS,
            registry=r,
        )
        self.llm_first_token_seconds = Histogram(
            f"{p}_llm_first_token_seconds",
            "A model request until its first text or tool call (retries included)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_tokens = Counter(
            f"{p}_llm_tokens",
            "Tokens the model provider reported, by direction (prompt | completion)",
            ["direction"],
            registry=r,
        )
        self.llm_errors = Counter(
            f"{p}_llm_errors",
            "Model requests that failed after their retries (and llm steps with no model), by kind",
            ["kind"],
            registry=r,
        )
        self.llm_speculative_replies = Counter(
            f"{p}_llm_speculative_replies",
            "Replies asked of the model before the caller's turn was certain (a pause that ended "
            "as a sentence), by fate: kept (the turn ended there: its answer), dropped (the "
            "caller went on, or the turn's words were other)",
            ["result"],
            registry=r,
        )
        self.llm_tool_calls = Counter(
            f"{p}_llm_tool_calls",
            "Tool calls the model made, by tool",
            ["tool"],
            registry=r,
        )
        self.calls = Counter(
            f"{p}_call_outcomes",
            "Finished calls by flow (the app's name for calls that run no flow) and outcome: "
            "completed, transferred, caller_hung_up, failed",
            ["flow", "outcome"],
            registry=r,
        )
        self.call_duration_seconds = Histogram(
            f"{p}_call_duration_seconds",
            "Length of finished calls, by flow",
            ["flow"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.call_barge_ins = Counter(
            f"{p}_call_barge_ins",
            "Times callers cut the bot off, by flow (from the finished calls' records)",
            ["flow"],
            registry=r,
        )
        self.records_dropped = Counter(
            f"{p}_call_records_dropped",
            "Call records lost because the record store was not keeping up",
            registry=r,
        )
        self.webhook_deliveries = Counter(
            f"{p}_call_webhook_deliveries",
            "End-of-call webhook deliveries by outcome (delivered, failed, rejected, dropped)",
            ["outcome"],
            registry=r,
        )
        self.webhook_attempts = Histogram(
            f"{p}_call_webhook_attempts",
            "Requests it took to deliver (or give up on) one end-of-call webhook",
            buckets=_ATTEMPT_BUCKETS,
            registry=r,
        )

    def observe_event(self, kind: str, fields: dict[str, Any]) -> None:
        """One call event as it is recorded (an ``EventObserver``; never raises on odd fields)."""
        field = _STT_EVENTS.get(kind)
        if field is not None:
            seconds = _seconds(fields.get(field))
            if seconds is not None:
                engine = self._engine(fields.get("engine") or "unknown")
                self.stt_seconds.labels(engine=engine).observe(seconds)
        elif kind == "llm_round":
            seconds = _seconds(fields.get("first_token_ms"))
            if seconds is not None:
                self.llm_first_token_seconds.observe(seconds)
        elif kind == "llm_usage":
            for direction in ("prompt", "completion"):
                tokens = _count(fields.get(f"{direction}_tokens"))
                if tokens:
                    self.llm_tokens.labels(direction=direction).inc(tokens)
        elif kind == "llm_error":
            error = fields.get("error")
            self.llm_errors.labels(kind=error if error in LLM_ERROR_KINDS else OTHER).inc()
        elif kind == "llm_unavailable":
            self.llm_errors.labels(kind="unavailable").inc()
        elif kind == "speculative_reply":
            result = fields.get("result")
            if result in ("kept", "dropped"):
                self.llm_speculative_replies.labels(result=result).inc()
        elif kind == "llm_tool":
            self.llm_tool_calls.labels(tool=self._tool(fields.get("name"))).inc()

    def observe_record(self, record: CallRecord) -> None:
        """A finished call's record (once per call)."""
        flow = self._flow(record.flow or record.app)
        outcome = record.outcome if record.outcome in _OUTCOMES else OTHER
        self.calls.labels(flow=flow, outcome=outcome).inc()
        self.call_duration_seconds.labels(flow=flow).observe(max(0.0, record.duration_ms) / 1000)
        barge_ins = self.call_barge_ins.labels(flow=flow)
        barge_ins.inc(len(record.barge_ins))  # 0 too: the series exists for every flow
        response = self.turn_response_seconds.labels(flow=flow)
        for turn in record.turns:
            seconds = _seconds(turn.latency_ms)
            if seconds is not None:
                response.observe(seconds)

    def record_dropped(self) -> None:
        """The record keeper's queue was full: this call's record is lost."""
        self.records_dropped.inc()

    def webhook_result(self, outcome: str, attempts: int) -> None:
        """One end-of-call webhook is settled: ``outcome`` after ``attempts`` requests."""
        label = outcome if outcome in WEBHOOK_OUTCOMES else OTHER
        self.webhook_deliveries.labels(outcome=label).inc()
        if attempts > 0:
            self.webhook_attempts.observe(attempts)


def _seconds(ms: object) -> float | None:
    """Milliseconds from an event as seconds; None for a missing, non-numeric or negative value."""
    if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0:
        return None
    return float(ms) / 1000


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value
