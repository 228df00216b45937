"""Kept importable for older imports: the names live in `forgetlab.tracking.names`."""

from forgetlab.tracking.names import (  # noqa: F401
    CURVE_METRICS,
    FORGETTING_METRICS,
    MULTIPLE_CHOICE_METRICS,
    PENALTY_METRICS,
    REFUSAL_METRICS,
)
