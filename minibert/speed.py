"""Speed, for the progress bar and the run summary: FLOPs per token and the GPU's peak, hence MFU.

What it does:
- `flops_per_token(model, seq_len)`: the training FLOPs of one token (6 x the parameters that multiply, plus the
  attention scores), the usual estimate (Kaplan et al. 2020; the PaLM paper's appendix B for attention).
- `peak_flops(device, precision)`: the GPU's dense peak from its data sheet, looked up by name.
  MFU (model FLOPs utilisation) = tokens/s x FLOPs per token / peak: how much of the GPU the training uses.

What it leaves out: hardware counters (this is an estimate from the model's shape), CPUs and Apple GPUs (no MFU).
"""

from __future__ import annotations

import torch
import torch.nn as nn

# dense peak FLOP/s (bf16/fp16 tensor cores, and fp32) of GPUs the course runs on, from their data sheets
PEAK_FLOPS = {"H200": (989e12, 67e12), "H100 PCIe": (756e12, 51e12), "H100": (989e12, 67e12),
              "A100": (312e12, 19.5e12), "L40S": (362e12, 91.6e12), "L40": (181e12, 90.5e12), "L4": (121e12, 30e12),
              "A10": (125e12, 31e12), "T4": (65e12, 8.1e12), "V100": (125e12, 15.7e12)}
# (dense bf16/fp16 tensor-core, fp32) FLOP/s; the first key found in the device's name wins, so "L40S" before "L4"


def peak_flops(device, precision_name: str) -> float | None:
    """The GPU's peak FLOP/s for this precision, or None when unknown (CPU, MPS, an unlisted GPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (half, single) in PEAK_FLOPS.items():
        if key in name:
            return single if precision_name == "fp32" else half
    return None


def flops_per_token(model: nn.Module, seq_len: int, mlm_fraction: float = 0.15) -> float:
    """Training FLOPs per token: 6 x (parameters that multiply) + attention scores 12 x layers x hidden x seq_len.

    Embedding tables are lookups, not multiplications; BERT's tied decoder (V x C) runs on the masked tokens only.
    """
    model = getattr(model, "module", model)
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    n = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    flops = 6 * n
    config = getattr(model, "config", None)
    if config is not None:
        flops += 12 * config.num_hidden_layers * config.hidden_size * seq_len
        if hasattr(model, "mlm_head"):
            flops += 6 * config.hidden_size * config.vocab_size * mlm_fraction
    return flops

