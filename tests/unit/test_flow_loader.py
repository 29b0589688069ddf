"""Flow files are checked at load: every problem names file, line and what to change."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from ivr_bridge.cli import main
from ivr_bridge.dialog.flow import (
    FlowError,
    load_flow,
    load_flows_dir,
    parse_flow,
    resolve_flow_path,
)
from ivr_bridge.dialog.flow_model import GatherStep, HangupStep, SayStep

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def _problems(text: str) -> list[str]:
    with pytest.raises(FlowError) as info:
        parse_flow(text, "test.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("name", ["welcome.yaml", "support_line.yaml", "appointment_reminder.yaml"])
def test_shipped_flows_load(name: str) -> None:
    flow = load_flow(FLOWS / name)
    assert flow.steps


def test_welcome_is_still_say_then_hangup() -> None:
    flow = load_flow(FLOWS / "welcome.yaml")
    assert [type(s) for s in flow.steps] == [SayStep, HangupStep]


def test_unknown_goto_target_names_line_and_suggests_the_id() -> None:
    problems = _problems("name: t\nsteps:\n  - id: main_menu\n    say: hi\n  - goto: mian_menu\n")
    assert problems == [
        "test.yaml:5: steps[1].goto: no step has id 'mian_menu'; did you mean 'main_menu'? "
        "(step ids: main_menu)"
    ]


def test_unknown_step_kind_and_misspelt_field_are_located() -> None:
    problems = _problems(
        "name: t\n"
        "steps:\n"
        "  - say: hi\n"
        "  - dance: true\n"
        "  - id: menu\n"
        "    gather:\n"
        "      options: {a: {digits: '1'}}\n"
        "      no_imput: [again]\n"
    )
    assert problems[0].startswith("test.yaml:4: steps[1]: a step is one of: say, gather,")
    assert problems[1] == (
        "test.yaml:8: steps[2] (menu).gather.no_imput: unknown field 'no_imput': "
        "remove it or check its spelling"
    )


def test_missing_required_field_is_named() -> None:
    problems = _problems("name: t\nsteps:\n  - http:\n      url: http://x\n      into: r\n")
    assert problems == [
        "test.yaml:3: steps[0].http.on_failure: missing required field 'on_failure'"
    ]


def test_bad_template_and_expression_are_rejected_at_load() -> None:
    problems = _problems(
        "name: t\n"
        "steps:\n"
        "  - say: 'Hello {{ params.name '\n"
        "  - branch:\n"
        "      - when: 'balance >'\n"
        "        goto: end\n"
        "  - id: end\n"
        "    hangup: true\n"
    )
    assert problems[0].startswith("test.yaml:3: steps[0].say: bad template:")
    assert problems[1].startswith("test.yaml:5: steps[1].branch[0].when: bad expression:")


def test_duplicate_ids_reserved_names_and_llm_goto_targets_are_errors() -> None:
    problems = _problems(
        "name: t\nsteps:\n  - id: a\n    say: one\n  - id: a\n    set: {caller: x}\n"
        "  - llm: {goto: [b]}\n"
    )
    assert (
        problems[0]
        == "test.yaml:5: steps[1] (a).id: step id 'a' is also used by step 1; ids are unique"
    )
    assert "'caller' is set by the bridge" in problems[1] and problems[1].startswith("test.yaml:6:")
    assert problems[2].startswith("test.yaml:7: steps[2].llm.goto[0]: no step has id 'b'")


def test_yaml_booleans_in_phrases_get_a_quoting_hint() -> None:
    problems = _problems(
        "name: t\nsteps:\n  - id: q\n    gather:\n      options:\n"
        "        ok: {digits: '1', phrases: [yes]}\n"
    )
    assert problems == [
        "test.yaml:6: steps[0] (q).gather.options.ok.phrases[0]: Input should be a valid string:"
        " YAML reads yes/no/on/off as true/false; put the word in quotes"
    ]


def test_invalid_yaml_names_the_line() -> None:
    problems = _problems("name: t\nsteps:\n  - say: [unclosed\n  - hangup: true\n")
    assert problems[0].startswith("test.yaml:4: not valid YAML")


def test_gather_rules() -> None:
    assert (
        "needs 'options' (a menu) or 'digits'"
        in _problems("name: t\nsteps:\n  - id: g\n    gather: {prompt: hi}\n")[0]
    )
    assert (
        "two options use the same digits"
        in _problems(
            "name: t\nsteps:\n  - id: g\n    gather:\n      options:\n"
            "        a: {digits: '1'}\n        b: {digits: 1}\n"
        )[0]
    )
    assert "needs 'into'" in _problems("name: t\nsteps:\n  - gather: {digits: {max: 4}}\n")[0]


def test_menu_digit_rules_default_to_the_options() -> None:
    flow = parse_flow(
        "name: t\nsteps:\n  - id: g\n    gather:\n      options:\n"
        "        a: {digits: '1', phrases: [apple]}\n        b: {digits: '22'}\n"
    )
    step = flow.steps[0]
    assert isinstance(step, GatherStep)
    rules = step.gather.digit_rules
    assert rules is not None and (rules.min, rules.max) == (1, 2)
    assert step.gather.listens_for_speech


def test_audio_prompt_is_loaded_and_must_stay_in_the_flow_dir(tmp_path: Path) -> None:
    with wave.open(str(tmp_path / "beep.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00\x10" * 16000)  # one second
    (tmp_path / "ok.yaml").write_text("name: t\nsteps:\n  - audio: beep.wav\n")
    flow = load_flow(tmp_path / "ok.yaml")
    assert len(flow.audio("beep.wav")) == 8000  # one second of 8 kHz µ-law
    (tmp_path / "bad.yaml").write_text("name: t\nsteps:\n  - audio: ../etc/beep.wav\n")
    with pytest.raises(FlowError, match=r"bad.yaml:3: .*must be inside"):
        load_flow(tmp_path / "bad.yaml")


def test_flow_names_cannot_escape_the_flows_dir(tmp_path: Path) -> None:
    for name in ("../secrets.yaml", "/etc/passwd", "welcome.txt", "sub/../../x.yaml"):
        with pytest.raises(FlowError, match="inside"):
            resolve_flow_path(tmp_path, name)
    assert resolve_flow_path(tmp_path, "a.yaml") == (tmp_path / "a.yaml").resolve()


def test_flows_dir_reports_every_broken_file(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("name: g\nsteps:\n  - hangup: true\n")
    (tmp_path / "broken.yaml").write_text("name: b\nsteps:\n  - goto: nowhere\n")
    with pytest.raises(FlowError, match=r"broken.yaml:3: steps\[0\].goto: no step has id"):
        load_flows_dir(tmp_path, "good.yaml")
    with pytest.raises(FlowError, match="default flow"):
        load_flows_dir(tmp_path, "missing.yaml")
    (tmp_path / "broken.yaml").unlink()
    assert list(load_flows_dir(tmp_path, "good.yaml")) == ["good.yaml"]


def test_flows_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "check", str(FLOWS / "support_line.yaml")]) == 0
    assert "ok (support_line" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nsteps:\n  - say: hi\n    nxt: a\n")
    assert main(["flows", "check", str(FLOWS / "welcome.yaml"), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4: steps[0].nxt: unknown field 'nxt'" in err


def test_a_phrase_in_two_spoken_options_is_rejected() -> None:
    problems = _problems(
        "name: t\nsteps:\n  - id: q\n    gather:\n      options:\n"
        "        a: {digits: '1', phrases: [help]}\n"
        "        b: {digits: '2', phrases: [agent, help]}\n"
    )
    assert problems[0].startswith("test.yaml:5: steps[0] (q).gather.options: spoken options")
    assert "'help' belongs to both 'a' and 'b'" in problems[0]


@pytest.mark.parametrize(
    "name",
    ["IVR_LLM_API_KEY", "IVR_SPEECH_API_KEYS", "IVR_CRM_TOKEN", "IVR_DB_PASSWORD", "IVR_X_SECRET"],
)
def test_secret_env_names_are_refused_at_load(name: str) -> None:
    problems = _problems(
        f'name: leak\nenv:\n  IVR_SUPPORT_NUMBER: "+15550100"\n  {name}: ""\n'
        f'steps:\n  - say: "{{{{ env.{name} }}}}"\n'
    )
    assert len(problems) == 1
    assert problems[0].startswith("test.yaml:4:")
    assert f"{name} holds a secret" in problems[0] and "remove it from env" in problems[0]


def test_ordinary_env_names_still_load() -> None:
    flow = parse_flow(
        'name: ok\nenv: {IVR_SUPPORT_NUMBER: "+15550100", IVR_KEYPAD: "1"}\n'
        'steps:\n  - say: "{{ env.IVR_SUPPORT_NUMBER }}"\n'
    )
    assert set(flow.env) == {"IVR_SUPPORT_NUMBER", "IVR_KEYPAD"}


COMMANDS = """name: t
commands:
  agent: {phrases: [agent], digits: "0", goto: persn}
  repeat: {phrases: [repeat], repeat: true, goto: menu}
