"""forgetlab on a real model: update time against a bare PyTorch + PEFT loop in each precision, and the
forgetting evaluation's time and memory against one forward pass (issue 25, item 5).

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true \\
        .venv/bin/python benchmarks/real_model.py --config lightning_configs/smollm2.yaml

Training (`--steps` updates per measurement, default 30, the first `--skip` of each left out): for each
precision (`--precisions`, default 32-true bf16-mixed bf16-true), a bare PyTorch + PEFT loop, then
forgetlab's real entry point (`forgetlab.finetune.recipe.execute_run`, every update timed from inside
Lightning as train_overhead.py does), then the bare loop again; the baseline is the median over both bare passes, so
neither side gets the cold (or the warm) machine alone. All three use the same base, LoRA config, seeded
batches (checked: the run's first batch is the bare loop's), batch size, context and precision (the bare
loop: `torch.autocast` for bf16-mixed, the model cast to bf16 for bf16-true; loss: the model's own,
`labels=`). The run evaluates only at step 0 and after its last update (`train.eval_every` = `--steps`),
outside the timed updates. Printed per precision: median seconds per update of each, forgetlab / bare
(target <= 1.05 in the config's precision), forgetlab's update time against 32-true's (to choose the
precision to recommend on this CPU), and the run's peak RSS (the process's high-water mark, reset before
the run; the base predictions are cached when they fit `forget.base_cache_mb`). The same medians in CPU
time of the process (all its threads) follow: on a loaded machine they move less than wall time, but
with several threads they also count threads that spin while waiting, so quote the wall-time ratio from
an idle machine.

Evaluation (`--pairs` alternating pairs, default 7; median ratio over pairs, as
`train_overhead.py --eval-only`): in a fresh process per model, the config's model and a
random-initialised model of its shape with a `--big-vocab`-token vocabulary (default 262144; 0 skips
it), in the config's precision (Lightning's own precision context, as a run evaluates): one forward pass
over the forgetting text's tokens against one `ForgettingEvaluator.evaluate`, first with the base
predictions cached (`forget.base_cache_mb` raised to fit them where the config's is too small, which the
line says), targets <= 1.2 at the config's vocabulary and <= 1.3 at the big one; then with
`forget.base_cache_mb` = 0, too small for them, so the base is recomputed at every evaluation. Printed per
mode: seconds per forward and per evaluation, their ratio (median, range over pairs), the cache's size, the
one-time cost of computing it (`prepare`), and the peak RSS of that mode against the RSS of the model alone
(and, on the line below, the peak of forward passes alone: what evaluation adds is the difference).

`--part train` or `--part eval` runs one half; `--threads N` sets torch's threads (default: torch's);
`--sequences N` evaluates N forgetting (and held-out) sequences instead of the config's (short checks only).
A short check that everything runs (timings from it mean nothing):

    .venv/bin/python benchmarks/real_model.py --config lightning_configs/smollm2.yaml \\
        --steps 4 --skip 1 --pairs 1 --sequences 8 --threads 1
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

PRECISIONS = ("32-true", "bf16-mixed", "bf16-true")
TRAIN_TARGET = 1.05
EVAL_TARGET_CONFIG_VOCAB, EVAL_TARGET_BIG_VOCAB = 1.2, 1.3


# -- memory: the process's resident set, and its high-water mark since the last reset ------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    return _status_kb("VmHWM") / 1024


def reset_peak_rss() -> None:
    """Linux >= 4.0: the high-water mark restarts from the current RSS, so each phase has its own peak."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


# -- configs ---------------------------------------------------------------------------------------


def load_config(args, precision: str | None = None, workdir: Path | None = None):
    """The config file with this benchmark's overrides; a model path relative to where the benchmark was
    started is made absolute (the training half runs in a scratch folder)."""
    from forgetlab.config import load_run_config

    overrides = [
        f"train.steps={args.steps}", f"train.eval_every={args.steps}", "train.warmup_steps=0", "train.checkpoint_every=0",
    ]  # fmt: skip
    if precision:
        overrides.append(f"train.precision={precision}")
    if args.threads:
        overrides.append(f"train.num_threads={args.threads}")
    if args.sequences:
        overrides += [f"forget.num_sequences={args.sequences}", f"train.ft_eval_sequences={args.sequences}"]
    if workdir is not None:
        overrides.append(f"tracking.uri=sqlite:///{workdir / 'bench.db'}")
    config = load_run_config(args.config, overrides)
    model_path = args.origin / config.model.name  # an absolute name stays itself
    if model_path.exists():
        config = config.model_copy(
            update={"model": config.model.model_copy(update={"name": str(model_path.resolve())})}
        )
    return config


