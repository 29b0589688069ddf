"""One call drawn for people: the view both the tester's report and the operators' pages show.

A neutral :class:`~ivr_bridge.report.view.CallView` (waveform peaks, the bot's utterances with
heard and unheard words apart, the caller's turns, barge-ins, keys, latencies, the transcript,
the recording's address) and the self-contained HTML/SVG built from it. It sits just above
``audio`` so the tester (a simulated call) and ``records`` (a real one) can both draw with it
without either knowing the other.
"""
