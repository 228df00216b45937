"""Is the Hugging Face hub reachable? Asked once per process, before anything is downloaded.

Offline, `from_pretrained("gpt2")` spends about a minute in retries before it fails. A hub name
is checked here first: with `HF_HUB_OFFLINE` set only the local hub cache is read; otherwise one
TCP connection to the hub's host (2 s timeout) tells whether to try at all, and a hub name that
cannot be fetched fails at once with one line.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from urllib.parse import urlparse

from forgetlab.errors import UserError

DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT_S = 2.0
TRUE_VALUES = {"1", "true", "yes", "on"}


def hub_offline_by_setting() -> bool:
    """HF_HUB_OFFLINE (or its older name TRANSFORMERS_OFFLINE) is set: only the local cache is read."""
    return any(
        os.environ.get(name, "").strip().lower() in TRUE_VALUES for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)


@lru_cache(maxsize=None)
def hub_reachable(endpoint: str) -> bool:
    """One TCP connection to the endpoint's host and port; False on any failure within the timeout."""
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


def require_hub(key: str, name: str, what: str) -> bool:
    """Before loading hub name `name`: True = go online; False = read only the local hub cache.

    Raises a one-line UserError when the hub cannot be reached and offline mode is not set, instead of
    letting the libraries retry for a minute.
    """
    if hub_offline_by_setting():
        return False
    if hub_reachable(hub_endpoint()):
        return True
    raise UserError(
        f"{key}: '{name}' is a hub {what} and the hub ({hub_endpoint()}) cannot be reached from here; "
        "give a local folder or file, or run with network access (set HF_HUB_OFFLINE=1 to use the local hub cache)"
    )
