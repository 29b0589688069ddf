"""Outbound reminders end to end: the dispatcher dials through twilio-python's async client into
the Twilio REST stand-in, which rings callees played by the simulated caller against the real
bridge and the real speech server; callbacks come back signed; the store has the outcomes."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ivr_bridge.campaign.contacts import Contact
from ivr_bridge.campaign.dialer import TwilioDialer
from ivr_bridge.campaign.dispatcher import Dispatcher
from ivr_bridge.campaign.plan import CampaignPlan
from ivr_bridge.campaign.store import CampaignStore
from ivr_bridge.sim.scenario.script import CallerScript
from ivr_bridge.sim.twilio_rest import Persona, TwilioRestStandIn
from tests.e2e.conftest import AUTH_TOKEN
from tests.e2e.scrape import metric, metrics

ACCOUNT = "AC" + "5" * 32
CALLER_ID = "+15005550006"
SPEED = 8.0
CPS = 4.0


def person_pressing(*keys: str) -> Persona:
    """Answers "Hello?", then presses each key after the bot's next prompt."""
    steps: list[Any] = [{"say": "Hello?"}, "wait_for_bot"]
    for key in keys:
        steps += [{"press": key}, "wait_for_bot"]
    steps.append("hangup")
    return Persona(
        "human",
        ring_ms=1500,
        script=CallerScript.model_validate({"steps": steps}),
        amd_ms=800,  # known while the opening line still plays: a deterministic order
    )


def person_saying(*answers: str) -> Persona:
    """Answers "Hello?", then says each answer after the bot's next prompt."""
    steps: list[Any] = [{"say": "Hello?"}, "wait_for_bot"]
    for answer in answers:
        steps += [{"say": answer}, "wait_for_bot"]
    steps.append("hangup")
    return Persona(
        "human", ring_ms=1500, script=CallerScript.model_validate({"steps": steps}), amd_ms=800
    )


PERSONAS: dict[str, Persona] = {
    "+13125550101": person_pressing("1", "1"),  # it's me; confirm
    "+13125550102": person_pressing("1", "3"),  # it's me; cancel
    "+13125550103": person_pressing("1", "9"),  # it's me; stop calling
    "+13125550104": Persona("busy"),
    "+13125550105": Persona("no_answer"),
    "+13125550106": Persona("failed"),
    "+13125550107": Persona("invalid"),
    "+13125550108": Persona("voicemail", ring_ms=3000),
    "+13125550109": person_pressing("2"),  # not the right person: nothing is disclosed
    "+13125550110": person_pressing("1", "2"),  # it's me; reschedule
    "+13125550111": person_saying("yes", "cancel"),  # the same by voice
    "+13125550112": person_pressing("1", "1"),
    "+13125550113": person_pressing("1", "1"),  # in Spanish
    "+13125550114": person_saying("yes", "confirm"),
    "+13125550115": Persona("voicemail", ring_ms=2000),
    "+13125550116": Persona("busy"),
    "+13125550117": Persona("no_answer"),
    "+13125550118": person_pressing("1", "3"),
    "+13125550119": Persona("hang_up_early", ring_ms=1500, amd_ms=800),  # gone at "Hello"
    "+13125550120": Persona("busy"),
}
EXPECTED = {
    "+13125550101": "confirmed",
    "+13125550102": "cancelled",
    "+13125550103": "opted_out",
    "+13125550104": "busy",
    "+13125550105": "no_answer",
    "+13125550106": "failed",
    "+13125550107": "failed",
    "+13125550108": "voicemail",
    "+13125550109": "no_decision",
    "+13125550110": "rescheduled",
    "+13125550111": "cancelled",
    "+13125550112": "confirmed",
    "+13125550113": "confirmed",
    "+13125550114": "confirmed",
    "+13125550115": "voicemail",
    "+13125550116": "busy",
    "+13125550117": "no_answer",
    "+13125550118": "cancelled",
    "+13125550119": "no_decision",
    "+13125550120": "busy",
}


SPANISH = {"+13125550113": "es-MX"}


def all_day_plan(now: float) -> CampaignPlan:
    return CampaignPlan.around_the_clock(now, business="Elm Street Clinic", ring_timeout_s=5)


def contacts_for(phones: list[str], now: float) -> list[Contact]:
    appointment = datetime.fromtimestamp(now, UTC) + timedelta(days=3)
    return [
        Contact(
            line,
            phone,
            f"Ana Patient{line}",
            appointment,
            "America/Chicago",
            SPANISH.get(phone, "en-US"),
        )
        for line, phone in enumerate(phones, start=2)
    ]


