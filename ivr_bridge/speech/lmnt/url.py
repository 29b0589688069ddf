"""The LMNT speech-session WebSocket URL, derived from a base URL the way the official SDK does.

Following the SDK's rule means one setting (``LMNT_BASE_URL``) points both the official SDK and
this client at the same server, e.g. ``http://127.0.0.1:P`` for the embedded speech server.
"""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.lmnt.com"
STREAM_PATH = "/v1/ai/speech/stream"


def session_url(base_url: str = DEFAULT_BASE_URL) -> str:
    """Strip trailing ``/``, map ``https``→``wss`` and ``http``→``ws``, append the stream path.

    Any other scheme (``ws``/``wss`` already) is kept as given, as the SDK does.
    """
    url = base_url.rstrip("/")
    if url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    elif url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    return url + STREAM_PATH