def cpu_precision(precision: str) -> str:
    return "32-true" if precision == "auto" else precision  # forgetlab's auto on a CPU


def precision_plugin(precision: str):
    """Lightning's plugin for a precision: its `forward_context` and `convert_module` are what a run uses."""
    from lightning.pytorch.plugins.precision import HalfPrecision, MixedPrecision, Precision

    if precision == "bf16-mixed":
        return MixedPrecision("bf16-mixed", "cpu")
    if precision == "bf16-true":
        return HalfPrecision("bf16-true")
    return Precision()


# -- training --------------------------------------------------------------------------------------


def clock() -> tuple[float, float]:
    """(wall, CPU) seconds: CPU time (all the process's threads) moves less than wall time on a loaded machine."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    now = clock()
    return now[0] - start[0], now[1] - start[1]


def bare_update_times(config, blocks, precision: str) -> tuple[list[tuple[float, float]], object]:
    """(wall, CPU) seconds per update of a plain PyTorch + PEFT loop, and its first batch's input ids."""
    import lightning as L
    import torch

    from forgetlab.finetune.model import apply_lora, load_base
    from forgetlab.finetune.training import SeededBatchSampler, learning_rate_factor

    train = config.train
    base = load_base(config.model, progress=False).model
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = apply_lora(base, config.lora)
    if precision == "bf16-true":
        model.to(torch.bfloat16)
    model.train()
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=train.lr, weight_decay=train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, train))
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16-mixed" else nullcontext
    sampler = SeededBatchSampler(len(blocks), train.batch_size, train.steps, train.steps, config.seed)
    times, first_batch = [], None
    for step in range(train.steps):
        start = clock()
        rows = sampler.micro_batch(step)
        input_ids, labels = blocks.input_ids[rows], blocks.labels[rows]
        with autocast():
            loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        if train.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(parameters, train.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(since(start))
        if first_batch is None:
            first_batch = input_ids
    return times, first_batch


def update_timer():
    """A Lightning callback: when each batch starts (all of Lightning's per-update work lies between two
    starts), and the first batch's input ids."""
    import lightning as L

    class UpdateTimer(L.Callback):
        def __init__(self):
            self.starts: list[tuple[float, float]] = []
            self.first_batch = None

        def on_train_batch_start(self, trainer, module, batch, batch_index):
            self.starts.append(clock())
            if self.first_batch is None:
                self.first_batch = batch[0].clone()

    return UpdateTimer()


def forgetlab_update_times(config) -> tuple[list[tuple[float, float]], object, float]:
    """(wall, CPU) seconds per update of `execute_run` (start to start of consecutive batches), its first
    batch, its peak RSS."""
    from forgetlab.finetune.recipe import execute_run

    timer = update_timer()
    reset_peak_rss()
    execute_run(config, progress=False, extra_callbacks=[timer])
    peak = peak_rss_mb()
    gaps = [(later[0] - earlier[0], later[1] - earlier[1]) for earlier, later in zip(timer.starts, timer.starts[1:])]
    return gaps, timer.first_batch, peak


def train_part(args) -> None:
    from forgetlab.finetune.data import load_fine_tuning_data
    from forgetlab.finetune.model import load_base

    workdir = Path(tempfile.mkdtemp(prefix="forgetlab-real-bench-"))
    probe = load_config(args, workdir=workdir)
    base = load_base(probe.model, progress=False)
    train = probe.train
    tokens_needed = (
        train.steps * train.batch_size * train.grad_accum * train.context_length
    )  # as the run sizes max_examples: auto
    blocks = load_fine_tuning_data(probe.data, base.tokenizer, train.context_length, tokens_needed).train
    vocab = base.model.config.vocab_size
    del base
    origin = Path.cwd()
    os.chdir(workdir)  # the run's store and artifacts go to the scratch folder
    try:
        _train_rows(args, probe, blocks, vocab, workdir)
    finally:
        os.chdir(origin)
        shutil.rmtree(workdir, ignore_errors=True)


def _train_rows(args, probe, blocks, vocab: int, workdir: Path) -> None:
    import torch

    train = probe.train
    skip = min(args.skip, max(0, args.steps - 2))
    print(f"== training updates: {probe.model.name}, vocab {vocab}, LoRA r{probe.lora.rank}, batch "
          f"{train.batch_size} x {train.context_length}, threads {args.threads or torch.get_num_threads()}, "
          f"{args.steps} updates per measurement, the first {skip} left out; seconds per update, median")  # fmt: skip
    print(f"{'precision':<11} {'bare':>7} {'(before':>8} {'after)':>7} {'forgetlab':>10} {'forgetlab/bare':>15} "
          f"{'vs 32-true':>11} {'run peak RSS':>13} {'CPU s: bare':>12} {'forgetlab':>10} {'ratio':>6}")  # fmt: skip
    wall = {}
    for precision in args.precisions:
        config = load_config(args, precision, workdir)
        before, bare_first = bare_update_times(config, blocks, precision)
        gc.collect()
        forgetlab, run_first, peak = forgetlab_update_times(config)
        gc.collect()
        after, _ = bare_update_times(config, blocks, precision)
        gc.collect()
        if run_first is None or not torch.equal(run_first, bare_first):
            print(
                f"WARNING: {precision}: the run's first batch is not the bare loop's; the comparison is not like for like"
            )

        def median(times, which: int = 0) -> float:
            return statistics.median(sample[which] for sample in times[skip:])

        bare, step = statistics.median(t[0] for t in before[skip:] + after[skip:]), median(forgetlab)
        bare_cpu, step_cpu = statistics.median(t[1] for t in before[skip:] + after[skip:]), median(forgetlab, 1)
        wall[precision] = (bare, step)
        relative = f"{step / wall['32-true'][1]:.3f}" if "32-true" in wall else "-"
        print(f"{precision:<11} {bare:7.3f} {median(before):8.3f} {median(after):7.3f} {step:10.3f} {step / bare:15.3f} "
              f"{relative:>11} {peak:10.0f} MB {bare_cpu:12.3f} {step_cpu:10.3f} {step_cpu / bare_cpu:6.3f}", flush=True)  # fmt: skip
    configured = cpu_precision(probe.train.precision)
    if configured in wall:
        bare, step = wall[configured]
        verdict = "met" if step / bare <= TRAIN_TARGET else "NOT met"
        print(
            f"forgetlab / bare in the config's precision ({configured}): {step / bare:.3f} (target <= {TRAIN_TARGET}: {verdict})"
        )
    fastest = min(wall, key=lambda precision: wall[precision][1])
    print(f"fastest forgetlab update on this CPU: {fastest} ({wall[fastest][1]:.3f} s per update)")


# -- evaluation ------------------------------------------------------------------------------------


def evaluation_costs(args, big_vocab: int) -> dict:
    """In a fresh process: forward pass against forgetting evaluation, base cached then recomputed, on the
    config's model (`big_vocab` 0) or on a random-initialised model of its shape with `big_vocab` tokens."""
    import torch

    from forgetlab.finetune.data import PackedBlocks, load_forget_blocks
    from forgetlab.finetune.forgetting import ForgettingEvaluator
    from forgetlab.finetune.model import apply_lora, load_base
    from forgetlab.finetune.runtime import quiet_libraries

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args)
    forget, context = config.forget, config.train.context_length
    precision = cpu_precision(config.train.precision)
    base = load_base(config.model, progress=False)
    if big_vocab:
        from transformers import AutoModelForCausalLM

        shape = base.model.config
        shape.vocab_size = big_vocab
        del base
        gc.collect()
        torch.manual_seed(0)
        base_model = AutoModelForCausalLM.from_config(shape)
        ids = torch.randint(0, big_vocab, (forget.num_sequences, context), generator=torch.Generator().manual_seed(0))
        blocks = PackedBlocks(ids, ids.clone())
        label = f"random, {Path(config.model.name).stem}'s shape"
    else:
        base_model = base.model
        blocks, _ = load_forget_blocks(forget, base.tokenizer, context, base.forget_text_path)
        label = Path(config.model.name).stem
    plugin = precision_plugin(precision)
    model = plugin.convert_module(apply_lora(base_model, config.lora)).eval()
    forward_context, device, batch = plugin.forward_context, torch.device("cpu"), forget.batch_size
    vocab = model.config.vocab_size
    cache_mb = len(blocks) * (blocks.input_ids.shape[1] - 1) * vocab * 4 / 2**20  # the evaluator's own size rule
    gc.collect()
    model_rss = rss_mb()

    @torch.no_grad()
    def forward_only() -> None:
        for start in range(0, len(blocks), batch):
            with forward_context():
                model(input_ids=blocks.input_ids[start : start + batch]).logits

    def seconds(function) -> float:
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    result = {"label": label, "vocab": vocab, "tokens": blocks.input_ids.numel(), "sequences": len(blocks),
              "batch": batch, "precision": precision, "threads": torch.get_num_threads(), "cache_mb": cache_mb,
              "config_cache_mb": forget.base_cache_mb, "model_rss_mb": model_rss, "modes": {}}  # fmt: skip
    reset_peak_rss()
    forward_only()
    result["forward_peak_rss_mb"] = peak_rss_mb()
    for mode, limit_mb in (("cached", max(forget.base_cache_mb, math.ceil(cache_mb) + 1)), ("recomputed", 0)):
        reset_peak_rss()
        evaluator = ForgettingEvaluator(blocks, batch, limit_mb, vocab)
        assert evaluator.keep_base_in_memory == (mode == "cached")
        prepare = seconds(lambda: evaluator.prepare(model, device, forward_context))
        forward_only(), evaluator.evaluate(model, device, forward_context)  # warm-up
        pairs = [
            (seconds(forward_only), seconds(lambda: evaluator.evaluate(model, device, forward_context)))
            for _ in range(args.pairs)
        ]
        ratios = sorted(evaluation / forward for forward, evaluation in pairs)
        result["modes"][mode] = {
            "base_cache_mb": limit_mb, "prepare_s": prepare,
            "forward_s": statistics.median(forward for forward, _ in pairs),
            "evaluation_s": statistics.median(evaluation for _, evaluation in pairs),
            "ratio": statistics.median(ratios), "ratio_min": ratios[0], "ratio_max": ratios[-1],
            "peak_rss_mb": peak_rss_mb(),
        }  # fmt: skip
        evaluator = None  # free its cached base log-probs before the next mode (not `del`: the lambdas above name it)
    return result