async def _run_until_all_dialled(
    dispatcher: Dispatcher, store: CampaignStore, campaign: str, timeout_s: float = 90.0
) -> None:
    """Run the dispatcher until no first attempt is waiting to be dialled."""
    task = asyncio.create_task(dispatcher.run())

    async def waiting() -> bool:
        rows = await store.attempt_rows(campaign)
        return any(r["number"] == 1 and r["state"] in ("scheduled", "dialing") for r in rows)

    try:
        async with asyncio.timeout(timeout_s):
            while await waiting():  # noqa: ASYNC110 - the database is what we wait on
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _first_audio_noted(base_url: str, *, calls: int, timeout_s: float = 10.0) -> None:
    """Each call writes its dial → first audio as it happens: wait until all have."""
    name = "ivr_campaign_dial_to_first_audio_seconds_count"
    async with asyncio.timeout(timeout_s):
        while await metric(base_url, name) < calls:  # noqa: ASYNC110 - polling a scrape
            await asyncio.sleep(0.1)


@asynccontextmanager
async def campaign_stack(
    make_bridge: Any, tmp_path: Path, **standin_options: Any
) -> AsyncIterator[tuple[CampaignStore, Any, TwilioRestStandIn, TwilioDialer]]:
    """A campaign store on SQLite, a bridge answering for it, the Twilio stand-in playing
    ``PERSONAS`` and a dialer into it."""
    store = await CampaignStore.open(f"sqlite:///{tmp_path / 'campaigns.db'}", now=time.time())
    bridge = await make_bridge(campaigns=store)
    standin = TwilioRestStandIn(
        account_sid=ACCOUNT,
        auth_token=AUTH_TOKEN,
        personas=lambda phone: PERSONAS.get(phone, Persona("busy")),
        speed=SPEED,
        **standin_options,
    )
    await standin.start()
    dialer = TwilioDialer(
        ACCOUNT, AUTH_TOKEN, public_url=bridge.base_url, api_base_url=standin.base_url
    )
    try:
        yield store, bridge, standin, dialer
    finally:
        await dialer.close()
        await standin.close()
        await store.close()


async def test_a_20_contact_campaign_dials_at_its_pace_and_every_contact_ends_in_its_outcome(
    make_bridge: Any, tmp_path: Path
) -> None:
    now = time.time()
    async with campaign_stack(make_bridge, tmp_path) as (store, bridge, standin, dialer):
        await store.create_campaign(
            "flu",
            name="Flu shots",
            caller_id=CALLER_ID,
            app="reminder",
            plan=all_day_plan(now),
            now=now,
        )
        await store.add_contacts("flu", contacts_for(list(PERSONAS), now), now=now)
        await store.set_status("flu", "running")
        dispatcher = Dispatcher(store, dialer, worker="test", account=ACCOUNT, cps=CPS, poll_s=0.05)
        await _run_until_all_dialled(dispatcher, store, "flu")
        assert len(standin.create_times) == len(PERSONAS) - 1  # the invalid one was refused
        await standin.settled(timeout_s=90)

        outcomes = {
            r["phone"]: r["outcome"] for r in await store.attempt_rows("flu") if r["number"] == 1
        }
        assert outcomes == EXPECTED
        rows = {r["phone"]: r for r in await store.attempt_rows("flu") if r["number"] == 1}
        assert rows["+13125550107"]["error_code"] == 21211
        assert rows["+13125550101"]["answered_by"] == "human"
        assert rows["+13125550108"]["answered_by"] == "machine_end_beep"

        # /metrics tells the same story as the database, and times every answered call.
        await _first_audio_noted(bridge.base_url, calls=13)
        samples = await metrics(bridge.base_url)
        by_outcome = Counter(r["outcome"] or "in_progress" for r in await store.attempt_rows("flu"))
        shown = {
            key.split('outcome="')[1].rstrip('"}'): value
            for key, value in samples.items()
            if key.startswith('ivr_campaign_attempts{campaign="flu"')
        }
        assert shown == by_outcome
        # 13 of the 19 calls Twilio took were answered (11 people, 2 machines); the invalid
        # number never rang.
        assert samples['ivr_campaign_answer_rate{campaign="flu"}'] == pytest.approx(13 / 19)
        assert samples['ivr_campaign_amd_unknown_rate{campaign="flu"}'] == 0.0
        assert samples["ivr_campaign_dial_to_first_audio_seconds_count"] == 13
        answered = [r for r in rows.values() if r["answered_by"]]
        assert len(answered) == 13
        assert all(r["first_audio_ms"] is not None and r["first_audio_ms"] > 0 for r in answered)

        # The message is left after the machine's tone (measured on the callee's recording):
        # only the short neutral opening, said before anyone could know, overlaps the greeting.
        machines = [c for c in standin.calls.values() if c.persona.kind == "voicemail"]
        assert len(machines) == 2
        for machine in machines:
            assert machine.result is not None
            recorder = machine.result.recorder
            [tone] = [t for t in recorder.turns if t.kind == "play"]
            assert tone.end_ms is not None
            opening, *message = recorder.utterances
            assert message, "no voicemail message was heard"
            assert all(u.start_ms >= tone.end_ms for u in message), (tone, recorder.utterances)
            assert opening.end_ms - opening.start_ms < 3000
        # Busy, no answer and a failure Twilio gave no reason for are tried again later in the
        # window; decisions and an invalid number (21211) are final.
        again = sorted(r["phone"] for r in await store.attempt_rows("flu") if r["number"] == 2)
        # (the wrong person and the voicemail are not called again in this round either)
        assert again == [
            "+13125550104",
            "+13125550105",
            "+13125550106",
            "+13125550116",
            "+13125550117",
            "+13125550120",
        ]

        # Never faster than the account's pace: in any second, at most CPS requests arrived
        # (one more allowed for network jitter between two requests sent 1/CPS apart).
        times = standin.create_times
        for first, later in itertools.combinations(times, 2):
            assert later >= first
        for index, start in enumerate(times):
            within = [t for t in times[index:] if t - start < 1.0]
            assert len(within) <= math.ceil(CPS) + 1, times

        # The opt-out said on this call stops every later call to the number, in any campaign.
        await store.create_campaign(
            "dental",
            name="Dental",
            caller_id=CALLER_ID,
            app="reminder",
            plan=all_day_plan(now),
            now=time.time(),
        )
        await store.add_contacts("dental", contacts_for(["+13125550103"], now), now=time.time())
        await store.set_status("dental", "running")
        before = len(standin.create_times)
        assert await dispatcher.step() == 1
        assert len(standin.create_times) == before, "an opted-out number was dialled"
        [dental] = await store.attempt_rows("dental")
        assert dental["outcome"] == "opted_out"


