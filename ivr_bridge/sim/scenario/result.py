"""The outcome of one simulated call: verdict, timeline, checked expectations, printable summary.

Timing is judged honestly. Everything is stamped on the caller's line clock, and what the
server sends is stamped when the caller received it: later than the server's own decision by
the server's real processing time (times the simulation speed) and by however far the caller's
line fell behind its schedule. So a timing limit the call missed by no more than that slack
(``timing_slack_ms``: the line's worst lag plus ``REAL_TIME_FLOOR_MS`` of real time at this
speed) is *inconclusive*, never a failure, and the run says so with the lag; a limit missed by
more is a failure; a limit met is a pass, since the slack can only make delays look longer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ivr_bridge.sim.scenario import audio_timing
from ivr_bridge.sim.scenario.matching import apology_in, best_match
from ivr_bridge.sim.scenario.recording import CallerTurn, CallRecorder, Utterance
from ivr_bridge.sim.scenario.script import Expectations
from ivr_bridge.sim.twilio.session import StreamStats
from ivr_bridge.sim.twilio.twiml import Verdict

REAL_TIME_FLOOR_MS = 50.0
"""Real time every timing limit allows the server (and this machine) on top of the limit: at
speed S it is S times as much call time. A loaded 2-core machine stalls for tens of ms."""

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True, slots=True)
class ExpectationResult:
    name: str
    status: Status
    detail: str
    at_ms: float | None = None
    """Where on the call the check looked (a report puts its verdict there), when one place."""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def _status(ok: bool) -> Status:
    return "pass" if ok else "fail"


def timing_slack_ms(stats: StreamStats | None, speed: float) -> float:
    """How much later than the server decided a reply can be stamped on the caller's clock."""
    lag = stats.max_tick_lag_ms if stats is not None else 0.0
    return lag + REAL_TIME_FLOOR_MS * speed


def _timing(
    name: str, measured: list[float | None], limit_ms: float, slack_ms: float, what: str
) -> ExpectationResult:
    """Upper-bound timing check with the slack rule above."""
    detail = ", ".join("none" if x is None else f"{x:.0f} ms" for x in measured) or what
    if not measured or any(x is None for x in measured):
        return ExpectationResult(name, "fail", detail)
    worst = max(x for x in measured if x is not None)
    if worst <= limit_ms:
        return ExpectationResult(name, "pass", detail)
    if worst <= limit_ms + slack_ms:
        note = f"{detail}; within the {slack_ms:.0f} ms the caller's clock cannot vouch for"
        return ExpectationResult(name, "inconclusive", note)
    return ExpectationResult(name, "fail", detail)


