"""Mitigations of forgetting: what each adds to a fine-tuning step (config section `mitigation`).

- **replay** (share p): a fraction p of the training sequences is pretraining-domain text. Global
  micro-batch g (of B rows) has its last n_g = floor((g+1)·p·B) − floor(g·p·B) rows replaced by
  replay blocks, so the replay share is p over any stretch of training, within one row, even when
  p·B < 1 (p = 0.01, B = 8: one replay row every 12.5 micro-batches), and micro-batch g holds
  replay samples floor(g·p·B) .. floor((g+1)·p·B) − 1 of a second seeded stream. Both are pure
  functions of (seed, g), so resume stays exact; p = 0 touches nothing. Cost: no extra compute;
  each step sees (1 − p) as many fine-tuning sequences.
- **kl_to_base** (λ): loss += λ · KL(p_base ‖ p_ft), averaged over every next-token position of the
  training batch (replay rows and instruction prompts included). p_base is the same network with
  the adapters disabled (PEFT `disable_adapter()`), under no_grad. Cost: one extra forward pass
  (no backward) per micro-batch, and a second [batch, positions, vocab] logits tensor.
- **l2_to_base** (μ): loss += μ · Σ_modules ‖ΔW‖_F², ΔW = scaling · B·A, computed as
  scaling² · trace((BᵀB)(AAᵀ)) from r×r matrices, never forming ΔW. Cost: negligible.

The penalties' unscaled values (mean KL per token; Σ‖ΔW‖_F²) are logged as `penalty_kl` and
`penalty_l2`, averaged over the micro-batches since the previous evaluation like `train_loss`.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F


def replay_rows_before(global_micro_batch: int, share: float, batch_size: int) -> int:
    """Replay rows in global micro-batches 0 .. g−1: floor(g·p·B), exactly (p read as a decimal)."""
    return (global_micro_batch * Fraction(str(share)) * batch_size).__floor__()


def kl_to_base(model: torch.nn.Module, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over positions of KL(p_base ‖ p_ft); gradients flow into `logits` (the adapters) only."""
    with torch.no_grad(), model.disable_adapter():
        base_logits = model(input_ids=input_ids).logits
    base_log_probs = F.log_softmax(base_logits[:, :-1, :].float(), dim=-1)
    ft_log_probs = F.log_softmax(logits[:, :-1, :].float(), dim=-1)
    positions = ft_log_probs.shape[0] * ft_log_probs.shape[1]
    return F.kl_div(ft_log_probs, base_log_probs, reduction="sum", log_target=True) / positions


def adapter_update_norm_sq(model: torch.nn.Module) -> torch.Tensor:
    """Σ over LoRA modules and active adapters of ‖scaling · B·A‖_F², via r×r products."""
    from peft.tuners.lora import LoraLayer

    total = None
    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        for adapter in module.active_adapters:
            if adapter not in module.lora_A:
                continue
            A = module.lora_A[adapter].weight  # [r, in]
            B = module.lora_B[adapter].weight  # [out, r]
            # ‖BA‖_F² = trace(AᵀBᵀBA) = trace((BᵀB)(AAᵀ)); both r×r and symmetric.
            term = module.scaling[adapter] ** 2 * ((B.T @ B) * (A @ A.T)).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError("l2_to_base: the model has no LoRA adapters")
    return total
