"""How well the bridge understands callers, and callers the bridge (a measurement, not a test).

Run: .venv/bin/python tests/recognition/measure.py [--quick] [--check]

1. Menu choice by caller voice: every spoken option of the shipped flows' menus, and of a
   pharmacy menu the flows do not ship, said plainly and with a "please", by neural and espeak
   caller voices, through an 8 kHz µ-law round trip, heard by the recogniser flows use (the
   grammar with whisper's second opinion, the menu's words as whisper's prompt). Out-of-menu
   speech must be rejected.
2. The bot as callers hear it: every prompt of the shipped flows (templates filled with sample
   values) in the default voice, µ-law round trip, whisper's word error rate.

``--check`` exits 1 when a target is missed: ≥ 97 % of menu answers right from the neural
(person-like) caller voices, ≤ 2 % of out-of-menu speech accepted from any voice, ≤ 5 % word
error on the bot's prompts. The espeak voices are robotic, harder than people: their figure is
printed beside, not held to the target.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ivr_bridge.audio.codec import pcm16_to_ulaw, ulaw_to_pcm16
from ivr_bridge.dialog import say_as
from ivr_bridge.dialog.flow_loader import load_flow
from ivr_bridge.dialog.flow_model import GatherStep
from ivr_bridge.dialog.menu import with_commands
from ivr_bridge.dialog.templates import TemplateRuntimeError, render
from ivr_bridge.recognition import GrammarChoice, get_menu_recognizer, get_transcriber
from ivr_bridge.recognition.text import normalize_phrase
from ivr_bridge.sim.scenario import caller_voice
from ivr_bridge.speechserver.engines import get_neural_synthesizer

FLOWS = Path(__file__).resolve().parents[2] / "flows"
SHIPPED = ["support_line.yaml", "appointment_reminder.yaml"]
PHARMACY_MENU = [
    GrammarChoice("refill", ("refill", "refill a prescription", "prescription refill")),
    GrammarChoice("status", ("order status", "where is my order", "status")),
    GrammarChoice("hours", ("store hours", "opening hours", "hours")),
    GrammarChoice("pharmacist", ("pharmacist", "talk to a pharmacist")),
    GrammarChoice("agent", ("agent", "a person")),
]
OUT_OF_MENU = [
    "what is the weather like today",
    "pizza",
    "my dog ate my homework",
    "I am driving right now",
    "the car is red",
    "can you call my wife instead",
]
NEURAL_VOICES = list(caller_voice.NEURAL_CALLER_VOICES)
ESPEAK_VOICES = ["leah", "brandon", "daniel", "morgan", "en-us+m3", "ava"]
SAMPLE_SCOPE: dict[str, Any] = {
    "params": {"name": "Ann", "time": "on Friday at 3 PM", "clinic": "Riverside Clinic"},
    "clinic": "Riverside Clinic",
    "clinic_default": "Riverside Clinic",
    "appointment": "on Thursday, December third at three thirty PM",
    "account_number": "12345678",
    "account": {"balance": "12.50"},
    "caller": "+14155550123",
    "callee": "+14155550100",
    "call_sid": "CA00000000000000000000000000000000",
    "env": {"IVR_SHOP_NAME": "Example Shop", "IVR_SUPPORT_NUMBER": "+15005550100"},
}
TARGET_RIGHT, TARGET_WRONGLY_ACCEPTED, TARGET_WER = 0.97, 0.02, 0.05


def shipped_menus() -> Iterator[tuple[str, list[GrammarChoice]]]:
    for name in SHIPPED:
        flow = load_flow(FLOWS / name)
        for step in flow.steps:
            if isinstance(step, GatherStep):
                menu = with_commands(step.gather, flow.commands)  # as the call hears them
                choices = [
                    GrammarChoice(option, tuple(spec.phrases))
                    for option, spec in menu.options.items()
                    if spec.phrases
                ]
                if choices:
                    yield f"{flow.name}:{step.id}", choices


def cases(menu: list[GrammarChoice], quick: bool) -> list[tuple[str, str]]:
    said: list[tuple[str, str]] = []
    for choice in menu:
        for index, phrase in enumerate(choice.phrases):
            said.append((phrase, choice.id))
            if not quick or index == 0:
                said.append((f"{phrase}, please", choice.id))
    return said


async def phone_audio(text: str, voice: str) -> bytes:
    """The caller's voice (the same audio whatever was said before) after a µ-law line."""
    return ulaw_to_pcm16(pcm16_to_ulaw(await caller_voice.synthesize(text, voice, 8000)))


