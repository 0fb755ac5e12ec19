"""BERT's optimizer and learning-rate schedule, lesson 06: AdamW without decay on biases and LayerNorm, and a warm-up.

What it does:
- `build_optimizer(model, lr, weight_decay)`: AdamW with two parameter groups, weight decay on the weight matrices
  only (never on biases or LayerNorm), fused on CUDA.
- `linear_warmup_decay(optimizer, warmup_steps, total_steps)`: the learning rate climbs linearly from 0 to its peak,
  then falls linearly back to 0 (BERT's schedule), as a `torch.optim.lr_scheduler.LambdaLR`.

What it leaves out: LAMB (BERT's large-batch optimizer), layer-wise learning-rate decay, and cosine schedules.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.01, betas=(0.9, 0.999), eps: float = 1e-6,
                    fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW; weight decay for weight matrices and embeddings, none for biases and LayerNorm (as BERT did).

    `fused=None` fuses the update into one kernel when every parameter is on CUDA.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:  # the tied decoder weight is the word embeddings: once only
                continue
            seen.add(id(p))
            if isinstance(module, nn.LayerNorm) or name == "bias" or p.dim() < 2:
                no_decay.append(p)
            else:
                decay.append(p)
    if fused is None:
        fused = all(p.is_cuda for p in decay + no_decay)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)


def linear_warmup_decay(optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """lr x step / warmup_steps during warm-up, then down linearly to 0 at total_steps."""
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got warmup_steps="
                         f"{warmup_steps}, total_steps={total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
