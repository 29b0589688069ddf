"""Recognisers on real human 8 kHz telephone prompts (not a test; needs a Debian package).

Source: Debian ``asterisk-core-sounds-en-wav`` (Allison Smith's Asterisk prompts, 8 kHz 16-bit
WAV, CC-BY-SA 3.0), with transcripts in ``asterisk-core-sounds-en``'s core-sounds-en.txt.gz.
Run: apt-get install asterisk-core-sounds-en-wav, then
  .venv/bin/python tests/recognition/measure_human.py
"""

from __future__ import annotations

import asyncio
import gzip
import statistics
import wave
from pathlib import Path

from ivr_bridge.audio.codec import pcm16_to_ulaw, ulaw_to_pcm16
from ivr_bridge.recognition import GrammarChoice, GrammarRecognizer, get_transcriber
from ivr_bridge.recognition.text import number_to_words

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def phone_pcm(name: str) -> bytes:
    with wave.open(str(SOUNDS / f"{name}.wav")) as wav:
        assert wav.getframerate() == 8000 and wav.getsampwidth() == 2
        return ulaw_to_pcm16(pcm16_to_ulaw(wav.readframes(wav.getnframes())))


def transcripts() -> dict[str, str]:
    lines = gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace").read().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


async def main() -> None:
    from measure import wer  # same folder, run as a script

    recognizer = GrammarRecognizer()
    numbers = [GrammarChoice(str(n), (number_to_words(n),)) for n in range(20)]
    ok = 0
    times = []
    for n in range(20):
        result = await recognizer.recognize(phone_pcm(f"digits/{n}"), 8000, numbers)
        ok += result.choice == str(n)
        times.append(result.elapsed_ms)
        if result.choice != str(n):
            print(f"  {n}: {result.choice} {result.text!r} {result.confidence:.2f}")
    print(f"numbers 0-19 as a 20-way grammar: {ok}/20; median {statistics.median(times):.0f} ms")
    menu = [
        GrammarChoice("cancelled", ("cancelled",)),
        GrammarChoice("thanks", ("thank you",)),
        GrammarChoice("no", ("no",)),
        GrammarChoice("goodbye", ("goodbye",)),
    ]
    for name, expected in (
        ("cancelled", "cancelled"),
        ("auth-thankyou", "thanks"),
        ("vm-no", "no"),
        ("vm-goodbye", "goodbye"),
    ):
        result = await recognizer.recognize(phone_pcm(name), 8000, menu)
        print(
            f"  {name}: {result.choice} ({result.text!r}, {result.confidence:.2f}) want {expected}"
        )
    texts = transcripts()
    transcriber = get_transcriber()
    errors, rtfs = [], []
    names = [
        n
        for n in (
            "agent-pass",
            "agent-alreadyon",
            "vm-repeat",
            "pls-try-again",
            "vm-intro",
            "vm-options",
            "conf-getpin",
            "privacy-prompt",
        )
        if n in texts
    ]
    for name in names:
        if not (SOUNDS / f"{name}.wav").exists():
            continue
        pcm = phone_pcm(name)
        result = await transcriber.transcribe(pcm, 8000)
        errors.append(wer(texts[name], result.text))
        rtfs.append(result.elapsed_ms / 1000 / (len(pcm) / 16000))
        print(f"  {name}: WER {errors[-1]:.2f} {result.text!r} | {texts[name]!r}")
    print(
        f"whisper on {len(errors)} prompts: mean WER {statistics.mean(errors):.3f}, "
        f"RTF median {statistics.median(rtfs):.3f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
