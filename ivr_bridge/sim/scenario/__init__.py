"""The scenario layer, on top of the transport: caller scripts (``script``) and how they run on
a line (``runner``), placing a whole call (``call``), what the caller heard (``recording``,
``hearing``), the checks (``result``, ``matching``, ``audio_timing``) and the caller's voice.
The tester, the demo, ``ivr-bridge call`` and the load generator all use it.
"""
