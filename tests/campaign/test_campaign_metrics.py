"""What operators graph: attempts by outcome, answer and AMD-unknown rates, dial → first audio.

Read from the campaign database (SQLite and PostgreSQL), so they agree with the export and
survive a restart."""

from __future__ import annotations

from prometheus_client import generate_latest

from ivr_bridge.campaign.outcomes import Outcome
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.metrics import BridgeMetrics
from ivr_bridge.server.campaign_metrics import RECENT_S, REFRESH_S, CampaignMetrics
from tests.campaign.test_store import NOW, campaign, contact, local


def sample(metrics: BridgeMetrics, line_start: str) -> float | None:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def _dial(store: CampaignStore, cid: str, sid_digit: str, *, at: float) -> str:
    [claimed] = await store.claim_due("w1", now=at, limit=1)
    sid = "CA" + sid_digit * 32
    await store.mark_dialed(claimed.attempt_id, sid, now=at)
    return sid


async def test_rates_count_only_calls_twilio_took(store: CampaignStore) -> None:
    cid = await campaign(store, leads="24h", max_attempts=1)
    phones = ["+13125550100", "+13125550101", "+13125550102", "+13125550103"]
    await store.add_contacts(cid, [contact(i, p) for i, p in enumerate(phones, 2)], now=NOW)
    await store.opt_out("+13125550103", source="operator", now=NOW)
    due = local(2026, 12, 3, 15, 0)
    person = await _dial(store, cid, "1", at=due)
    await store.apply_amd(person, "human", 900, now=due + 5)
    await store.apply_call_result(
        person, decision=Outcome.CONFIRMED, voicemail_left=False, first_audio_ms=None, now=due + 9
    )
    await store.apply_status(person, "completed", sequence=4, now=due + 10, duration_s=9)
    unsure = await _dial(store, cid, "2", at=due + 1)
    await store.apply_amd(unsure, "unknown", 4000, now=due + 6)
    busy = await _dial(store, cid, "3", at=due + 2)
    await store.apply_status(busy, "busy", sequence=2, now=due + 4)
    [never] = await store.claim_due("w1", now=due + 3, limit=1)  # the opted-out number
    await store.finish_undialled(never.attempt_id, Outcome.OPTED_OUT, now=due + 3)

    metrics = BridgeMetrics()
    await CampaignMetrics(store, metrics, clock=lambda: due + 20).refresh()

    def attempts(outcome: str) -> float | None:
        return sample(metrics, f'ivr_campaign_attempts{{campaign="{cid}",outcome="{outcome}"}}')

    assert (attempts("confirmed"), attempts("busy"), attempts("opted_out")) == (1, 1, 1)
    assert attempts("in_progress") == 1  # the call AMD could not place is still live
    # Two calls Twilio took ended (one answered, one busy); the opted-out one never rang.
    assert sample(metrics, f'ivr_campaign_answer_rate{{campaign="{cid}"}}') == 0.5
    assert sample(metrics, f'ivr_campaign_amd_unknown_rate{{campaign="{cid}"}}') == 0.5


async def test_a_campaign_long_over_drops_off_and_a_scrape_reads_at_most_every_few_seconds(
    store: CampaignStore,
) -> None:
    cid = await campaign(store, leads="24h", max_attempts=1)
    await store.add_contacts(cid, [contact(2, "+13125550100")], now=NOW)
    due = local(2026, 12, 3, 15, 0)
    sid = await _dial(store, cid, "4", at=due)
    await store.apply_status(sid, "busy", sequence=2, now=due + 4)
    await store.set_status(cid, "done")
    series = f'ivr_campaign_attempts{{campaign="{cid}",outcome="busy"}}'
    now = [due + 60]
    metrics = BridgeMetrics()
    reader = CampaignMetrics(store, metrics, clock=lambda: now[0])
    await reader.refresh()
    assert sample(metrics, series) == 1
    now[0] = due + RECENT_S + 60
    await reader.refresh()  # within REFRESH_S of the last read? no: a day later
    assert sample(metrics, series) is None
    await store.set_status(cid, "running")
    now[0] += REFRESH_S / 2
    await reader.refresh()  # too soon after the last read: the figures stand
    assert sample(metrics, series) is None
    now[0] += REFRESH_S
    await reader.refresh()
    assert sample(metrics, series) == 1


async def test_dial_to_first_audio_is_kept_once_from_the_dial_request(store: CampaignStore) -> None:
    cid = await campaign(store, leads="24h")
    await store.add_contacts(cid, [contact(2, "+13125550100")], now=NOW)
    due = local(2026, 12, 3, 15, 0)
    sid = await _dial(store, cid, "5", at=due)
    assert await store.record_first_audio(sid, at=due + 4.25) == 4.25
    assert await store.record_first_audio(sid, at=due + 9.0) == 9.0  # a second report...
    [row] = await store.attempt_rows(cid)
    assert row["first_audio_ms"] == 4250  # ...does not replace the first
    assert await store.record_first_audio("CA" + "0" * 32, at=due) is None  # not ours


async def test_first_audio_before_any_callback_finds_its_attempt(store: CampaignStore) -> None:
    cid = await campaign(store, leads="24h")
    await store.add_contacts(cid, [contact(2, "+13125550100")], now=NOW)
    due = local(2026, 12, 3, 15, 0)
    [claimed] = await store.claim_due("w1", now=due, limit=1)
    sid = "CA" + "6" * 32  # Twilio answered before the dispatcher wrote the CallSid down
    delay = await store.record_first_audio(sid, at=due + 2, attempt_id=claimed.attempt_id)
    assert delay is None  # no dial time to count from: no made-up figure
    [row] = await store.attempt_rows(cid)
    assert (row["call_sid"], row["state"], row["first_audio_ms"]) == (sid, "live", None)
