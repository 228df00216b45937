"""Reading probe items: forgetlab's shipped files, local files, or hub data sets, as lists of dicts.

Shipped files (`embedded:<name>`) live in `forgetlab/probes/data/` and are written by
`forgetlab.probes.fixtures`. Local files are read here without `datasets` (a probe file is small
and its nested ARC fields need no schema); hub names go through `datasets.load_dataset`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional

from forgetlab.config import TextSource
from forgetlab.errors import UserError
from forgetlab.utils.json_lines import json_error_location
from forgetlab.utils.paths import is_local_path

DATA_DIR = Path(__file__).resolve().parent / "data"
SHIPPED = {"embedded:cloze": "docstring_cloze.jsonl", "embedded:refusal": "refusal.csv"}
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv")


def read_records(source: str, hub_config: Optional[str], split: str, key: str) -> list[dict[str, Any]]:
    """The rows of a probe source; any problem is a UserError naming `key` (e.g. probes.refusal.source)."""
    if source.startswith("embedded:"):
        if source not in SHIPPED:
            raise UserError(f"{key}: unknown shipped probe file '{source}'; forgetlab ships {', '.join(SHIPPED)}")
        return _read_local(DATA_DIR / SHIPPED[source], key)
    path = Path(source).expanduser()
    if path.exists():
        return _read_local(path, key)
    if is_local_path(source):
        raise UserError(
            f"{key}: probe file '{source}' not found; give an existing .jsonl/.json/.csv file or a hub name"
        )
    return _read_hub(source, hub_config, split, key)


def _read_local(path: Path, key: str) -> list[dict[str, Any]]:
    if path.is_dir() or path.suffix not in LOCAL_SUFFIXES:
        raise UserError(f"{key}: '{path}' is not a {'/'.join(LOCAL_SUFFIXES)} file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".csv":
            return [dict(row) for row in csv.DictReader(text.splitlines())]
        if path.suffix == ".json" and text.lstrip().startswith("["):
            return list(json.loads(text))
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise UserError(f"{key}: '{path}' could not be parsed ({json_error_location(path) or error})") from None
    except csv.Error as error:
        raise UserError(f"{key}: '{path}' could not be parsed ({error})") from None


def _read_hub(name: str, hub_config: Optional[str], split: str, key: str) -> list[dict[str, Any]]:
    import datasets

    try:
        table = datasets.load_dataset(name, hub_config, split=split)
    except Exception as error:  # datasets raises many kinds for a missing name, split or network
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UserError(
            f"{key}: could not load hub data set '{name}' (config {hub_config}, split {split}): {first_line[:200]}; "
            "give a local file, or a hub name with network access (HF_DATASETS_OFFLINE unset)"
        ) from None
    return [dict(row) for row in table]


def read_source_records(text: TextSource) -> list[dict[str, Any]]:
    """The rows of a probe's configured source (`read_records`, problems named by the section's keys)."""
    return read_records(text.source, text.hub_config, text.split, text.key("source"))