async def menu_report(quick: bool) -> tuple[float, float]:
    recognizer = get_menu_recognizer()
    voices = NEURAL_VOICES + ESPEAK_VOICES
    menus = [*shipped_menus(), ("pharmacy (not shipped)", PHARMACY_MENU)]
    right = total = wrongly = outside = 0
    by_voice = {voice: [0, 0] for voice in voices}
    times: list[float] = []
    print(f"{'menu':34} " + " ".join(f"{v[:10]:>10}" for v in voices) + "   all")
    misses: list[str] = []
    for name, menu in menus:
        row: list[str] = []
        menu_right = menu_total = 0
        for voice in voices:
            ok = 0
            said = cases(menu, quick)
            for text, expected in said:
                result = await recognizer.recognize(await phone_audio(text, voice), 8000, menu)
                times.append(result.elapsed_ms)
                ok += result.choice == expected
                if result.choice != expected:
                    misses.append(f"{name} {voice}: {text!r} -> {result.choice} ({result.text!r})")
            for text in OUT_OF_MENU:
                result = await recognizer.recognize(await phone_audio(text, voice), 8000, menu)
                outside += 1
                if result.choice is not None:
                    wrongly += 1
                    misses.append(f"{name} {voice}: out of menu {text!r} -> {result.choice}")
            row.append(f"{ok:>4}/{len(said):<5}")
            by_voice[voice][0] += ok
            by_voice[voice][1] += len(said)
            menu_right, menu_total = menu_right + ok, menu_total + len(said)
        right, total = right + menu_right, total + menu_total
        print(f"{name[:34]:34} " + " ".join(row) + f"  {menu_right / menu_total:.1%}")
    for name, group in (
        ("neural (person-like)", NEURAL_VOICES),
        ("espeak (robotic)", ESPEAK_VOICES),
    ):
        ok, n = sum(by_voice[v][0] for v in group), sum(by_voice[v][1] for v in group)
        print(f"{name} voices: {ok}/{n} = {ok / n:.1%}")
    print(f"\nmenu answers right: {right}/{total} = {right / total:.1%}")
    print(f"out-of-menu speech accepted: {wrongly}/{outside} = {wrongly / outside:.1%}")
    print(f"recognition ms: median {statistics.median(times):.0f}, max {max(times):.0f}")
    for miss in misses:
        print(f"  miss: {miss}")
    neural_ok = sum(by_voice[v][0] for v in NEURAL_VOICES)
    return neural_ok / sum(by_voice[v][1] for v in NEURAL_VOICES), wrongly / outside


def prompt_texts() -> Iterator[tuple[str, str]]:
    """Every text the shipped flows say, as (where, template)."""
    for name in SHIPPED:
        data = yaml.safe_load((FLOWS / name).read_text())
        yield from _spoken(name, data)


def _spoken(where: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("say", "prompt") and isinstance(inner, str):
                yield f"{where}.{key}", inner
            elif key in ("no_input", "no_match") and isinstance(inner, list):
                yield from ((f"{where}.{key}", text) for text in inner if isinstance(text, str))
            else:
                yield from _spoken(f"{where}.{key}", inner)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _spoken(f"{where}[{index}]", inner)


_MONEY = re.compile(r"\$(\d[\d,]*(?:\.\d+)?)")
_NUMBER = re.compile(r"\d[\d,]*")
_SPELLINGS = {"canceled": "cancelled", "p.m.": "pm", "a.m.": "am", "ok": "okay"}


def spoken(text: str) -> str:
    """Written forms as they are said, so a transcript's "$12.50" or "3 p.m." matches the words
    the bot said ("twelve dollars and fifty cents", "three PM"): spelling is not mishearing."""
    text = _MONEY.sub(lambda m: " " + say_as.currency(m.group(1).replace(",", "")) + " ", text)
    text = _NUMBER.sub(lambda m: " " + say_as.number(m.group(0).replace(",", "")) + " ", text)
    words = [
        _SPELLINGS.get(word, _SPELLINGS.get(word.rstrip(".,?!"), word))
        for word in text.lower().split()
    ]
    return normalize_phrase(" ".join(words))


def word_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words) after both are normalised to lower-case spoken words."""
    ref, hyp = spoken(reference).split(), spoken(hypothesis).split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)


async def prompt_report() -> float:
    transcriber = get_transcriber()
    synth = get_neural_synthesizer()
    edits = words = 0
    for where, template in prompt_texts():
        try:
            text = render(template, SAMPLE_SCOPE)
        except TemplateRuntimeError as exc:
            print(f"  skipped {where}: {exc}")
            continue
        pcm = await asyncio.to_thread(synth.synthesize_blocking, text, 8000)
        heard = await transcriber.transcribe(ulaw_to_pcm16(pcm16_to_ulaw(pcm.pcm16)), 8000)
        wrong, count = word_error_rate(text, heard.text)
        edits, words = edits + wrong, words + count
        if wrong:
            print(f"  {wrong}/{count} {where}: said {text!r}, heard {heard.text!r}")
    print(f"bot prompts, whisper word error after µ-law: {edits}/{words} = {edits / words:.1%}")
    return edits / words


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 'please' variant per option")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    started = time.perf_counter()
    right, wrongly = await menu_report(args.quick)
    error = await prompt_report()
    print(f"({time.perf_counter() - started:.0f} s)")
    missed = right < TARGET_RIGHT or wrongly > TARGET_WRONGLY_ACCEPTED or error > TARGET_WER
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
