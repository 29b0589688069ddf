"""The neural voice: natural English from the wheel's bundled model, never a download."""

from __future__ import annotations

import audioop
from typing import Any

import pytest

from ivr_bridge.speechserver import neural
from ivr_bridge.speechserver.engines import VoiceEngines, speaks_neural
from ivr_bridge.speechserver.neural import NeuralSynthesizer

pytest.importorskip("hibari")


@pytest.fixture(scope="module")
def synth() -> Any:
    engine = NeuralSynthesizer()
    yield engine
    engine.shutdown()


async def test_heart_speaks_english_with_words_in_order_over_the_audio(synth: Any) -> None:
    text = "Hello, this is Elm Street Clinic. Press one to confirm."
    result = await synth.synthesize(text, "heart", 8000)
    assert result.sample_rate == 8000
    assert 2.0 < result.duration_s < 8.0
    assert [w.text for w in result.words] == text.split()
    starts = [w.start_s for w in result.words]
    assert starts == sorted(starts)
    last = result.words[-1]
    assert last.start_s + last.duration_s == pytest.approx(result.duration_s, abs=0.02)
    # No dead air before the first word: the lead-in silence is trimmed.
    first_20ms = result.pcm16[: 2 * 160]
    assert audioop.rms(first_20ms, 2) > 50


async def test_the_same_text_sounds_the_same_twice(synth: Any) -> None:
    a = await synth.synthesize("Your appointment is on Friday.", "heart", 8000)
    b = await synth.synthesize("Your appointment is on Friday.", "heart", 8000)
    assert a.pcm16 == b.pcm16


def test_heart_is_neural_in_english_and_espeak_in_other_languages() -> None:
    assert speaks_neural("heart", None)
    assert speaks_neural("heart", "en")
    assert speaks_neural("Heart", "en-US")
    assert not speaks_neural("heart", "es")
    assert not speaks_neural("leah", "en")


async def test_a_spanish_request_in_heart_is_spoken_by_espeak() -> None:
    class Refusing(NeuralSynthesizer):
        async def synthesize(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the neural voice cannot speak Spanish")

    engines = VoiceEngines(neural=Refusing())
    result = await engines.synthesize("Hola, buenos días.", "heart", 8000, language="es")
    assert result.duration_s > 0.5


def test_the_bundled_voice_loads_without_any_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import hibari.voices

    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("hibari tried to download a voice")

    monkeypatch.setattr(hibari.voices, "download", no_download)
    model = neural.load_bundled_voice()
    assert model.sample_rate == 24000
