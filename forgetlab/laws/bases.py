"""One base per comparison: results of different base models are never set side by side.

Forgetting is measured against the base model itself, so two arms run on different bases (even
two builds of the same config whose weights differ) answer different questions: in the long-N
arm, built on an older embedded base, hard L_f came out 0.04–0.16 nats lower (mean per run) at matched rank,
seed and N than in the study. The points carry the base's fingerprint (`base_fingerprint`, a
hash of its weights; `model` where an older export lacks it). `forgetlab report` names the
base of every results folder, refuses to fit points or folders of different bases together
(`check_one_base`), and says which folders beside it ran on another base (`other_bases`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from forgetlab.errors import UserError

POINTS_FILE = "points.parquet"
SHOWN = 12  # hex digits of a fingerprint shown in a line (enough to tell bases apart)


def short(fingerprint: str) -> str:
    return fingerprint if len(fingerprint) <= SHOWN else fingerprint[:SHOWN] + "…"


def bases_of(frame) -> dict[str, int]:
    """Base fingerprint (else model name) → number of runs; {} when the points carry neither."""
    for column in ("base_fingerprint", "model"):
        if column in frame.columns and frame[column].notna().any():
            runs = frame.dropna(subset=[column]).groupby(frame[column].astype(str))["run_id"].nunique()
            return {str(k): int(v) for k, v in runs.sort_values(ascending=False).items()}
    return {}


def describe(bases: dict[str, int]) -> str:
    """'base 641ff1908922… (56 runs)' for a results header; 'base unknown' without the columns."""
    if not bases:
        return "base unknown (the points carry no base_fingerprint or model column)"
    return " and ".join(f"base {short(b)} ({n} run{'s' if n != 1 else ''})" for b, n in bases.items())


def check_one_base(frames: dict[str, object]) -> Optional[str]:
    """UserError when the points of these sources (label → frame) hold more than one base; else the base."""
    found: dict[str, list[str]] = {}
    for label, frame in frames.items():
        for base in bases_of(frame):
            found.setdefault(base, []).append(label)
    if len(found) <= 1:
        return next(iter(found), None)
    if len(frames) == 1:
        label, frame = next(iter(frames.items()))
        counts = bases_of(frame)
        listed = ", ".join(f"{short(b)} ({n} runs)" for b, n in counts.items())
        raise UserError(
            f"{label} mixes base models ({listed}): results of different bases cannot be set side by side; write each "
            "base's points to its own folder (forgetlab query queries/laws.sql -p min_step=-1 -p base_fingerprint=<one> "
            "--format parquet --output <folder>/points.parquet) and report them apart"
        )
    listed = "; ".join(f"{', '.join(labels)}: base {short(b)}" for b, labels in found.items())
    raise UserError(
        f"the folders ran on different base models ({listed}): results of different bases cannot be set side by side; "
        "rerun one arm on the other's base (same config, so the same fingerprint) or report each folder on its own"
    )


def read_bases(path: Path) -> dict[str, int]:
    """The bases of a points file, reading only the columns needed."""
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    columns = [c for c in ("run_id", "base_fingerprint", "model") if c in names]
    return bases_of(pq.read_table(path, columns=columns).to_pandas()) if "run_id" in columns else {}


def other_bases(folder: Path, base: Optional[str]) -> list[tuple[Path, dict[str, int]]]:
    """Results folders beside `folder` (siblings holding points) whose base is not `base`."""
    found = []
    parent = Path(folder).resolve().parent
    for sibling in sorted(parent.iterdir()):
        path = sibling / POINTS_FILE
        if sibling.resolve() == Path(folder).resolve() or not path.is_file():
            continue
        bases = read_bases(path)
        if bases and set(bases) != {base}:
            found.append((sibling, bases))
    return found
