"""Reading an HTTP body up to a limit, shared by the flow's http step and the LLM's tools.

aiohttp's ``StreamReader.read(n)`` returns whatever is buffered (at most n bytes), not n bytes,
so a body that arrives in several TCP segments would be cut after the first one.
"""

from __future__ import annotations

import aiohttp


async def read_limited(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The body until EOF, or its first ``limit + 1`` bytes when it is longer than ``limit``.

    Callers compare ``len(result) > limit`` to tell an oversized body from a complete one.
    """
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
