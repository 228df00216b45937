"""Credentials never reach the tracking store: every text logged goes through `scrub_secrets`."""

from __future__ import annotations

import os
import re

# user:password@ in any URL, anywhere in the text (a command line, a YAML dump), not only a bare URI
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@]+@")
_SECRET_PATTERNS = [
    re.compile(r"hf_[A-Za-z0-9]{20,}"),  # Hugging Face tokens
    re.compile(r"(?i)(token|secret|password|passwd|api[_-]?key)=([^&\s]+)"),
    re.compile(r"(?i)bearer [A-Za-z0-9._~+/-]+=*"),
]
SECRET_ENV_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "WANDB_API_KEY",
)


def scrub_secrets(text: str) -> str:
    """Remove credentials from a string before it is logged anywhere."""
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(
            lambda match: match.group(0).split("=")[0] + "=***" if "=" in match.group(0) else "***", text
        )
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            text = text.replace(value, "***")
    return text
