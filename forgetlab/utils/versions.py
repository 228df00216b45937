"""Installed package versions, recorded with every run, fit and embedded base (part of 'how to reproduce')."""

from __future__ import annotations

import platform
from typing import Iterable, Optional


def package_versions(packages: Iterable[str], missing: Optional[str] = "unknown") -> dict[str, str]:
    """{'python': '3.11.9', package: version, ...}; a package not installed gets `missing` (None: left out)."""
    import importlib.metadata as metadata  # here, not at the top: 30 ms of every CLI start-up otherwise

    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            if missing is not None:
                found[package] = missing
    return found
