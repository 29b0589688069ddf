"""Hot per-call state shared by every replica of a bridge: outcomes, live-call events, dial pace.

Twilio's webhook, a call's media stream and its after-stream request can each reach a different
replica, and an operator's control request can reach any of them. The call layer programs
against small async interfaces (``OutcomeStore``, ``CallRegistry``, ``DialPacer``) whose
in-memory versions serve one process; the Redis versions here serve many. They are built to
degrade, not to fail: a Redis that goes away mid-call costs cross-replica reach for a while,
never a call in progress.
"""