async def test_callbacks_shuffled_and_sent_twice_leave_the_same_outcomes(
    make_bridge: Any, tmp_path: Path
) -> None:
    """Every status callback of a call held to its end, then sent twice in a random order
    (``completed`` before ``ringing``, duplicates): the outcomes, and one follow-up per
    retryable attempt, are what Twilio's own order gives."""
    phones = [
        "+13125550101",  # confirm by key
        "+13125550111",  # cancel by voice
        "+13125550108",  # voicemail
        "+13125550104",  # busy
        "+13125550105",  # no answer
        "+13125550106",  # failed
    ]
    now = time.time()
    async with campaign_stack(
        make_bridge, tmp_path, shuffle_callbacks=True, duplicate_callbacks=True, seed=7
    ) as (store, _, standin, dialer):
        await store.create_campaign(
            "flu", name="Flu", caller_id=CALLER_ID, app="reminder", plan=all_day_plan(now), now=now
        )
        await store.add_contacts("flu", contacts_for(phones, now), now=now)
        await store.set_status("flu", "running")
        dispatcher = Dispatcher(store, dialer, worker="test", account=ACCOUNT, cps=CPS, poll_s=0.05)
        await _run_until_all_dialled(dispatcher, store, "flu")
        await standin.settled(timeout_s=90)
        received = [
            [int(c["SequenceNumber"]) for c in call.callbacks if "CallStatus" in c]
            for call in standin.calls.values()
        ]
        assert any(seqs != sorted(seqs) for seqs in received), received  # really out of order
        assert all(len(seqs) == 2 * len(set(seqs)) for seqs in received)  # every one twice
        rows = await store.attempt_rows("flu")
        firsts = {r["phone"]: r["outcome"] for r in rows if r["number"] == 1}
        assert firsts == {phone: EXPECTED[phone] for phone in phones}
        again = sorted(r["phone"] for r in rows if r["number"] == 2)
        assert again == ["+13125550104", "+13125550105", "+13125550106"]  # once each
        assert all(r["state"] == "scheduled" for r in rows if r["number"] == 2)


async def test_a_callee_gone_at_hello_still_leaves_the_dial_to_first_audio_figure(
    make_bridge: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The callee barges in over the first words and hangs up while the figure is still
    being written (a busy database: the write takes 1 s here): it is kept, not cancelled with
    the call (seen under load: one call in ~3 runs went missing from the histogram)."""
    now = time.time()
    async with campaign_stack(make_bridge, tmp_path) as (store, bridge, standin, dialer):
        slow_write = store.record_first_audio

        async def busy_database(*args: Any, **kwargs: Any) -> float | None:
            await asyncio.sleep(1.0)
            return await slow_write(*args, **kwargs)

        monkeypatch.setattr(store, "record_first_audio", busy_database)
        await store.create_campaign(
            "flu", name="Flu", caller_id=CALLER_ID, app="reminder", plan=all_day_plan(now), now=now
        )
        await store.add_contacts("flu", contacts_for(["+13125550119"], now), now=now)
        await store.set_status("flu", "running")
        dispatcher = Dispatcher(store, dialer, worker="test", account=ACCOUNT, cps=CPS, poll_s=0.05)
        await _run_until_all_dialled(dispatcher, store, "flu")
        await standin.settled(timeout_s=90)
        await _first_audio_noted(bridge.base_url, calls=1)
        [row] = [r for r in await store.attempt_rows("flu") if r["number"] == 1]
        assert row["outcome"] == "no_decision"
        assert row["first_audio_ms"] is not None and row["first_audio_ms"] > 0
