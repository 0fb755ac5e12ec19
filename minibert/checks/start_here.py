"""Checker for the warm-up exercise of lesson 00: a numerically stable softmax."""

from __future__ import annotations

import torch

from minibert.checks import CheckFailed, compare_tensors, passed, reports_stubs


@reports_stubs
def check_softmax(softmax) -> None:
    """The learner's softmax(x, dim) must match torch.softmax, also on huge logits that overflow exp()."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=gen)
    compare_tensors("softmax(x, dim=-1)", softmax(x, dim=-1), torch.softmax(x, dim=-1))
    compare_tensors("softmax(x, dim=0)", softmax(x, dim=0), torch.softmax(x, dim=0))
    big = torch.tensor([[1000.0, 1001.0, 1002.0]])
    out = softmax(big, dim=-1)
    if isinstance(out, torch.Tensor) and not torch.isfinite(out).all():
        raise CheckFailed("softmax of [1000, 1001, 1002] gives nan or inf: exp(1000) overflows. "
                          "Subtract the maximum of each row before exp(); it does not change the result.")
    compare_tensors("softmax of large logits", out, torch.softmax(big, dim=-1))
    passed("softmax")
