"""Shared test set-up: offline, a private cache and store per test session, tiny models only."""

from __future__ import annotations

import os

import pytest

# Hub look-ups fail fast instead of retrying for 24 s; MLflow stays quiet and local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session")
def forgetlab_cache(tmp_path_factory) -> str:
    """One cache for the whole session, so the tiny embedded base is built once.

    Under pytest-xdist every worker has its own temporary folder; the cache sits one level up,
    shared, so the base is built by one worker while the others wait on forgetlab's own build lock
    (the lock concurrent sweep jobs rely on, so this also exercises it).
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / "forgetlab-cache"
        path.mkdir(exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("forgetlab-cache")
    os.environ["FORGETLAB_CACHE"] = str(path)
    return str(path)


@pytest.fixture
def workdir(tmp_path, monkeypatch, forgetlab_cache):
    """A fresh current folder: the run's `mlruns/` store lands here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FORGETLAB_CACHE", forgetlab_cache)
    return tmp_path