steps:
  - id: menu
    gather:
      options:
        balance: {digits: "1", phrases: [balance]}
        person: {digits: "0", phrases: [a person]}
  - id: person
    hangup: true
"""


def test_commands_are_checked_with_file_and_line() -> None:
    assert _problems(COMMANDS) == [
        "test.yaml:4: commands.repeat: a command does exactly one of 'goto: STEP', "
        "'repeat: true', 'help'",
    ]
    assert _problems(COMMANDS.replace(", goto: menu", "")) == [
        "test.yaml:3: commands.agent.goto: no step has id 'persn'; did you mean 'person'? "
        "(step ids: menu, person)",
        "test.yaml:10: steps[0] (menu).gather.options.person.digits: key '0' clashes with the "
        "flow command 'agent' (commands.agent.digits: '0'), which every menu understands; give "
        "the option another key, or drop the option and let the command answer",
    ]
    problems = _problems(COMMANDS.replace("persn", "person").replace(", goto: menu", ""))
    assert problems == [
        "test.yaml:10: steps[0] (menu).gather.options.person.digits: key '0' clashes with the "
        "flow command 'agent' (commands.agent.digits: '0'), which every menu understands; give "
        "the option another key, or drop the option and let the command answer"
    ]


def test_commands_with_clashing_keys_or_a_shared_phrase_are_refused() -> None:
    flow = (
        "name: t\ncommands:\n"
        "  agent: {phrases: [agent], digits: '0', goto: end}\n"
        "  operator: {phrases: [agent], digits: '01', goto: end}\n"
        "steps:\n  - id: menu\n    gather:\n      options: {a: {phrases: [apple]}}\n"
        "  - id: end\n    hangup: true\n"
    )
    problems = _problems(flow)
    assert problems[0] == (
        "test.yaml:4: commands.operator.digits: key '01' clashes with command 'agent''s key "
        "'0'; give one of them another key"
    )
    assert "spoken options cannot be recognised: phrase 'agent' belongs to both" in problems[1]


def test_a_confirm_option_needs_phrases_and_its_prompt_is_a_checked_template() -> None:
    flow = (
        "name: t\nsteps:\n  - id: menu\n    gather:\n      options:\n"
        "        quit: {digits: '9', confirm: true}\n"
        "        stop: {phrases: [stop], confirm: true, confirm_prompt: 'Stop {{ phrase ?'}\n"
    )
    [problem] = _problems(flow)
    assert "confirm: true is for spoken choices; option 'quit' has no 'phrases'" in problem
    [problem] = _problems(flow.replace("'9', confirm: true", "'9'"))
    assert problem.startswith("test.yaml:7: steps[0] (menu).gather.options.stop.confirm_prompt:")
