"""The fake-Twilio transport: Media Streams messages as Twilio speaks them (``protocol``), the
line's clock, playout buffer and impairments, the simulated stream (``session``: we are Twilio),
the stream a real call serves to the tester (``served``: Twilio is the client), the stand-in's
two-stream relay (``relay``), TwiML reading and request signing. It knows nothing of scripts or
checks: what it plays it reports to a :class:`~ivr_bridge.sim.twilio.tap.LineTap`.
"""
