"""Training-step overhead of forgetlab against a bare PyTorch + PEFT loop, and evaluation costs.

    .venv/bin/python benchmarks/train_overhead.py [--model embedded] [--steps 100] [--rank 4]

Both sides train the same LoRA adapters on the same base, data, batch size and context, in
this process, one after the other. Printed: median seconds per update for each, their ratio
(forgetlab / bare), the cost of one forgetting evaluation (base cached, and base recomputed)
and of one L_ft evaluation in training steps, and the share of run time spent writing to MLflow.

The forgetting evaluation's cost is also printed against one plain forward pass over the same
tokens (`forgetting eval / forward`; the target is at most 1.2). `--eval-only` prints only that;
`--vocab N` measures it on a random-initialised Llama (`--hidden`, default 256, `--layers`, default
4) with an N-token vocabulary, as for 32k-150k vocabularies:

    .venv/bin/python benchmarks/train_overhead.py --eval-only --vocab 128000 --hidden 1024

The two are timed in alternation (`--pairs` of one forward and one evaluation) and the ratio is the
median over pairs, so a machine whose load drifts moves both sides of each ratio alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def bare_loop_step_times(base_model, blocks, config, steps: int) -> list[float]:
    import lightning as L
    import torch

    from forgetlab.finetune.model import apply_lora
    from forgetlab.finetune.training import SeededBatchSampler, causal_lm_loss

    L.seed_everything(config.seed, verbose=False)
    model = apply_lora(base_model, config.lora)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.train.lr)
    sampler = SeededBatchSampler(len(blocks), config.train.batch_size, steps, steps, config.seed)
    times = []
    for step in range(steps):
        start = time.perf_counter()
        indices = sampler.micro_batch(step)
        loss = causal_lm_loss(model(input_ids=blocks.input_ids[indices]).logits, blocks.labels[indices])
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    model.unload()  # give the base back without adapters for the next measurement
    return times


class StepTimer:
    """Lightning callback: wall time from one batch start to the next (all of Lightning's work included)."""

    def __new__(cls):
        import lightning as L

        class _Timer(L.Callback):
            def __init__(self):
                self.starts: list[float] = []

            def on_train_batch_start(self, trainer, module, batch, batch_index):
                self.starts.append(time.perf_counter())

        return _Timer()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--eval-only", action="store_true", help="only the forgetting evaluation against a forward pass"
    )
    parser.add_argument("--vocab", type=int, default=None, help="with --eval-only: a random Llama with this vocabulary")
    parser.add_argument("--hidden", type=int, default=256, help="with --vocab: its hidden size")
    parser.add_argument("--layers", type=int, default=4, help="with --vocab: its number of layers")
    parser.add_argument(
        "--pairs", type=int, default=7, help="with --eval-only: alternating (forward, evaluation) pairs"
    )
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from forgetlab.config import load_run_config
    from forgetlab.finetune.data import load_fine_tuning_data, load_forget_blocks
    from forgetlab.finetune.forgetting import ForgettingEvaluator, held_out_loss
    from forgetlab.finetune.model import apply_lora, load_base
    from forgetlab.finetune.recipe import execute_run

    if args.eval_only:
        forgetting_cost_against_forward(args)
        return
    workdir = Path(tempfile.mkdtemp(prefix="forgetlab-bench-"))
    os.chdir(workdir)
    eval_every = 10
    config = load_run_config(
        None,
        [
            f"model.name={args.model}",
            f"lora.rank={args.rank}",
            f"train.steps={args.steps}",
            f"train.eval_every={eval_every}",
            "train.warmup_steps=0",
            "train.checkpoint_every=0",
        ],
    )
    base = load_base(config.model)
    data = load_fine_tuning_data(config.data, base.tokenizer, config.train.context_length)

    # The bare loop runs before and after forgetlab so that neither side gets the warm (or the
    # cold) machine alone: the baseline is the median over both bare passes.
    bare_before = bare_loop_step_times(load_base(config.model).model, data.train, config, args.steps)[5:]

    # forgetlab: the real entry point, timing every update from inside Lightning.
    timer = StepTimer()
    started = time.perf_counter()
    execute_run(config, progress=False, extra_callbacks=[timer])
    forgetlab_total = time.perf_counter() - started
    gaps = [b - a for a, b in zip(timer.starts, timer.starts[1:])]
    # Updates whose interval contains an evaluation are excluded here; they are timed separately below.
    train_only = [gap for index, gap in enumerate(gaps, start=1) if index % eval_every != 0][5:]

    bare_after = bare_loop_step_times(load_base(config.model).model, data.train, config, args.steps)[5:]
    forgetlab_step, bare_step = statistics.median(train_only), statistics.median(bare_before + bare_after)

    # Evaluation costs on the same model (adapters just created, like step 0).
    model = apply_lora(load_base(config.model).model, config.lora)
    forget_blocks, _ = load_forget_blocks(
        config.forget, base.tokenizer, config.train.context_length, base.forget_text_path
    )
    device = torch.device("cpu")
    cached = ForgettingEvaluator(forget_blocks, config.forget.batch_size, 1024, model.config.vocab_size)
    cached.prepare(model, device)
    recomputed = ForgettingEvaluator(forget_blocks, config.forget.batch_size, 0, model.config.vocab_size)

    def timed(function, repeats: int = 3) -> float:
        function()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    forget_cached = timed(lambda: cached.evaluate(model, device))
    forget_recomputed = timed(lambda: recomputed.evaluate(model, device))
    validation = type(data.validation)(data.validation.input_ids[:32], data.validation.labels[:32])
    ft_eval = timed(lambda: held_out_loss(model, validation, config.forget.batch_size, device))

    # Tracking: one log_batch of one evaluation's metrics into a SQLite store.
    from forgetlab.tracking import RunTracker

    tracker = RunTracker(f"sqlite:///{workdir / 'bench.db'}", "bench")
    tracker.start("bench", {})
    flushes = []
    for step in range(10):
        tracker.log_metrics(
            {
                k: 1.0
                for k in (
                    "ft_loss",
                    "train_loss",
                    "forget_hard",
                    "forget_soft",
                    "forget_kl",
                    "forget_data",
                    "forget_agree",
                    "lr",
                )
            },
            step,
        )
        start = time.perf_counter()
        tracker.flush()
        flushes.append(time.perf_counter() - start)
    flush = statistics.median(flushes)

    print(
        f"model={args.model} rank={args.rank} batch={config.train.batch_size}x{config.train.context_length} threads={torch.get_num_threads()}"
    )
    print(
        f"bare PyTorch+PEFT step      {bare_step * 1000:8.1f} ms   (before {statistics.median(bare_before) * 1000:.1f}, after {statistics.median(bare_after) * 1000:.1f})"
    )
    print(
        f"forgetlab (Lightning) step  {forgetlab_step * 1000:8.1f} ms   overhead ratio {forgetlab_step / bare_step:.3f}"
    )
    print(
        f"forgetting eval, base cached     {forget_cached * 1000:8.1f} ms = {forget_cached / bare_step:.2f} training steps"
    )
    print(
        f"forgetting eval, base recomputed {forget_recomputed * 1000:8.1f} ms = {forget_recomputed / bare_step:.2f} training steps"
    )
    print(
        f"L_ft eval ({len(validation)} sequences)      {ft_eval * 1000:8.1f} ms = {ft_eval / bare_step:.2f} training steps"
    )
    print(
        f"MLflow flush per evaluation {flush * 1000:8.1f} ms = {100 * flush / (eval_every * forgetlab_step):.2f}% of the {eval_every} steps between evaluations"
    )
    print(f"whole forgetlab run of {args.steps} steps: {forgetlab_total:.1f} s")