@dataclass(slots=True)
class CallResult:
    call_sid: str
    stream_sid: str
    verdict: Verdict
    recorder: CallRecorder
    stats: StreamStats | None
    """None when no stream was opened (TwiML without <Connect><Stream>, rejected upgrade)."""
    speed: float
    expectations: list[ExpectationResult] = field(default_factory=list)
    out_dir: Path | None = None

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.expectations)

    @property
    def inconclusive(self) -> bool:
        """Nothing failed, but some timing could not be judged (see the module docstring)."""
        statuses = {e.status for e in self.expectations}
        return "inconclusive" in statuses and "fail" not in statuses

    @property
    def status(self) -> Status:
        if self.passed:
            return "pass"
        return "inconclusive" if self.inconclusive else "fail"

    @property
    def lag_ms(self) -> float:
        """How far the caller's line fell behind its own schedule (call ms)."""
        return self.stats.max_tick_lag_ms if self.stats is not None else 0.0

    @property
    def slack_ms(self) -> float:
        """What a timing assertion on this run must allow on top of its limit."""
        return timing_slack_ms(self.stats, self.speed)

    @property
    def utterances(self) -> list[Utterance]:
        return self.recorder.utterances

    @property
    def turns(self) -> list[CallerTurn]:
        return self.recorder.turns

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.recorder.events

    def transcript(self) -> dict[str, Any]:
        stats = None
        if self.stats is not None:
            stats = asdict(self.stats)
            stats["warned_codes"] = sorted(self.stats.warned_codes)
        return {
            "call_sid": self.call_sid,
            "stream_sid": self.stream_sid,
            "speed": self.speed,
            "verdict": {
                "kind": self.verdict.kind,
                "target": self.verdict.target,
                "verbs": self.verdict.verbs,
                "twiml": self.verdict.twiml,
            },
            "events": self.events,
            "utterances": [u.to_json() for u in self.utterances],
            "turns": [t.to_json() for t in self.turns],
            "stats": stats,
            "expectations": [asdict(e) for e in self.expectations],
            "passed": self.passed,
            "status": self.status,
            "caller_lag_ms": round(self.lag_ms, 1),
        }

    def write(self, out_dir: Path) -> None:
        """``call.wav`` (left caller, right heard) and ``transcript.json``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self.recorder.write_wav(out_dir / "call.wav")
        (out_dir / "transcript.json").write_text(
            json.dumps(self.transcript(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        self.out_dir = out_dir

    def summary_table(self) -> str:
        """Plain-text summary for the terminal."""
        rows: list[tuple[str, str, str]] = []
        for u in self.utterances:
            text = u.text if u.text is not None else f"({(u.end_ms - u.start_ms) / 1000:.1f} s)"
            flag = " [interrupted]" if u.interrupted else ""
            rows.append((_ms(u.start_ms), "bot", text + flag))
        for t in self.turns:
            latency = "-" if t.latency_ms is None else f"{t.latency_ms:.0f} ms"
            kind = "caller" + (" (barge-in)" if t.barge_in else "")
            rows.append((_ms(t.start_ms), kind, f"{t.kind}: {t.detail}  → bot after {latency}"))
        for e in self.events:
            if e["event"] == "llm_turn":  # what the model chose (the turns show what was sent)
                rows.append((_ms(e["t_ms"]), "llm", _llm_move(e)))
            elif e["event"] in _SHOWN_EVENTS:
                detail = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("t_ms", "event"))
                rows.append((_ms(e["t_ms"]), e["event"], detail))
        rows.sort(key=lambda r: float(r[0].rstrip(" s")))
        lines = [_table(("call time", "who", "what"), rows)]
        lines.append(f"verdict: {self.verdict.describe()}")
        if self.stats is not None:
            s = self.stats
            lines.append(
                f"media sent {s.media_sent}; bot audio received {s.bot_bytes_received / 8000:.1f}"
                f" s, heard {s.bot_bytes_heard / 8000:.1f} s, cleared"
                f" {s.bot_bytes_cleared / 8000:.1f} s; marks {s.marks_received} received,"
                f" {s.marks_echoed} echoed; clears {s.clears}; protocol errors {s.protocol_errors}"
            )
        if self.expectations:
            lines.append(
                _table(
                    ("expectation", "result", "detail"),
                    [(e.name, _SHOWN[e.status], e.detail) for e in self.expectations],
                )
            )
        if self.inconclusive:
            lines.append(
                f"INCONCLUSIVE: a timing limit was missed by less than the caller's clock can "
                f"vouch for (line lag {self.lag_ms:.0f} ms at speed {self.speed:g}); run again "
                f"at a lower --speed"
            )
        return "\n".join(lines)


_SHOWN: dict[str, str] = {"pass": "pass", "fail": "FAIL", "inconclusive": "inconclusive"}
_SHOWN_EVENTS = ("clear", "protocol_error", "wait_timeout", "warning", "llm_error", "llm_gave_up")


def _llm_move(event: dict[str, Any]) -> str:
    """An LLM caller's turn in a few words: what it said, pressed, whether it hung up."""
    move = [f"said {event['said']!r}"] if event.get("said") else []
    move += [f"pressed {event['keys']}"] if event.get("keys") else []
    move += ["hung up"] if event.get("hang_up") else []
    return "; ".join(move) or "did nothing"


def _ms(t_ms: float) -> str:
    return f"{t_ms / 1000:.2f} s"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    widths[-1] = min(widths[-1], 70)

    def line(row: tuple[str, ...]) -> str:
        cells = [str(c)[: widths[i]].ljust(widths[i]) for i, c in enumerate(row)]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def check_expectations(
    expect: Expectations,
    verdict: Verdict,
    recorder: CallRecorder,
    stats: StreamStats | None,
    *,
    slack_ms: float = 0.0,
) -> list[ExpectationResult]:
    """Evaluate what the script says the call must show."""
    results: list[ExpectationResult] = []
    for error in recorder.events_of("llm_error")[:1]:
        # An LLM caller whose model failed hung up early: whatever else this call shows, it is
        # not what the agent would have done with the rest of the conversation.
        why = f"the caller's model failed, so the caller hung up: {error['error']}"
        results.append(ExpectationResult("LLM caller answered", "inconclusive", why))
    ended = expect.ended or ("dial" if expect.dial is not None else None)
    if ended is not None:
        kind, how = ending(verdict, recorder)
        at = recorder.line_end_ms
        results.append(ExpectationResult(f"ended: {ended}", _status(kind == ended), how, at))
    if expect.dial is not None:
        results.append(
            ExpectationResult(
                f"dial: {expect.dial}",
                _status(verdict.kind == "dial" and verdict.target == expect.dial),
                verdict.describe(),
            )
        )
    for text in expect.bot_said:
        results.append(_bot_said(text, recorder, expect.bot_said_similarity))
    if expect.keys is not None:
        pressed = "".join(str(e["digit"]) for e in recorder.events_of("digit"))
        results.append(
            ExpectationResult(
                f"keys: {expect.keys or '(none)'}",
                _status(pressed == expect.keys),
                f"pressed {pressed or 'nothing'}",
            )
        )
    if expect.min_bot_utterances is not None:
        count = len(recorder.utterances)
        results.append(
            ExpectationResult(
                f"bot utterances ≥ {expect.min_bot_utterances}",
                _status(count >= expect.min_bot_utterances),
                f"{count} utterances",
            )
        )
    if expect.max_turn_latency_ms is not None:
        limit = expect.max_turn_latency_ms
        latencies = [t.latency_ms for t in recorder.turns]
        results.append(
            _timing(f"turn latency ≤ {limit} ms", latencies, limit, slack_ms, "no caller turns")
        )
    results += _audio_timing(expect, recorder, slack_ms)
    if expect.clear_after_barge_in_ms is not None:
        limit = expect.clear_after_barge_in_ms
        results.append(
            _timing(
                f"clear within {limit} ms of barge-in",
                _clear_delays(recorder),
                limit,
                slack_ms,
                "no barge-in happened",
            )
        )
    errors = stats.protocol_errors if stats is not None else 0
    results.append(
        ExpectationResult(
            f"protocol errors ≤ {expect.protocol_errors}",
            _status(errors <= expect.protocol_errors),
            f"{errors} server messages Twilio would reject",
        )
    )
    return results


