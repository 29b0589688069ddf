"""Accuracy and speed of the embedded recognisers on synthetic telephone speech (not a test).

Run: .venv/bin/python tests/recognition/measure.py [--whisper]
Prints per-voice grammar accuracy for the project's menus, decode times, and whisper WER/RTF.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from ivr_bridge.audio.codec import pcm16_to_ulaw, ulaw_to_pcm16
from ivr_bridge.recognition import GrammarChoice, GrammarRecognizer, get_transcriber
from ivr_bridge.sim.scenario import caller_voice

SUPPORT_MENU = [
    GrammarChoice("billing", ("billing", "pay my bill", "payments")),
    GrammarChoice("support", ("technical support", "tech support", "support")),
    GrammarChoice("balance", ("account balance", "balance")),
    GrammarChoice("agent", ("speak to an agent", "agent", "representative", "operator")),
    GrammarChoice("repeat", ("repeat", "say that again")),
]
REMINDER_MENU = [
    GrammarChoice("confirm", ("confirm", "yes", "yes please")),
    GrammarChoice("reschedule", ("reschedule", "change it", "another time")),
    GrammarChoice("cancel", ("cancel", "cancel it")),
    GrammarChoice("no", ("no",)),
]
SUPPORT_CASES = [
    ("billing", "billing"),
    ("technical support", "support"),
    ("account balance", "balance"),
    ("speak to an agent", "agent"),
    ("repeat", "repeat"),
    ("uh, billing please", "billing"),
    ("I'd like technical support", "support"),
    ("I want to speak to an agent", "agent"),
]
REMINDER_CASES = [
    ("confirm", "confirm"),
    ("reschedule", "reschedule"),
    ("cancel", "cancel"),
    ("yes", "confirm"),
    ("no", "no"),
    ("I want to reschedule", "reschedule"),
    ("cancel it please", "cancel"),
]
OUT_OF_GRAMMAR = ["what is the weather like today", "pizza", "my dog ate my homework"]
VOICES = ["leah", "lily", "ava", "brandon", "daniel", "morgan", "en-us+m3", "en-us+f4", "en+m1"]
SENTENCES = [
    "I would like to check the balance of my savings account.",
    "My internet has been down since yesterday morning.",
    "Please call me back after five o'clock on Tuesday.",
]


async def phone_audio(text: str, voice: str) -> bytes:
    # The caller's voice: the same audio for the same words whatever was said before.
    return ulaw_to_pcm16(pcm16_to_ulaw(await caller_voice.synthesize(text, voice, 8000)))


async def grammar_report(recognizer: GrammarRecognizer) -> None:
    times: list[float] = []
    oog_conf: list[float] = []
    for name, menu, cases in (
        ("support", SUPPORT_MENU, SUPPORT_CASES),
        ("reminder", REMINDER_MENU, REMINDER_CASES),
    ):
        total_ok = total = 0
        for voice in VOICES:
            ok = 0
            misses = []
            for text, expected in cases:
                result = await recognizer.recognize(await phone_audio(text, voice), 8000, menu)
                times.append(result.elapsed_ms)
                ok += result.choice == expected
                if result.choice != expected:
                    misses.append(
                        f"{text!r}->{result.choice}({result.text!r} {result.confidence:.2f})"
                    )
            total_ok += ok
            total += len(cases)
            print(f"  {name:8} {voice:10} {ok}/{len(cases)}  {'; '.join(misses)}")
        print(f"{name}: {total_ok}/{total} = {total_ok / total:.0%}")
        for voice in VOICES[:4]:
            for text in OUT_OF_GRAMMAR:
                result = await recognizer.recognize(await phone_audio(text, voice), 8000, menu)
                oog_conf.append(result.confidence if result.choice else 0.0)
                print(f"  OOG {name} {voice} {text!r} -> {result.choice} {result.confidence:.2f}")
    print(f"decode ms: median {statistics.median(times):.0f}, max {max(times):.0f}")
    print(f"OOG: accepted {sum(c > 0 for c in oog_conf)}/{len(oog_conf)}")


def wer(reference: str, hypothesis: str) -> float:
    ref = [w.strip(".,?!'").lower() for w in reference.split()]
    hyp = [w.strip(".,?!'").lower() for w in hypothesis.split()]
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


async def whisper_report() -> None:
    transcriber = get_transcriber()
    started = time.perf_counter()
    await transcriber.warm_up()
    print(f"whisper load: {time.perf_counter() - started:.2f}s")
    errors: list[float] = []
    rtfs: list[float] = []
    for voice in VOICES:
        for sentence in SENTENCES:
            pcm = await phone_audio(sentence, voice)
            result = await transcriber.transcribe(pcm, 8000)
            errors.append(wer(sentence, result.text))
            rtfs.append(result.elapsed_ms / 1000 / (len(pcm) / 16000))
            print(f"  {voice:10} WER {errors[-1]:.2f} conf {result.confidence:.2f} {result.text!r}")
    print(
        f"whisper mean WER {statistics.mean(errors):.3f}; RTF median {statistics.median(rtfs):.3f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--whisper", action="store_true")
    args = parser.parse_args()
    await grammar_report(GrammarRecognizer())
    if args.whisper:
        await whisper_report()


if __name__ == "__main__":
    asyncio.run(main())
