"""`make demo-campaign` end to end: ten contacts dialled into the Twilio stand-in, each ending as
its persona should, and the table a newcomer reads."""

from __future__ import annotations

import argparse

import pytest
import structlog

from ivr_bridge.demo_campaign import CALLEES, run_campaign_demo


async def test_the_demo_campaign_ends_every_contact_as_expected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    saved = structlog.get_config()  # the demo configures logging for a terminal; keep it local
    try:
        exit_code = await run_campaign_demo(argparse.Namespace(speed=8.0, cps=4.0))
    finally:
        structlog.configure(**saved)
    out, err = capsys.readouterr()
    assert exit_code == 0, err
    assert f"all {len(CALLEES)} contacts ended as expected" in out
    for phone, what, _, outcome in CALLEES:
        [row] = [line for line in out.splitlines() if line.startswith(phone + " ")]
        assert what in row and row.rstrip().endswith(outcome), row
    assert "dial → first bot audio (the bridge's figure, ringing included): p50" in out
    assert "tried again later in the window:" in out
