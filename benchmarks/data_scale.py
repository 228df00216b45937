"""Time to the first training step on a hub-sized local data set: every row tokenized vs the run's subset.

    .venv/bin/python benchmarks/data_scale.py [--rows 1000000] [--steps 20]

Writes a synthetic jsonl of `--rows` instruction rows (stdlib-docstring sentences), then runs
the same tiny-base config twice in this process, each with a fresh packed cache and a fresh
`datasets` cache: `data.max_examples=null` (every row tokenized: what the loader did before)
and `data.max_examples=auto` (a seeded subset sized from steps x batch x context). Printed:
seconds from `execute_run` to the first training step, and examples and tokens tokenized.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def write_rows(path: Path, rows: int) -> None:
    import inspect
    import textwrap

    sentences = [
        s.strip()
        for _, m in inspect.getmembers(textwrap)
        for s in (inspect.getdoc(m) or "").split(".")
        if len(s.strip()) > 20
    ]
    with path.open("w") as out:
        for i in range(rows):
            out.write(
                json.dumps(
                    {
                        "prompt": f"Item {i}: {sentences[i % len(sentences)]}?",
                        "response": sentences[(i * 7) % len(sentences)],
                    }
                )
                + "\n"
            )


def first_step_seconds(data_file: Path, max_examples: str, steps: int, workdir: Path) -> tuple[float, object]:
    import lightning as L

    from forgetlab.config import load_run_config
    from forgetlab.finetune.recipe import execute_run

    class FirstStep(L.Callback):
        def __init__(self):
            self.at = None

        def on_train_batch_start(self, trainer, module, batch, batch_index):
            if self.at is None:
                self.at = time.perf_counter()

    overrides = [
        "model.name=embedded-tiny", f"data.source={data_file}", f"data.max_examples={max_examples}",
        f"train.steps={steps}", "train.eval_every=10", "train.context_length=128", "train.batch_size=8",
        "train.checkpoint_every=0", f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
    ]  # fmt: skip
    config = load_run_config(Path(__file__).resolve().parents[1] / "lightning_configs" / "r4.yaml", overrides)
    timer = FirstStep()
    captured = {}
    import forgetlab.finetune.data as data_module

    original = data_module.load_fine_tuning_data

    def recording(*args, **kwargs):
        captured["data"] = original(*args, **kwargs)
        return captured["data"]

    data_module.load_fine_tuning_data = recording
    try:
        start = time.perf_counter()
        execute_run(config, progress=False, extra_callbacks=[timer])
    finally:
        data_module.load_fine_tuning_data = original
    return timer.at - start, captured["data"].stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="forgetlab-data-scale-"))
    data_file = root / "rows.jsonl"
    started = time.perf_counter()
    write_rows(data_file, args.rows)
    print(
        f"wrote {args.rows:,} rows ({data_file.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s"
    )
    from forgetlab.embedded.base import ensure_embedded_base

    ensure_embedded_base("embedded-tiny", progress=False)  # built once, outside both timings
    results = {}
    for label, max_examples in (("every row (before)", "null"), ("auto subset (after)", "auto")):
        # Fresh caches: the first run of a new data set, for both.
        import datasets

        datasets.config.HF_DATASETS_CACHE = root / f"hf-{max_examples}"  # read by each load_dataset call
        import forgetlab.finetune.data as data_module

        data_module.packed_cache_dir = lambda m=max_examples: root / f"packed-{m}"
        seconds, stats = first_step_seconds(data_file, max_examples, args.steps, root / label.split()[0])
        results[label] = seconds
        print(
            f"{label:22s} first step after {seconds:7.1f} s; tokenized {stats.examples:,} examples, {stats.tokens:,} tokens"
        )
    before, after = results["every row (before)"], results["auto subset (after)"]
    print(f"speed-up to first step: {before / after:.1f}x")


if __name__ == "__main__":
    main()
