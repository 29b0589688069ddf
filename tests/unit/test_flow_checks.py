"""Static checks on load: a misspelt variable, an undeclared env name or an unknown voice is a
`file:line: where: problem` with the fix, before any caller reaches the step."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_bridge.dialog.flow import FlowError, load_flow, parse_flow
from ivr_bridge.speechserver.voices import VOICES

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def _problems(text: str, voices: list[str] | None = None) -> list[str]:
    with pytest.raises(FlowError) as info:
        parse_flow(text, "test.yaml", voices=voices)
    return [str(p) for p in info.value.problems]


def test_a_misspelt_variable_is_located_with_did_you_mean() -> None:
    problems = _problems(
        "name: t\n"
        "steps:\n"
        "  - gather: {prompt: Account, digits: {max: 8}, into: account_number}\n"
        "  - say: 'Ending {{ acount_number[-4:] | digits }}.'\n"
    )
    assert len(problems) == 1
    assert problems[0].startswith(
        "test.yaml:4: steps[1].say: unknown variable 'acount_number'; "
        "did you mean 'account_number'? (a template reads the bridge's call_sid, callee, caller,"
    )


def test_a_variable_no_step_sets_has_no_suggestion_when_nothing_is_close() -> None:
    [problem] = _problems("name: t\nsteps:\n  - hangup: {say: 'Bye {{ zzz }}.'}\n")
    assert problem.startswith("test.yaml:3: steps[0].hangup.say: unknown variable 'zzz' (a")


def test_a_branch_expression_is_checked_too() -> None:
    [problem] = _problems(
        "name: t\n"
        "variables: {balance: 0}\n"
        "steps:\n"
        "  - id: top\n"
        "    branch:\n"
        "      - when: 'balanse > 100'\n"
        "        goto: top\n"
        "      - goto: top\n"
    )
    assert problem.startswith(
        "test.yaml:6: steps[0] (top).branch[0].when: unknown variable 'balanse'; "
        "did you mean 'balance'?"
    )


def test_every_way_a_flow_defines_a_name_counts() -> None:
    flow = parse_flow(
        "name: t\n"
        "variables: {clinic: Riverside}\n"
        "steps:\n"
        "  - say: '{{ params.name }} {{ caller }} {{ callee }} {{ call_sid }} {{ last }}'\n"
        "  - id: menu\n"  # a gather without into: its id
        "    gather: {options: {a: {digits: '1'}}}\n"
        "  - set: {n: '{{ menu }} {{ clinic }}'}\n"
        "  - record: {into: msg}\n"
        "  - http: {url: 'http://x/{{ n }}', into: result, on_failure: menu}\n"
        "  - say: '{% for i in range(2) %}{{ i }}{{ loop.index }}{% endfor %}{{ result }}'\n"
        "  - say: '{{ msg }}'\n"
        "  - say: '{% set x = 1 %}{{ x }}{{ later }}'\n"
        "  - set: {later: 2}\n"  # set below the step that reads it: the flow may loop
    )
    assert flow.name == "t"


def test_an_undeclared_env_name_names_the_fix() -> None:
    problems = _problems(
        "name: t\n"
        "env: {IVR_BALANCE_URL: 'http://x'}\n"
        "steps:\n"
        "  - say: '{{ env.IVR_BALANCE_ULR }}'\n"
        "  - say: \"{{ env['IVR_SHOP'] }}\"\n"
        "  - say: \"{{ env.get('IVR_OTHER', '') }}\"\n"
    )
    assert problems == [
        "test.yaml:4: steps[0].say: env.IVR_BALANCE_ULR is not declared: did you mean "
        "'IVR_BALANCE_URL', or declare IVR_BALANCE_ULR under env: (with its default)",
        "test.yaml:5: steps[1].say: env.IVR_SHOP is not declared: declare IVR_SHOP under env: "
        "(with its default)",
        "test.yaml:6: steps[2].say: env.IVR_OTHER is not declared: declare IVR_OTHER under env: "
        "(with its default)",
    ]


def test_a_secret_or_non_ivr_env_name_cannot_be_declared_and_says_so() -> None:
    [problem] = _problems("name: t\nsteps:\n  - say: '{{ env.LMNT_API_KEY }}'\n")
    assert problem == (
        "test.yaml:3: steps[0].say: env.LMNT_API_KEY is never visible to templates: a flow "
        "reads only the IVR_* names it declares under env:, and no key, token or password"
    )


def test_templates_in_an_llm_step_are_checked() -> None:
    [problem] = _problems("name: t\nsteps:\n  - llm:\n      transfer_to: '{{ env.IVR_AGENT }}'\n")
    assert problem.startswith("test.yaml:4: steps[0].llm.transfer_to: env.IVR_AGENT is not")


def test_an_unknown_voice_is_refused_when_the_speech_servers_voices_are_known() -> None:
    text = "name: t\nvoice: lea\nsteps:\n  - hangup: true\n"
    [problem] = _problems(text, voices=list(VOICES))
    assert problem.startswith("test.yaml:2: voice: unknown voice 'lea'; did you mean 'leah'? (")
    assert "heart" in problem
    assert parse_flow(text).voice == "lea"  # a remote speech server: not known here
    assert parse_flow(text.replace("lea", "Leah"), voices=list(VOICES)).voice == "Leah"


def test_a_syntax_error_is_reported_once_not_also_as_unknown_names() -> None:
    [problem] = _problems("name: t\nsteps:\n  - say: 'Hi {{ nam '\n")
    assert "bad template" in problem


@pytest.mark.parametrize("path", sorted(FLOWS.glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_flows_pass_every_check(path: Path) -> None:
    assert load_flow(path, voices=list(VOICES)).steps
