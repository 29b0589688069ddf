"""The system prompt: how a person talks on the phone, plus what the flow tells the model.

A flow may replace the persona (``system_prompt``, rendered by the flow's own sandboxed templates)
and add ``context`` facts; the phone-speech rules stay unless the flow
says ``phone_style: false``, because a model that emits markdown or lists sounds broken on a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_PERSONA = (
    "You are a friendly, efficient phone agent answering a caller. Keep the conversation moving "
    "and help them get what they called for."
)

PHONE_STYLE = """You are speaking on a live phone call; everything you write is read aloud.
- Talk like a person on the phone: short sentences, contractions, one idea at a time.
- Keep replies to one to three sentences unless the caller asks for detail.
- Never use lists, bullet points, headings, markdown, emoji, URLs or code.
- Say numbers the way they should be heard: phone numbers, account and reference numbers digit \
by digit ("four one five, five five five..."), amounts and times in words.
- If you didn't catch something, say so and ask again; don't guess names or numbers.
- Use the tools you have when the caller asks for something they do; before a tool that ends or \
transfers the call, tell the caller what's happening."""


def build_system_prompt(
    *,
    persona: str | None = None,
    context: Mapping[str, Any] | None = None,
    phone_style: bool = True,
) -> str:
    """``persona`` is text the flow already rendered with its own templates (rendering it again
    here would evaluate caller data as a template)."""
    parts = [(persona or DEFAULT_PERSONA).strip()]
    if phone_style:
        parts.append(PHONE_STYLE)
    facts = [
        f"- {name}: {value}" for name, value in (context or {}).items() if value not in ("", None)
    ]
    if facts:
        parts.append("What you know about this call:\n" + "\n".join(facts))
    return "\n\n".join(parts)
