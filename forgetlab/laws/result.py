"""A fit's complete record: what was fitted, how, to which points, and what came out.

The JSON form (`FitResult.to_dict`) is what `--json`, the MLflow artifact `fit.json` and the
`fits` table's `result` column hold, and what `forgetlab predict` reads back. Non-finite numbers
are written as null (JSON has no NaN).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FitResult:
    """One law fitted to one data set. Every field is JSON-ready (see `json_safe`)."""

    dataset: str
    law: str
    variant: str
    equation: str
    status: str
    """converged | on_bound | not_converged | non_finite (see forgetlab.laws.fitting)."""
    message: str
    on_bound: list[str]
    params: dict[str, Optional[float]]
    """Point estimates, public names (the paper's for paper-joint)."""
    intervals: dict[str, list[Optional[float]]]
    """Percentile bootstrap interval [low, high] per public parameter."""
    internal: dict[str, Any]
    """Internal parametrisation: names, estimate, bounds, bootstrap draws (what predict uses)."""
    reference: dict[str, float]
    """P0, N0: the point P and N are divided by inside the forms (and the paper-joint gauge)."""
    stats: dict[str, Any]
    validation: dict[str, Any]
    identifiability: dict[str, Any]
    bootstrap: dict[str, Any]
    data: dict[str, Any]
    spec: dict[str, Any]
    fit_id: Optional[str] = None
    created: Optional[str] = None
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FitResult":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def json_safe(value: Any) -> Any:
    """Plain Python types only; NaN and ±inf become None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def as_float(value: Optional[float]) -> float:
    """Back from JSON: None means NaN (or an infinite bound, which the caller knows)."""
    return float("nan") if value is None else float(value)
