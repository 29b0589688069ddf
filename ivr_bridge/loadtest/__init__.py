"""``ivr-bridge loadtest``: how many calls one bridge process carries, measured from outside.

A bridge and a speech server run as their own processes; simulated Twilio callers, spread over
worker processes, talk to the bridge in real time; the bridge's CPU and memory are read from
``/proc`` and its event-loop lag from ``/metrics``. Entry points: :func:`run_loadtest` and the
CLI pieces in :mod:`ivr_bridge.loadtest.cli`.
"""

from ivr_bridge.loadtest.config import LoadTestConfig
from ivr_bridge.loadtest.report import LoadReport
from ivr_bridge.loadtest.runner import run_loadtest

__all__ = ["LoadReport", "LoadTestConfig", "run_loadtest"]
