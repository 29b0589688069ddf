"""Configuration problems are named at startup and at the step, never a crash mid-call."""

from __future__ import annotations

import pytest

from ivr_bridge.dialog.flow import FlowServices, parse_flow
from ivr_bridge.dialog.llm_step import llm_configuration_problem
from ivr_bridge.llm.settings import LLMSettings
from ivr_bridge.recognition.models import RecognizerUnavailable
from ivr_bridge.stt import get_turn_transcriber
from tests.llm.fake_call import EchoTranscriber

LLM_FLOW = parse_flow("name: a\nsteps:\n  - llm: {system_prompt: 'Help.'}\n")


def _services(settings: LLMSettings, transcriber: object = EchoTranscriber) -> FlowServices:
    return FlowServices(llm_settings=lambda: settings, turn_transcriber=transcriber)  # type: ignore[arg-type]


def test_bad_ivr_stt_names_the_variable_and_the_allowed_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IVR_STT", "wisper")
    with pytest.raises(RecognizerUnavailable) as caught:
        get_turn_transcriber()
    assert str(caught.value) == "IVR_STT: 'wisper' is not one of whisper, deepgram, auto"


def test_startup_check_reports_a_turn_recogniser_that_cannot_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IVR_STT", "deepgram")
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    settings = LLMSettings(model="m", api_key="sk-test")
    services = FlowServices(llm_settings=lambda: settings)
    problem = llm_configuration_problem([LLM_FLOW], services)
    assert problem is not None and problem.startswith("IVR_STT=deepgram needs DEEPGRAM_API_KEY")


def test_startup_check_reports_a_provider_that_cannot_be_built() -> None:
    settings = LLMSettings(provider="anthropic", model="claude-x", api_key=None, base_url=None)
    problem = llm_configuration_problem([LLM_FLOW], _services(settings))
    assert problem is not None and problem.startswith("IVR_LLM_")
    assert "anthropic" in problem.lower()


def test_startup_check_passes_a_working_configuration() -> None:
    settings = LLMSettings(model="m", api_key="sk-test")
    assert llm_configuration_problem([LLM_FLOW], _services(settings)) is None
