"""What a run reports when it ends."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunResult:
    run_id: str
    run_name: str
    status: str
    tracking_uri: str  # "" on ranks other than 0: they have nothing to report
    P: int
    steps_done: int
    first: dict[str, float] = field(default_factory=dict)  # every metric of the first evaluation
    last: dict[str, float] = field(default_factory=dict)  # each metric's latest value
    adapter_uri: str = ""  # where the trained adapter was logged (FINISHED runs, rank 0)
    merged_uri: str = ""  # where the merged model was logged (tracking.log_merged_model), else ""
