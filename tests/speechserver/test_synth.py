"""The espeak synthesizer used by the server and, directly, by the simulated caller."""

from __future__ import annotations

import array
import asyncio

import pytest

from ivr_bridge.speechserver.synth import SynthesisError, get_synthesizer
from ivr_bridge.speechserver.voices import VOICES, get_voice


async def test_words_follow_the_text_and_tile_the_audio() -> None:
    result = await get_synthesizer().synthesize("Please hold while I connect you.", "leah", 8000)
    assert [w.text for w in result.words] == ["Please", "hold", "while", "I", "connect", "you"]
    for word, following in zip(result.words, result.words[1:], strict=False):
        assert word.start_s + word.duration_s == pytest.approx(following.start_s, abs=1e-3)
    last = result.words[-1]
    assert last.start_s + last.duration_s == pytest.approx(result.duration_s, abs=1e-3)


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
async def test_sample_rate_is_honoured(rate: int) -> None:
    result = await get_synthesizer().synthesize("Thank you for calling.", "brandon", rate)
    assert result.sample_rate == rate
    assert 0.8 < result.duration_s < 3


async def test_voices_sound_different() -> None:
    synth = get_synthesizer()
    leah = await synth.synthesize("Good morning.", "leah", 16000)
    brandon = await synth.synthesize("Good morning.", "brandon", 16000)
    assert leah.pcm16 != brandon.pcm16
    assert len({v.espeak_voice + v.variant for v in VOICES.values()}) == len(VOICES)


async def test_speed_changes_duration() -> None:
    synth = get_synthesizer()
    text = "The quick brown fox jumps over the lazy dog."
    normal = await synth.synthesize(text, "ava", 8000)
    fast = await synth.synthesize(text, "ava", 8000, speed=1.8)
    slow = await synth.synthesize(text, "ava", 8000, speed=0.6)
    assert fast.duration_s < normal.duration_s * 0.75 < slow.duration_s * 0.75


async def test_language_and_raw_espeak_voice() -> None:
    synth = get_synthesizer()
    german = await synth.synthesize("Guten Tag, wie geht es?", "leah", 8000, language="de")
    assert [w.text for w in german.words] == ["Guten", "Tag", "wie", "geht", "es"]
    caller = await synth.synthesize("I want my balance.", "en+m3", 8000)
    assert max(array.array("h", caller.pcm16)) > 3000
    with pytest.raises(SynthesisError):
        await synth.synthesize("Hello.", "definitely-not-a-voice", 8000)


async def test_cancelling_aborts_a_long_synthesis_and_leaves_the_synthesizer_usable() -> None:
    synth = get_synthesizer()
    aborted_before = synth.aborted_jobs
    long_job = asyncio.create_task(synth.synthesize("word " * 900, "leah", 8000))
    await asyncio.sleep(0.01)
    long_job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long_job
    after = await synth.synthesize("Still here.", "leah", 8000)
    assert [w.text for w in after.words] == ["Still", "here"]
    assert synth.aborted_jobs == aborted_before + 1  # espeak was stopped, not run to the end


def test_catalogue_lookup() -> None:
    assert get_voice("Leah") is get_voice("leah") is VOICES["leah"]
    assert get_voice("nobody") is None
