"""The GPU path at the paper's scale: a random-initialised Llama with the Llama 2 7B shape.

    python benchmarks/gpu_lora.py                  # 7B shape, bf16, LoRA r8 and r64, batch 32 x 512
    python benchmarks/gpu_lora.py --shape small    # a CPU-sized shape, to check the script itself

Measures, per rank: training tokens/s, model FLOP utilisation, peak GPU memory, and the cost of
one forgetting evaluation (base predictions cached, and recomputed) in training steps. Weights
are random (no checkpoint can be downloaded), which changes no timing. Results go to stdout as a
table and, with --json, to a file; record them with the device name in benchmarks/RESULTS.md.

FLOP convention (stated so the MFU can be recomputed): with LoRA the frozen base needs a forward
(2N per token) and a backward to the activations (2N) but no weight gradients, so a training
token costs 4N + the attention term 12·L·d·T (forward and backward, causal mask not discounted),
with N the non-embedding parameters. Peak bf16 dense throughput: H100/H200 SXM 989 TFLOP/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {
    # Llama 2 7B: 32 layers, d=4096, d_ff=11008, 32 heads, vocab 32000.
    "7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
    ),
    "small": dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=1024,
    ),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--batch", type=int, default=32, help="sequences per update (the paper: 32)")
    parser.add_argument(
        "--micro-batch", type=int, default=8, help="sequences per forward; accumulation fills the batch"
    )
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--steps", type=int, default=6, help="timed updates per rank (after 2 warm-up)")
    parser.add_argument("--forget-sequences", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from forgetlab.config import LoraConfig
    from forgetlab.finetune.data import PackedBlocks
    from forgetlab.finetune.forgetting import ForgettingEvaluator
    from forgetlab.finetune.model import apply_lora, count_trainable_parameters
    from forgetlab.finetune.training import causal_lm_loss

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    device_name = torch.cuda.get_device_name(0) if cuda else "cpu"
    shape = SHAPES[args.shape]
    results = []
    for rank in args.ranks:
        torch.manual_seed(0)
        config = LlamaConfig(max_position_embeddings=max(args.context, 4096), **shape)
        with torch.device(device):
            base = LlamaForCausalLM(config).to(dtype)
        model = apply_lora(base, LoraConfig(rank=rank, alpha=1.0))
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        non_embedding = sum(
            p.numel() for n, p in base.named_parameters() if "embed_tokens" not in n and "lm_head" not in n
        )
        generator = torch.Generator(device="cpu").manual_seed(1)
        data = torch.randint(0, shape["vocab_size"], (args.batch, args.context), generator=generator).to(device)
        accumulation = max(1, args.batch // args.micro_batch)
        if cuda:
            torch.cuda.reset_peak_memory_stats()

        def update() -> None:
            for index in range(accumulation):
                chunk = data[index * args.micro_batch : (index + 1) * args.micro_batch]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                    loss = causal_lm_loss(model(input_ids=chunk).logits, chunk) / accumulation
                loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def synchronise() -> None:
            if cuda:
                torch.cuda.synchronize()

        for _ in range(2):
            update()
        synchronise()
        step_times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            update()
            synchronise()
            step_times.append(time.perf_counter() - start)
        step = statistics.median(step_times)
        tokens_per_second = args.batch * args.context / step
        flops_per_token = 4 * non_embedding + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * args.context
        peak = next((value for key, value in PEAK_TFLOPS.items() if key in device_name), None)
        mfu = tokens_per_second * flops_per_token / (peak * 1e12) if peak else None

        forget = PackedBlocks(data[: args.forget_sequences].cpu(), data[: args.forget_sequences].cpu())
        timings = {}
        for label, cache_mb in (("cached", 1 << 20), ("recomputed", 0)):
            evaluator = ForgettingEvaluator(forget, args.micro_batch, cache_mb, shape["vocab_size"])

            # A factory: a fresh autocast per forward pass, the same for the base and the fine-tuned pass.
            def forward_context():
                return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)

            evaluator.prepare(model, device, forward_context)
            evaluator.evaluate(model, device, forward_context)
            synchronise()
            start = time.perf_counter()
            evaluator.evaluate(model, device, forward_context)
            synchronise()
            timings[label] = time.perf_counter() - start
        row = {
            "device": device_name,
            "shape": args.shape,
            "rank": rank,
            "P": count_trainable_parameters(model),
            "batch": f"{args.batch}x{args.context} ({args.micro_batch} x {accumulation} accumulation)",
            "step_s": round(step, 4),
            "tokens_per_s": round(tokens_per_second),
            "mfu": round(mfu, 4) if mfu is not None else None,
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "forget_eval_cached_steps": round(timings["cached"] / step, 3),
            "forget_eval_recomputed_steps": round(timings["recomputed"] / step, 3),
        }
        results.append(row)
        print(json.dumps(row))
        model = base = optimizer = (
            None  # free the GPU memory before the next rank (not `del`: the closures above name them)
        )
        if cuda:
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