def _audio_timing(
    expect: Expectations, recorder: CallRecorder, slack_ms: float
) -> list[ExpectationResult]:
    """The limits measured from the heard audio (:mod:`ivr_bridge.sim.scenario.audio_timing`)."""
    out: list[ExpectationResult] = []
    latencies = audio_timing.turn_latencies(recorder)
    for q, limit in ((50, expect.turn_latency_p50_ms), (95, expect.turn_latency_p95_ms)):
        if limit is not None:
            value = audio_timing.percentile(latencies, q)
            name = f"turn latency p{q} ≤ {limit} ms"
            out.append(_timing(name, [value], limit, slack_ms, "no caller turns"))
    if expect.max_yield_ms is not None:
        limit = expect.max_yield_ms
        measured = audio_timing.yields(recorder)
        out.append(_timing(f"yield ≤ {limit} ms", measured, limit, slack_ms, "no barge-in"))
    if expect.max_talk_over_ms is not None:
        limit = expect.max_talk_over_ms
        overlaps = audio_timing.talk_overs(recorder)
        if not overlaps:
            out.append(ExpectationResult(f"talk-over ≤ {limit} ms", "pass", "none"))
        else:
            out.append(_timing(f"talk-over ≤ {limit} ms", list(overlaps), limit, slack_ms, ""))
    if expect.max_dead_air_ms is not None:
        limit = expect.max_dead_air_ms
        gaps = audio_timing.dead_air(recorder)
        longest = max(gaps, key=lambda g: g.duration_ms, default=None)
        name = f"dead air ≤ {limit} ms"
        if longest is None:
            out.append(ExpectationResult(name, "pass", "none"))
        else:
            check = _timing(name, [longest.duration_ms], limit, slack_ms, "")
            where = f"longest {longest.duration_ms:.0f} ms at {longest.start_ms / 1000:.1f} s"
            out.append(ExpectationResult(check.name, check.status, where, longest.start_ms))
    return out


def ending(verdict: Verdict, recorder: CallRecorder) -> tuple[str, str]:
    """How the call ended and how to say so: when the bot ended the call, an apology in its last
    words (or the TwiML's) makes it ``apology`` — a caller hanging up after a reprompt's "sorry"
    is still the caller's hang-up."""
    how = verdict.describe()
    if verdict.kind in ("hangup", "stream_closed"):
        last = next((u for u in reversed(recorder.utterances) if u.text), None)
        for words in [*verdict.said, last.text if last is not None else ""]:
            if words and (sorry := apology_in(words)) is not None:
                return "apology", f"{how} after an apology ({sorry!r}: {words[:120]!r})"
    return verdict.kind, how


def _bot_said(text: str, recorder: CallRecorder, similarity: float) -> ExpectationResult:
    """``text`` against every utterance the caller heard (each transcribed on its own)."""
    name = f"bot said: {text}"
    utterances = recorder.utterances
    if not utterances:
        return ExpectationResult(name, "fail", "the bot said nothing")
    if any(u.text is None for u in utterances):
        return ExpectationResult(
            name, "fail", "not verifiable: bot audio was not transcribed (use --transcribe)"
        )
    matches = [(best_match(text, u.text or ""), u) for u in utterances]
    match, where = max(matches, key=lambda m: m[0].score)
    at = f"{where.start_ms / 1000:.1f} s"
    if match.passes(similarity):
        detail = f"heard {match.heard!r} at {at} (score {match.score:.2f})"
        return ExpectationResult(name, "pass", detail, where.start_ms)
    closest = f"closest {match.heard!r} at {at} (score {match.score:.2f} < {similarity:.2f})"
    if not match.heard:
        return ExpectationResult(name, "fail", "nothing close was heard")
    return ExpectationResult(name, "fail", closest, where.start_ms)


def _clear_delays(recorder: CallRecorder) -> list[float | None]:
    """Per barge-in: the caller starting to interrupt → the next ``clear`` (None: none came)."""
    clears = [e["t_ms"] for e in recorder.events_of("clear")]
    delays: list[float | None] = []
    for b in recorder.events_of("barge_in"):
        later = [c - b["t_ms"] for c in clears if c >= b["t_ms"]]
        delays.append(min(later) if later else None)
    return delays