def forgetting_cost_against_forward(args) -> None:
    """All five forgetting metrics (base cached) against one forward pass over the same tokens."""
    import torch

    from forgetlab.config import LoraConfig, load_run_config
    from forgetlab.finetune.data import PackedBlocks, load_forget_blocks
    from forgetlab.finetune.forgetting import ForgettingEvaluator
    from forgetlab.finetune.model import apply_lora, load_base

    config = load_run_config(None, [f"model.name={args.model}"])
    if args.vocab:
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        base_model = LlamaForCausalLM(LlamaConfig(
            vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=(args.hidden * 8 // 3 + 63) // 64 * 64,
            num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
            max_position_embeddings=config.train.context_length,
        ))  # fmt: skip
        ids = torch.randint(0, args.vocab, (config.forget.num_sequences, config.train.context_length))
        blocks = PackedBlocks(ids, ids.clone())
    else:
        base = load_base(config.model)
        base_model = base.model
        blocks, _ = load_forget_blocks(
            config.forget, base.tokenizer, config.train.context_length, base.forget_text_path
        )
    model = apply_lora(base_model, LoraConfig(rank=args.rank)).eval()
    device, batch = torch.device("cpu"), config.forget.batch_size
    vocab = model.config.vocab_size
    evaluator = ForgettingEvaluator(blocks, batch, 1 << 20, vocab)
    evaluator.prepare(model, device)

    @torch.no_grad()
    def forward_only() -> None:
        for start in range(0, len(blocks), batch):
            model(input_ids=blocks.input_ids[start : start + batch]).logits

    def seconds(function) -> float:
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    forward_only(), evaluator.evaluate(model, device)  # warm-up
    pairs = [(seconds(forward_only), seconds(lambda: evaluator.evaluate(model, device))) for _ in range(args.pairs)]
    forward = statistics.median(f for f, _ in pairs)
    forgetting = statistics.median(e for _, e in pairs)
    ratios = sorted(e / f for f, e in pairs)
    shape = f"random Llama hidden {args.hidden}, {args.layers} layers" if args.vocab else args.model
    print(f"model={shape} vocab={vocab} tokens={blocks.input_ids.numel()} threads={torch.get_num_threads()}")
    print(f"one forward pass            {forward * 1000:8.1f} ms")
    print(
        f"forgetting eval, base cached {forgetting * 1000:8.1f} ms   forgetting eval / forward = "
        f"{statistics.median(ratios):.3f} (median of {len(pairs)} pairs; range {ratios[0]:.3f}-{ratios[-1]:.3f})"
    )


if __name__ == "__main__":
    main()