def eval_part(args) -> None:
    models = [0] + ([args.big_vocab] if args.big_vocab else [])
    printed_header = False
    for big_vocab in models:
        # A fresh process per model: its peak RSS is that model's alone, and the big model's memory goes back after.
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            result = pool.submit(evaluation_costs, args, big_vocab).result()
        if not printed_header:
            print(f"== forgetting evaluation against one forward pass over the same tokens: {result['sequences']} sequences, "
                  f"{result['tokens']} tokens, batch {result['batch']}, {result['precision']}, threads {result['threads']}, "
                  f"median of {args.pairs} alternating (forward, evaluation) pairs")  # fmt: skip
            print(f"{'model':<44} {'vocab':>7} {'base':<11} {'forward s':>9} {'eval s':>8} {'eval/forward (range)':>23} "
                  f"{'target':>7} {'prepare s':>9} {'peak RSS (model alone)':>23}")  # fmt: skip
            printed_header = True
        target = EVAL_TARGET_BIG_VOCAB if big_vocab else EVAL_TARGET_CONFIG_VOCAB
        for mode, costs in result["modes"].items():
            ratio = f"{costs['ratio']:.3f} ({costs['ratio_min']:.2f}-{costs['ratio_max']:.2f})"
            goal = f"<={target}" if mode == "cached" else ""
            print(f"{result['label']:<44} {result['vocab']:>7} {mode:<11} {costs['forward_s']:9.3f} {costs['evaluation_s']:8.3f} "
                  f"{ratio:>23} {goal:>7} {costs['prepare_s']:9.2f} {costs['peak_rss_mb']:9.0f} MB ({result['model_rss_mb']:.0f} MB)")  # fmt: skip
        cached = result["modes"]["cached"]
        raised = cached["base_cache_mb"] != result["config_cache_mb"]
        note = (f"forget.base_cache_mb raised from {result['config_cache_mb']} to {cached['base_cache_mb']} for the cached row: "
                f"the config's value would recompute the base" if raised else f"fits the config's forget.base_cache_mb = {result['config_cache_mb']}")  # fmt: skip
        print(f"   base predictions: {result['cache_mb']:.0f} MB; {note}; recomputed row: forget.base_cache_mb = 0; "
              f"peak RSS of forward passes alone: {result['forward_peak_rss_mb']:.0f} MB", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--config", type=Path, default=Path("lightning_configs/smollm2.yaml"))
    parser.add_argument("--part", choices=("all", "train", "eval"), default="all")
    parser.add_argument("--steps", type=int, default=30, help="updates per training measurement")
    parser.add_argument("--skip", type=int, default=3, help="first updates of each measurement left out (warm-up)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--pairs", type=int, default=7, help="alternating (forward, evaluation) pairs per mode")
    parser.add_argument("--big-vocab", type=int, default=262144, help="vocabulary of the random model (0: none)")
    parser.add_argument(
        "--sequences",
        type=int,
        default=None,
        help="forgetting and held-out sequences instead of the config's (short checks)",
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    args.config, args.origin = args.config.resolve(), Path.cwd()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from forgetlab.finetune.runtime import quiet_libraries

    quiet_libraries()
    if args.part in ("all", "train"):
        train_part(args)
    if args.part in ("all", "eval"):
        eval_part(args)


if __name__ == "__main__":
    main()
