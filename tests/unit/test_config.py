"""Startup configuration: wrong values stop startup with the variable's name and the fix."""

import pytest

from ivr_bridge.config import ConfigError, load_settings
from ivr_bridge.metrics import speech_error_label


def test_defaults_use_the_embedded_speech_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LMNT_API_KEY", "LMNT_BASE_URL", "IVR_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.uses_embedded_speech
    assert settings.voice == "heart"
    assert settings.public_url is None


def test_vendor_credentials_are_read_under_their_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tok-123")
    monkeypatch.setenv("LMNT_API_KEY", "key-456")
    monkeypatch.setenv("LMNT_BASE_URL", "http://127.0.0.1:9000")
    settings = load_settings()
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "tok-123"
    assert not settings.uses_embedded_speech
    assert settings.effective_lmnt_base_url == "http://127.0.0.1:9000"
    assert "key-456" not in repr(settings)


def test_bad_public_url_names_the_variable_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_PUBLIC_URL", "bridge.example.com")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "IVR_PUBLIC_URL" in message
    assert "https://bridge.example.com" in message


def test_bad_log_format_is_rejected_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "IVR_LOG_FORMAT" in str(info.value)
    assert "json" in str(info.value)


def test_the_vad_confirmer_is_silero_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IVR_VAD_CONFIRM", raising=False)
    assert load_settings().vad_confirm == "silero"
    assert load_settings().vad_confirm_threshold == 0.5
    monkeypatch.setenv("IVR_VAD_CONFIRM", "webrtc")
    with pytest.raises(ConfigError, match="IVR_VAD_CONFIRM") as info:
        load_settings()
    assert "silero" in str(info.value) and "off" in str(info.value)
    monkeypatch.setenv("IVR_VAD_CONFIRM", "off")
    monkeypatch.setenv("IVR_VAD_CONFIRM_THRESHOLD", "1.5")
    with pytest.raises(ConfigError, match="IVR_VAD_CONFIRM_THRESHOLD"):
        load_settings()


def test_flow_must_be_a_plain_file_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_FLOW", "../etc/passwd")
    with pytest.raises(ConfigError, match="IVR_FLOW"):
        load_settings()


def test_secret_values_never_appear_in_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_PORT", "not-a-port")
    monkeypatch.setenv("LMNT_API_KEY", "super-secret-key")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "IVR_PORT" in str(info.value)
    assert "super-secret-key" not in str(info.value)


def test_a_bad_vendor_setting_is_named_by_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMNT_BASE_URL", "ftp://example")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "  LMNT_BASE_URL (got 'ftp://example')" in str(info.value)
    assert "IVR_LMNT_BASE_URL" not in str(info.value)


def test_speech_error_types_are_a_bounded_label_set() -> None:
    assert speech_error_label("rate_limit_error") == "rate_limit_error"
    assert speech_error_label("something the server made up " * 3) == "other"


def test_the_early_end_of_turn_waits_may_not_exceed_the_full_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    assert (settings.answered_silence_ms, settings.sentence_silence_ms) == (200, 450)
    monkeypatch.setenv("IVR_END_OF_UTTERANCE_MS", "150")  # a line tuned short keeps working
    settings = load_settings()
    assert (settings.answered_silence_ms, settings.sentence_silence_ms) == (150, 150)
    monkeypatch.setenv("IVR_END_OF_UTTERANCE_MS", "400")
    monkeypatch.setenv("IVR_SENTENCE_SILENCE_MS", "500")  # set longer than the full wait
    with pytest.raises(ConfigError, match="IVR_SENTENCE_SILENCE_MS") as info:
        load_settings()
    assert "400" in str(info.value) and "500" in str(info.value)
    monkeypatch.setenv("IVR_SENTENCE_SILENCE_MS", "350")
    assert load_settings().sentence_silence_ms == 350
