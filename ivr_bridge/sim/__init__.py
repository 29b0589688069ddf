"""The simulated Twilio caller: demo, end-to-end test driver and load generator.

It behaves like Twilio toward any media-stream server: signed webhook and upgrade, paced inbound
media on a virtual clock, DTMF, marks echoed only when their audio has played, ``clear``, ``stop``,
and the ``<Connect action>`` follow-up. Public API: :func:`run_call`, :func:`load_script`,
:class:`CallResult`; CLI pieces live in :mod:`ivr_bridge.sim.cli`.
"""

from ivr_bridge.sim.scenario.call import run_call
from ivr_bridge.sim.scenario.conclusive import until_conclusive
from ivr_bridge.sim.scenario.result import CallResult, ExpectationResult
from ivr_bridge.sim.scenario.script import CallerScript, ScriptError, load_script, parse_script
from ivr_bridge.sim.twilio.twiml import Verdict

__all__ = [
    "CallResult",
    "CallerScript",
    "ExpectationResult",
    "ScriptError",
    "Verdict",
    "load_script",
    "parse_script",
    "run_call",
    "until_conclusive",
]
