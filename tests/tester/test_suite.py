"""Suites load with the suite's defaults applied, and a broken one names every problem's line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ivr_bridge.tester.suite import SuiteError, load_suite, parse_suite, suite_json_schema

ROOT = Path(__file__).resolve().parents[2]
GOOD = """\
name: demo
defaults:
  target: {flow: support_line.yaml}
  repeat: 3
  pass_rate: 0.6
scenarios:
  - name: keypad
    tags: [keypad]
    steps: [wait_for_bot, {press: "1"}, hangup]
    expect: {ended: hangup}
  - name: elsewhere
    target: {ws_url: "ws://127.0.0.1:9/media"}
    repeat: 1
    pass_rate: 1
    steps: [hangup]
"""


def test_defaults_fill_what_a_scenario_leaves_out(tmp_path: Path) -> None:
    loaded = parse_suite(GOOD, tmp_path / "suite.yaml")
    keypad, elsewhere = loaded.scenarios
    assert keypad.target.flow == "support_line.yaml" and keypad.repeat == 3
    assert keypad.pass_rate == 0.6 and keypad.script.name == "keypad"
    assert [type(s).__name__ for s in keypad.script.steps] == [
        "WaitForBotStep", "PressStep", "HangupStep",
    ]  # fmt: skip
    assert elsewhere.target.kind == "ws_url" and elsewhere.repeat == 1
    assert loaded.needs_bridge()


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("name: x\nscenarios: []\n", [":2: scenarios"]),
        (
            "name: x\nscenarios:\n  - name: a\n    steps: [{shout: hi}]\n",
            [":4: scenarios.0.steps.0", "a step is one of"],
        ),
        (
            "name: x\nscenarios:\n  - name: a\n    steps: [hangup]\n  - name: b\n    steps: []\n",
            [":5: scenarios.1", "needs steps"],
        ),
        (
            "name: x\nscenarios:\n  - name: a\n    steps: [hangup]\n",
            [":3: scenarios.0 (a)", "exactly one of flow, url, ws_url"],
        ),
        ("name: x\nscenarios:\n  - name: a\n    steps: [hangup]\n    repeat: 0\n", [":5:"]),
        ("name: [unclosed\n", ["invalid YAML"]),
    ],
)
def test_a_broken_suite_names_file_and_line(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    with pytest.raises(SuiteError) as caught:
        parse_suite(text, tmp_path / "broken.yaml")
    message = str(caught.value)
    assert "broken.yaml" in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_missing_script_file_is_named(tmp_path: Path) -> None:
    text = (
        "name: x\ndefaults: {target: {flow: f.yaml}}\n"
        "scenarios:\n  - name: a\n    script: nope.yaml\n"
    )
    with pytest.raises(SuiteError, match=r":4: scenarios.0 \(a\).*nope.yaml"):
        parse_suite(text, tmp_path / "s.yaml")


def test_the_shipped_suite_loads_and_the_published_schema_is_current() -> None:
    loaded = load_suite(ROOT / "suites" / "phone_lines.yaml")
    assert len(loaded.scenarios) >= 6 and loaded.flows_dir == ROOT / "flows"
    street = next(s for s in loaded.scenarios if s.name == "balance by voice from the street")
    assert street.script.caller.noise is not None and street.script.caller.voice == "daniel"
    published = json.loads((ROOT / "docs" / "suite.schema.json").read_text())
    assert published == suite_json_schema(), (
        "regenerate: ivr-bridge test --schema > docs/suite.schema.json"
    )


def test_scenarios_whose_names_share_an_output_folder_are_refused(tmp_path: Path) -> None:
    text = (
        "name: x\ndefaults: {target: {flow: f.yaml}}\nscenarios:\n"
        "  - {name: 'Balance!', steps: [hangup]}\n  - {name: balance, steps: [hangup]}\n"
    )
    with pytest.raises(SuiteError, match="share the output folder 'balance'"):
        parse_suite(text, tmp_path / "s.yaml")


ANSWERING = """\
name: callees
defaults:
  target: {answer: {agent: reminder, business: Elm Street Clinic}}
scenarios:
  - name: person
    answer: {as: human, outcome: confirmed}
    steps: [{say: "Hello?"}, wait_for_bot, hangup]
  - name: machine
    answer: {as: voicemail, number: "+13125550108"}
    expect: {bot_said: [a message for Ana]}
  - name: busy
    answer: {as: busy, calls: 1}
"""


def test_an_answer_suite_gives_every_scenario_a_number_and_a_way_to_answer(
    tmp_path: Path,
) -> None:
    loaded = parse_suite(ANSWERING, tmp_path / "callees.yaml")
    person, machine, busy = loaded.scenarios
    assert loaded.answering() is not None and loaded.answering().business == "Elm Street Clinic"
    assert (person.number, machine.number, busy.number) == (
        "+15550100000", "+13125550108", "+15550100002",
    )  # fmt: skip
    assert person.answer is not None and person.answer.outcome == "confirmed"
    assert machine.script.expect.bot_said == ["a message for Ana"]  # checks on the message
    assert busy.answer is not None and busy.answer.calls == 1 and not busy.script.steps


PLACED = "  - name: placed\n    target: {flow: welcome.yaml}\n    steps: [hangup]\n"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("{as: busy, calls: 1}\n", "{as: busy, calls: 1}\n    steps: [hangup]\n"),
         "a busy line has no steps"),
        (("    answer: {as: human, outcome: confirmed}\n", ""),
         "say how it answers (answer:)"),
        (('number: "+13125550108"', 'number: "+15550100000"'),
         "share the number +15550100000"),
        (("  - name: busy\n", PLACED + "  - name: busy\n"),
         "cannot share a suite with calls the tester places"),
    ],
)  # fmt: skip
def test_a_broken_answer_suite_says_what_to_fix(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    text = ANSWERING.replace(*change)
    assert text != ANSWERING
    with pytest.raises(SuiteError, match=re.escape(problem)):
        parse_suite(text, tmp_path / "callees.yaml")
