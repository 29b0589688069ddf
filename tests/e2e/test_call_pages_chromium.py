"""The operators' call page as Chromium renders it: a kept call's timeline and its recording,
served by the bridge's routes with the operator token, and refused without it.

Debian's chromium, driven over the DevTools protocol like the tester's report
(:mod:`tests.e2e.browser`); the records are the fakes of ``tests/unit/record_fakes.py`` in a
directory store, served by :func:`add_operator_routes` on a loopback port.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from ivr_bridge.records.store import FileRecordStore
from ivr_bridge.server.operator_pages import add_operator_routes
from tests.e2e.browser import CHROMIUM, Page, open_page
from tests.unit.record_fakes import MENU_HEARD, MENU_UNHEARD, stereo_wav, support_call

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (make test installs it)"
)

TOKEN = "operator-token-0123456789"
SID = "CA0000000000000000000000000000beef"
AUDIO_WAITED = """new Promise(done => {
  const audio = document.querySelector('audio.recording');
  if (!audio) return done(null);
  if (audio.readyState >= 1) return done(audio.duration);
  audio.addEventListener('loadedmetadata', () => done(audio.duration));
  audio.addEventListener('error', () => done(-1));
})"""


@pytest.fixture
async def pages(tmp_path: Path) -> AsyncIterator[str]:
    """Base URL of a server with the operators' pages over two kept calls."""
    store = FileRecordStore(tmp_path / "call-records")
    await store.save(support_call(SID), stereo_wav())
    await store.save(support_call("CAnoaudio", audio=False))
    app = web.Application()
    add_operator_routes(app, lambda: store, TOKEN)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def wait_for(page: Page, condition: str) -> None:
    """Until the page (once loaded) makes ``condition`` true; a navigation under way is waited
    out (its evaluations fail while the old page goes)."""
    async with asyncio.timeout(20):
        while True:
            try:
                if await page.evaluate(f"document.readyState === 'complete' && ({condition})"):
                    return
            except RuntimeError:
                pass
            await asyncio.sleep(0.05)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_call_page_shows_its_timeline_and_plays_its_recording(pages: str) -> None:
    async with open_page(f"{pages}/calls/{SID}", bearer(TOKEN)) as page:
        drawn = await page.evaluate(
            """(() => { const svg = document.querySelector('svg.timeline');
                 return {width: svg.getBoundingClientRect().width,
                         waves: [...svg.querySelectorAll('g.waveform path')]
                                  .map(p => p.getAttribute('d').length),
                         cut: svg.querySelectorAll('rect.utterance.interrupted').length,
                         bargeIns: svg.querySelectorAll('.barge-in-mark').length,
                         latencies: svg.querySelectorAll('g.latency').length}; })()"""
        )
        assert drawn["width"] > 500 and len(drawn["waves"]) == 2 and min(drawn["waves"]) > 1000
        assert drawn["cut"] == 1 and drawn["bargeIns"] == 1 and drawn["latencies"] == 2
        # The player fetched the recording from the bridge (same token) and decoded it.
        assert await page.evaluate(AUDIO_WAITED) == pytest.approx(6.0, abs=0.05)
        # What the caller heard reads normally; what was cut off is struck through.
        struck = await page.evaluate(
            """[...document.querySelectorAll('table.transcript s.unheard')].map(s =>
                 [s.textContent, getComputedStyle(s).textDecorationLine])"""
        )
        assert struck == [[MENU_UNHEARD, "line-through"]]
        line = await page.evaluate(
            "document.querySelector('table.transcript tr[data-who=\"bot\"]').innerText"
        )
        assert MENU_HEARD in line
        # The playhead script ran (its nonce matched the CSP): playing moves it.
        head_x = await page.evaluate(
            """(() => { const a = document.querySelector('audio'); a.currentTime = 3;
                 a.dispatchEvent(new Event('timeupdate'));
                 return +document.querySelector('.playhead').getAttribute('x1'); })()"""
        )
        assert head_x == pytest.approx(500, abs=5)


async def test_basic_auth_in_the_url_opens_the_list_and_a_call_without_audio(pages: str) -> None:
    host = pages.removeprefix("http://")
    async with open_page(f"http://ops:{TOKEN}@{host}/calls") as page:
        links = await page.evaluate(
            "[...document.querySelectorAll('table.calls a')].map(a => a.textContent)"
        )
        assert sorted(links) == sorted(["CAnoaudio", SID])
        href = await page.evaluate("document.querySelector('a[href$=\"/CAnoaudio\"]').href")
        await page.send("Page.navigate", url=href)  # the link, with the browser's saved login
        await wait_for(page, "location.pathname === '/calls/CAnoaudio'")
        assert await page.evaluate(AUDIO_WAITED) is None
        assert "No recording kept" in await page.evaluate("document.body.innerText")


async def test_a_wrong_token_gets_the_401_and_no_call(pages: str) -> None:
    async with open_page(f"{pages}/calls/{SID}", bearer("wrong-token-0123456789")) as page:
        assert page.statuses(f"/calls/{SID}") == [401]
        assert await page.evaluate("document.querySelector('svg') === null")
    basic = base64.b64encode(f"ops:{TOKEN}".encode()).decode()
    async with open_page(f"{pages}/calls/{SID}.json", {"Authorization": f"Basic {basic}"}) as page:
        assert SID in await page.evaluate("document.body.innerText")
