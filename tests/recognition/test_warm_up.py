"""Recognisers load off the event loop: looking one up imports nothing heavy; warm-up loads all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from ivr_bridge.recognition import get_transcriber, warm_up_recognizers

    get_transcriber()  # what a call does on the event loop
    print("after lookup:", "faster_whisper" in sys.modules)
    ready = asyncio.run(warm_up_recognizers())
    ok = sorted(name for name, loaded in ready.items() if loaded)
    print("after warm-up:", "faster_whisper" in sys.modules, ok)
    """
)


def test_lookup_defers_the_whisper_import_and_warm_up_loads_both_engines() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "after lookup: False" in out
    assert "after warm-up: True ['faster-whisper', 'pocketsphinx']" in out
