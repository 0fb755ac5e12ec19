"""Checkers for the exercise notebooks: one module per lesson, common helpers here.

A checker runs the learner's function on inputs it makes, compares with the package's own implementation, and
either prints a short "looks right" line or raises `CheckFailed` saying what differs first (a shape, the first
mismatching value or token) without printing the expected answer in full.

What it leaves out: grading and scores (teachers can use nbgrader on the same notebooks for that).
"""

from __future__ import annotations

import torch


class CheckFailed(AssertionError):
    """The learner's code gives a different result; the message says where it first differs."""


def passed(what: str) -> None:
    print(f"✓ {what} looks right.")


def compare_tensors(name: str, got, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Raise CheckFailed naming the first difference: type, shape, dtype, or first value off by more than atol."""
    if got is None:
        raise CheckFailed(f"{name}: your function returned None. Did you forget a `return`?")
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{name}: expected a torch.Tensor, got {type(got).__name__}.")
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckFailed(f"{name}: shape is {tuple(got.shape)}, expected {tuple(expected.shape)}.")
    if got.dtype.is_floating_point != expected.dtype.is_floating_point:
        raise CheckFailed(f"{name}: dtype is {got.dtype}, expected a {expected.dtype}-like tensor.")
    got_, exp_ = got.detach().to(torch.float64), expected.detach().to(torch.float64)
    bad = ~torch.isclose(got_, exp_, atol=atol, rtol=rtol, equal_nan=False)
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise CheckFailed(
            f"{name}: {int(bad.sum())} of {bad.numel()} values differ; the first is at index {index}: "
            f"yours is {got_[index].item():.6g}, off by {abs(got_[index] - exp_[index]).item():.3g}.")


def compare_sequences(name: str, got, expected) -> None:
    """Raise CheckFailed at the first differing item of two sequences (tokens, ids...)."""
    if got is None:
        raise CheckFailed(f"{name}: your function returned None. Did you forget a `return`?")
    got = list(got)
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            raise CheckFailed(f"{name}: item {i} differs: yours is {g!r}; the items before it match.")
    if len(got) != len(expected):
        raise CheckFailed(f"{name}: yours has {len(got)} items, expected {len(expected)}; "
                          f"the first {min(len(got), len(expected))} match.")
