"""The speech server's voice catalogue: LMNT-style ids mapped onto espeak-ng voices and variants,
and the neural ``heart`` voice (hibari-tts; see :mod:`ivr_bridge.speechserver.neural`).

Ids are lower-case like LMNT's system voices, so code written for LMNT (``voice="leah"``) works
unchanged. Each voice is an espeak language voice plus a variant (``+f3``) and pitch settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Gender = Literal["female", "male", "nonbinary"]
Engine = Literal["espeak", "hibari"]

_ESPEAK_GENDER = {"male": 1, "female": 2, "nonbinary": 0}

# ISO 639-1 codes LMNT accepts whose espeak-ng voice has a different name.
_ESPEAK_LANGUAGE_NAMES = {"zh": "cmn"}


@dataclass(frozen=True, slots=True)
class VoiceProfile:
    id: str
    name: str
    gender: Gender
    description: str
    espeak_voice: str
    """espeak language voice used for English (or unspecified) text, e.g. ``en-us``."""
    variant: str
    """espeak variant file under ``voices/!v`` (``f3``, ``m1``...)."""
    pitch: int = 50
    """espeak pitch 0-100 (50 = the variant's own)."""
    pitch_range: int = 50
    rate_wpm: int = 175
    engine: Engine = "espeak"
    """``hibari``: the neural voice speaks English; espeak (the fields above) other languages."""

    @property
    def espeak_language(self) -> str:
        return self.espeak_voice.split("-")[0]

    @property
    def espeak_gender(self) -> int:
        return _ESPEAK_GENDER[self.gender]

    def to_api(self) -> dict[str, Any]:
        """The LMNT ``Voice`` object (fields the official SDK parses)."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": "system",
            "state": "ready",
            "description": self.description,
            "gender": self.gender,
            "preview_url": None,
            "starred": False,
            "tags": [self.espeak_voice, self.gender, self.engine],
            "type": "instant",
        }


VOICES: dict[str, VoiceProfile] = {
    voice.id: voice
    for voice in (
        VoiceProfile(
            "heart",
            "Heart",
            "female",
            "Natural American voice (neural, English; other languages in espeak).",
            "en-us",
            "f4",
            engine="hibari",
        ),
        VoiceProfile(
            "leah",
            "Leah",
            "female",
            "Warm, clear American voice (espeak-ng).",
            "en-us",
            "f3",
            pitch=55,
        ),
        VoiceProfile(
            "lily", "Lily", "female", "Bright British voice.", "en-gb-x-rp", "f2", pitch=60
        ),
        VoiceProfile(
            "ava",
            "Ava",
            "female",
            "Calm American voice, a little slower.",
            "en-us",
            "f5",
            pitch=45,
            rate_wpm=165,
        ),
        VoiceProfile(
            "brandon", "Brandon", "male", "Steady American voice.", "en-us", "m3", pitch=45
        ),
        VoiceProfile(
            "daniel",
            "Daniel",
            "male",
            "Formal British voice.",
            "en-gb-x-rp",
            "m1",
            pitch=40,
            rate_wpm=170,
        ),
        VoiceProfile(
            "morgan",
            "Morgan",
            "nonbinary",
            "Scottish-accented, mid-pitch voice.",
            "en-gb-scotland",
            "m7",
            pitch=60,
            pitch_range=40,
        ),
    )
}

DEFAULT_VOICE_ID = "heart"


def get_voice(voice_id: str) -> VoiceProfile | None:
    """Catalogue lookup by id (case-insensitive); None when the id is not ours."""
    return VOICES.get(voice_id.strip().lower())


def list_voices() -> list[VoiceProfile]:
    return list(VOICES.values())


def resolve_espeak_voice(profile: VoiceProfile | None, voice: str, language: str | None) -> str:
    """The espeak voice name to select: the voice's own, or ``language`` with its variant.

    A ``voice`` that is not a catalogue id is passed to espeak as-is (``en+m3``), so the simulated
    caller can use any espeak voice.
    """
    if profile is None:
        return voice
    lang = (language or "").strip().lower()
    if not lang or lang == "auto" or lang == profile.espeak_language:
        return f"{profile.espeak_voice}+{profile.variant}"
    return f"{_ESPEAK_LANGUAGE_NAMES.get(lang, lang)}+{profile.variant}"
