"""Headless Chromium driven over the DevTools protocol (a WebSocket), for reading rendered pages.

Debian's ``chromium`` (installed by ``.ci/run``/``make test``); no driver download, no selenium:
the page is opened from disk, and :meth:`Page.evaluate` runs JavaScript in it and returns JSON.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1200,1600",
]


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next = 0
        self.events: list[dict[str, Any]] = []
        """What Chromium reported meanwhile (``Network.responseReceived``... once enabled)."""

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json()
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` (awaited when it is a promise)."""
        reply = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def statuses(self, url_part: str) -> list[int]:
        """HTTP statuses of the responses so far whose URL contains ``url_part`` (needs
        ``headers`` given to :func:`open_page`, which turns the Network domain on)."""
        return [
            int(e["params"]["response"]["status"])
            for e in self.events
            if e["method"] == "Network.responseReceived"
            and url_part in e["params"]["response"]["url"]
        ]

    async def screenshot(self, path: Path) -> None:
        import base64

        reply = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(reply["data"]))


@asynccontextmanager
async def open_page(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[Page]:
    """Chromium showing ``url``, loaded; closed (and its profile removed) afterwards.
    ``headers`` go with every request the page makes (an ``Authorization``, say)."""
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="ivr-chromium-")
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        async with asyncio.timeout(30):
            while not port_file.exists() or not port_file.read_text().strip():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = json.loads(await response.text())
            page_target = next(t for t in targets if t["type"] == "page")
            async with http.ws_connect(page_target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.send("Page.enable")
                if headers:
                    await page.send("Network.enable")
                    await page.send("Network.setExtraHTTPHeaders", headers=headers)
                await page.send("Page.navigate", url=url)
                async with asyncio.timeout(30):
                    while await page.evaluate("document.readyState") != "complete":  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                yield page
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        shutil.rmtree(profile, ignore_errors=True)
