"""What a campaign came to: progress, roll-ups and the outcomes CSV a clinic exports.

One row per attempt (campaign, contact, attempt, CallSid, times, status, AMD verdict, outcome),
with the contact's final word beside it; the roll-ups are the ones reminder operators watch
(``outbound.md``): answer rate, human/machine share, confirm rate, opt-out rate and the share of
answering-machine verdicts that were ``unknown``.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

EXPORT_COLUMNS = (
    "campaign",
    "line",
    "phone",
    "name",
    "appointment_local",
    "timezone",
    "round",
    "attempt",
    "state",
    "scheduled_local",
    "dialed_utc",
    "ended_utc",
    "call_sid",
    "call_status",
    "error_code",
    "answered_by",
    "amd_ms",
    "duration_s",
    "outcome",
    "contact_outcome",
)
ANSWERED = frozenset(
    {"confirmed", "rescheduled", "cancelled", "opted_out", "voicemail", "no_decision", "fax"}
)


def _utc(epoch: float | None) -> str:
    return "" if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _local(epoch: float | None, zone: str) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, ZoneInfo(zone)).isoformat(timespec="minutes")


def export_csv(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r["campaign_id"],
                r["line"],
                r["phone"],
                r["name"],
                _local(r["appointment_at"], r["timezone"]),
                r["timezone"],
                r["round"] + 1,
                r["number"],
                r["state"],
                _local(r["scheduled_at"], r["timezone"]),
                _utc(r["dialed_at"]),
                _utc(r["ended_at"]),
                r["call_sid"] or "",
                r["call_status"] or "",
                r["error_code"] or "",
                r["answered_by"] or "",
                r["amd_ms"] if r["amd_ms"] is not None else "",
                r["duration_s"] if r["duration_s"] is not None else "",
                r["outcome"] or "",
                r["contact_outcome"] or "",
            ]
        )
    return out.getvalue()


@dataclass
class CampaignStatus:
    campaign: str
    status: str
    contacts: int
    finished_contacts: int
    attempts_by_state: Counter[str] = field(default_factory=Counter)
    attempts_by_outcome: Counter[str] = field(default_factory=Counter)
    placed_by_outcome: Counter[str] = field(default_factory=Counter)
    """Outcomes of the attempts Twilio took (an opted-out or refused one never rang)."""
    contacts_by_outcome: Counter[str] = field(default_factory=Counter)
    amd: Counter[str] = field(default_factory=Counter)

    def rate(self, part: int, whole: int) -> float | None:
        return None if whole == 0 else part / whole

    def rollups(self) -> dict[str, float | None]:
        o = self.placed_by_outcome
        placed = sum(o.values())
        answered = sum(n for k, n in o.items() if k in ANSWERED)
        people = sum(self.amd[k] for k in ("human", "unknown"))
        machines = sum(n for k, n in self.amd.items() if k.startswith("machine") or k == "fax")
        return {
            "answer_rate": self.rate(answered, placed),
            "human_share": self.rate(people, people + machines),
            "confirm_rate": self.rate(self.contacts_by_outcome["confirmed"], self.contacts),
            "opt_out_rate": self.rate(self.contacts_by_outcome["opted_out"], self.contacts),
            "amd_unknown_rate": self.rate(self.amd["unknown"], sum(self.amd.values())),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "status": self.status,
            "contacts": self.contacts,
            "finished_contacts": self.finished_contacts,
            "attempts_by_state": dict(self.attempts_by_state),
            "attempts_by_outcome": dict(self.attempts_by_outcome),
            "contacts_by_outcome": dict(self.contacts_by_outcome),
            **self.rollups(),
        }

    def table(self) -> str:
        width = 30
        done = self.finished_contacts / self.contacts if self.contacts else 1.0
        bar = "#" * round(done * width) + "." * (width - round(done * width))
        lines = [
            f"campaign {self.campaign} ({self.status}): [{bar}] "
            f"{self.finished_contacts}/{self.contacts} contacts finished",
            "attempts: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.attempts_by_state.items())) or "none"),
        ]
        if self.contacts_by_outcome:
            lines.append(
                "contacts: "
                + ", ".join(f"{k} {v}" for k, v in self.contacts_by_outcome.most_common())
            )
        shown = {k: v for k, v in self.rollups().items() if v is not None}
        if shown:
            lines.append(
                "rates: " + ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in shown.items())
            )
        return "\n".join(lines)


def campaign_status(campaign: dict[str, Any], rows: Sequence[dict[str, Any]]) -> CampaignStatus:
    contacts: dict[str, str | None] = {}
    status = CampaignStatus(campaign["id"], campaign["status"], 0, 0)
    for r in rows:
        contacts[r["phone"]] = r["contact_outcome"]
        status.attempts_by_state[r["state"]] += 1
        if r["outcome"]:
            status.attempts_by_outcome[r["outcome"]] += 1
            if r["call_sid"]:
                status.placed_by_outcome[r["outcome"]] += 1
        if r["answered_by"]:
            status.amd[r["answered_by"]] += 1
    status.contacts = len(contacts)
    status.finished_contacts = sum(1 for o in contacts.values() if o)
    status.contacts_by_outcome = Counter(o for o in contacts.values() if o)
    return status
