"""A stalling model end to end: the caller hears the filler (and hold lines), then the model's
answer from the one request, never the fallback apology.

Real bridge, embedded speech server, embedded whisper on the caller's synthesised voice, the
stand-in model stalling 2 s or 4.5 s before its first token, the simulated caller at real-time
speed (the stall is wall time). Assertions are on order and counts; the caller's silences are
measured (``benchmarks/bench_llm_stall.py`` reports them) but not asserted here, since a loaded
machine could stretch them.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ivr_bridge.llm.settings import LLMSettings
from tests.e2e.llm_stall import ANSWER, stall_call, stall_rig, whisper_or_none


@pytest.mark.parametrize("stall_s", [2.0, 4.5])
async def test_a_stalled_model_is_bridged_by_fillers_and_its_answer_is_heard(
    stall_s: float,
) -> None:
    transcriber = whisper_or_none()
    if transcriber is None:
        pytest.skip("embedded whisper unavailable")
    defaults = LLMSettings(model="m", api_key=SecretStr("k"))
    async with stall_rig(transcriber) as rig:
        call = await stall_call(rig, stall_s)
    summary = call.result.summary_table()
    assert call.requests == 1, f"one request for the one caller turn\n{summary}"
    user = rig.model.bodies[-1]["messages"][-1]
    assert user["role"] == "user" and "order" in user["content"].lower(), user
    answer = "".join(ANSWER)
    assert answer in call.said, f"{call.said}\n{summary}"
    assert defaults.fallback_text not in call.said, call.said
    waiting = call.said[call.said.index(defaults.filler_text) : call.said.index(answer)]
    assert waiting[0] == defaults.filler_text, call.said
    assert set(waiting[1:]) <= set(defaults.hold_texts), call.said
    if stall_s > 4:
        assert len(waiting) >= 2, f"a 4.5 s stall needs a hold line after the filler: {waiting}"
    # The caller heard them: an utterance per waiting line (the answer may follow the last one
    # too closely to count apart), none cut.
    assert len(call.silences_ms) >= len(waiting), (call.silences_ms, call.said)
    assert not any(u.interrupted for u in call.result.utterances)
