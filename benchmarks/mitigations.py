"""What each mitigation costs per training step on the embedded default base.

One command: `.venv/bin/python benchmarks/mitigations.py [--steps 20] [--ranks 4 64] [--threads 1]`.

For each rank, times `--steps` optimizer steps (forward, loss, penalty, backward, AdamW) of
`LoRAFineTuning.training_step` on batches of 8 × 128 tokens of the embedded code data, for:
none, kl_to_base (one extra forward pass with the adapters disabled), l2_to_base (r×r products)
and both. The variants are interleaved step by step, so load from other processes falls on
all of them alike; the median step time is reported. Replay is not timed: it replaces rows of
the batch, so a step costs what it costs without it (it only reads a second packed tensor).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import warnings

    import torch

    warnings.filterwarnings("ignore")  # self.log() outside a Trainer, which this loop is on purpose
    from forgetlab.config import DataConfig, LoraConfig, MitigationConfig, ModelConfig, TrainingConfig
    from forgetlab.finetune.data import load_fine_tuning_data
    from forgetlab.finetune.model import apply_lora, load_base
    from forgetlab.finetune.training import LoRAFineTuning

    torch.set_num_threads(args.threads)
    variants = {
        "none": MitigationConfig(),
        "kl_to_base": MitigationConfig(kl_to_base=0.1),
        "l2_to_base": MitigationConfig(l2_to_base=0.1),
        "both": MitigationConfig(kl_to_base=0.1, l2_to_base=0.1),
    }
    print(f"embedded base, batch 8 x 128 tokens, {args.threads} thread(s), median of {args.steps} steps")
    for rank in args.ranks:
        torch.manual_seed(0)
        base = load_base(ModelConfig(name="embedded"), progress=False)
        data = load_fine_tuning_data(DataConfig(source="embedded:code"), base.tokenizer, 128)
        model = apply_lora(base.model, LoraConfig(rank=rank))
        model.train()
        modules = {name: LoRAFineTuning(model, TrainingConfig(), mitigation) for name, mitigation in variants.items()}
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for step in range(args.steps + 2):  # the first two steps warm up and are not counted
            batch = (data.train.input_ids[8 * step : 8 * step + 8], data.train.labels[8 * step : 8 * step + 8])
            for name, module in modules.items():
                started = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                module.training_step(batch, step).backward()
                optimizer.step()
                if step >= 2:
                    times[name].append(time.perf_counter() - started)
        baseline = statistics.median(times["none"])
        for name, values in times.items():
            median = statistics.median(values)
            print(f"rank {rank:>3}  {name:<11} {1000 * median:7.1f} ms/step  ({median / baseline:.2f}x none)")


if __name__ == "__main__":
    main()
