"""Any outbound agent as an ``answer`` target: a command the tester runs, pointed at its
Twilio REST stand-in.

Whatever dials through the Calls API (twilio-python, any SDK, plain HTTP) can be tested from the
callee's side by changing one setting: its REST base URL. The tester starts the stand-in, runs
the suite's ``command`` with the stand-in's address, the account's credentials and the numbers
to call in its environment, waits for it to exit and for its calls to end, and judges the calls
each scenario's number received. The agent answers its calls' webhooks itself, so it must be
reachable from the stand-in (on this machine, or by URL) and check signatures with the same
auth token (``TWILIO_AUTH_TOKEN``, set for the tester and the agent alike).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from ivr_bridge.sim.twilio_rest import TwilioRestStandIn
from ivr_bridge.tester.suite import AnswerTarget, PlannedScenario

OUTPUT_TAIL = 400
"""Characters of a failed command's output kept in the reason."""


def command_env(standin: TwilioRestStandIn, scenarios: list[PlannedScenario]) -> dict[str, str]:
    """What the agent is told: where "Twilio" is, the account, and whom to call."""
    contacts = [
        {"number": s.number, "name": s.answer.name if s.answer else "", "scenario": s.name}
        for s in scenarios
    ]
    return {
        **os.environ,
        "TWILIO_API_BASE_URL": standin.base_url,
        "TWILIO_ACCOUNT_SID": standin.account_sid,
        "TWILIO_AUTH_TOKEN": standin.auth_token,
        "IVR_TEST_NUMBERS": ",".join(s.number for s in scenarios),
        "IVR_TEST_CONTACTS": json.dumps(contacts),
    }


async def run_command_agent(
    standin: TwilioRestStandIn,
    scenarios: list[PlannedScenario],
    target: AnswerTarget,
    *,
    cwd: Path,
) -> tuple[bool, str | None]:
    """Run the agent's command to the end, then wait for its calls; (out of time, why the
    run cannot be judged: the command failed)."""
    assert target.command is not None
    deadline = time.monotonic() + target.timeout_s
    process = await asyncio.create_subprocess_shell(
        target.command,
        cwd=cwd,
        env=command_env(standin, scenarios),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(target.timeout_s):
            output, _ = await process.communicate()
    except TimeoutError:
        return True, f"the agent command was still running after {target.timeout_s:g} s"
    finally:
        if process.returncode is None:  # out of time, or the run was cancelled (Ctrl-C)
            process.kill()
            await process.wait()
    if process.returncode != 0:
        tail = output.decode(errors="replace")[-OUTPUT_TAIL:].strip()
        return False, f"the agent command exited {process.returncode}: {tail}"
    try:
        await standin.settled(timeout_s=max(1.0, deadline - time.monotonic()))
    except TimeoutError:
        return True, None
    return False, None
