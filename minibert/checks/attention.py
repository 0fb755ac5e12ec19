"""Checkers for the exercises of lesson 03 (attention): scaled dot-product attention, splitting and merging heads.

Each checker runs the learner's function on random inputs, compares with `minibert.attention`, and raises
`CheckFailed` at the first shape or value that differs, with a hint for the usual mistakes.
"""

from __future__ import annotations

import math

import torch

from minibert.attention import causal_mask, merge_heads, padding_mask, scaled_dot_product_attention, split_heads
from minibert.checks import CheckFailed, compare_tensors, passed, reports_stubs


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pair(result, name: str):
    if result is None:
        raise CheckFailed(f"{name}: your function returned None. Did you forget a `return`?")
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailed(f"{name}: return a tuple (output, weights); got {type(result).__name__}"
                          + (f" of length {len(result)}" if isinstance(result, tuple) else ""))
    return result


@reports_stubs
def check_scaled_dot_product_attention(fn) -> None:
    """Check `fn(q, k, v, mask=None) -> (output, weights)`.

    q: (..., T_q, d_k), k: (..., T_k, d_k), v: (..., T_k, d_v), typically (B, h, T, d).
    mask: None, or an additive float mask broadcastable to (..., T_q, T_k): 0 where a query may look, a very
    negative number where it may not (as `padding_mask` and `causal_mask` build them); it is passed positionally.
    weights = softmax(q k^T / sqrt(d_k) + mask) over the keys, (..., T_q, T_k); output = weights v, (..., T_q, d_v).
    """
    gen = _gen(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=gen) for _ in range(3))

    # 1. no mask
    out, weights = _pair(fn(q, k, v), "scaled_dot_product_attention(q, k, v)")
    ref_out, ref_weights = scaled_dot_product_attention(q, k, v)
    if isinstance(weights, torch.Tensor) and weights.shape == ref_weights.shape:
        if torch.allclose(weights, (q @ k.transpose(-2, -1)).softmax(-1), atol=1e-5):
            raise CheckFailed("weights: the scores are not scaled. Divide q k^T by sqrt(d_k), the size of the "
                              "last dimension of q, before the softmax.")
        if torch.allclose(weights.sum(-2), torch.ones_like(weights.sum(-2)), atol=1e-4) and not torch.allclose(
                weights.sum(-1), torch.ones_like(weights.sum(-1)), atol=1e-4):
            raise CheckFailed("weights: the softmax runs over the queries. Each query's weights over the keys must "
                              "sum to 1: softmax over the last dimension.")
    compare_tensors("weights (no mask)", weights, ref_weights)
    compare_tensors("output (no mask)", out, ref_out)

    # 2. more keys than queries, and values of another width: catches transposes and scaling by the wrong size
    k2, v2 = torch.randn(2, 3, 7, 8, generator=gen), torch.randn(2, 3, 7, 6, generator=gen)
    out, weights = _pair(fn(q, k2, v2), "scaled_dot_product_attention(q, k, v) with 7 keys and d_v = 6")
    ref_out, ref_weights = scaled_dot_product_attention(q, k2, v2)
    if isinstance(weights, torch.Tensor) and weights.shape == ref_weights.shape:
        wrong_scale = scaled_dot_product_attention(q * math.sqrt(8 / 6), k2, v2)[1]  # scaled by sqrt(d_v)
        if torch.allclose(weights, wrong_scale, atol=1e-5):
            raise CheckFailed("weights: scale by sqrt(d_k), the width of q and k, not by the width of v.")
    compare_tensors("weights (5 queries, 7 keys)", weights, ref_weights)
    compare_tensors("output (5 queries, 7 keys, d_v = 6)", out, ref_out)

    # 3. a padding mask: the last keys of the second sequence are padding
    attention_mask = torch.ones(2, 5, dtype=torch.long)
    attention_mask[1, 3:] = 0
    mask = padding_mask(attention_mask)  # (B, 1, 1, T)
    out, weights = _pair(fn(q, k, v, mask), "scaled_dot_product_attention(q, k, v, mask)")
    ref_out, ref_weights = scaled_dot_product_attention(q, k, v, mask)
    leaks = isinstance(weights, torch.Tensor) and weights.shape == ref_weights.shape
    if leaks and weights[1, :, :, 3:].abs().max() > 1e-6:
        raise CheckFailed("weights with a padding mask: padding keys still get weight. Add the mask to the scaled "
                          "scores before the softmax.")
    compare_tensors("weights (padding mask)", weights, ref_weights)
    compare_tensors("output (padding mask)", out, ref_out)

    # 4. a causal mask
    mask = causal_mask(5)  # (T, T)
    out, weights = _pair(fn(q, k, v, mask), "scaled_dot_product_attention(q, k, v, causal_mask(5))")
    ref_out, ref_weights = scaled_dot_product_attention(q, k, v, mask)
    compare_tensors("weights (causal mask)", weights, ref_weights)
    compare_tensors("output (causal mask)", out, ref_out)
    passed("scaled_dot_product_attention")


@reports_stubs
def check_split_heads(fn) -> None:
    """Check `fn(x, n_heads) -> (B, h, T, d)` for x of shape (B, T, C), with d = C / n_heads.

    Head i gets the features i*d ... (i+1)*d - 1 of every token: x[b, t, i*d:(i+1)*d] == result[b, i, t, :].
    """
    x = torch.randn(2, 5, 12, generator=_gen(1))
    for n_heads in (3, 4, 1):
        got = fn(x, n_heads)
        expected = split_heads(x, n_heads)
        B, T, C = x.shape
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and not torch.equal(got, expected):
            if torch.equal(got, x.reshape(B, n_heads, T, C // n_heads)):
                raise CheckFailed(f"split_heads(x, {n_heads}): you reshaped (B, T, C) straight to (B, h, T, d), which "
                                  "mixes tokens across heads. Cut C into (h, d) first, then swap the T and h axes.")
        compare_tensors(f"split_heads(x, n_heads={n_heads}) for x of shape {tuple(x.shape)}", got, expected, 0, 0)
    passed("split_heads")


@reports_stubs
def check_merge_heads(fn) -> None:
    """Check `fn(x) -> (B, T, C)` for x of shape (B, h, T, d), with C = h * d: the inverse of `split_heads`.

    result[b, t, i*d:(i+1)*d] == x[b, i, t, :], so that merge_heads(split_heads(x, h)) == x.
    """
    x = torch.randn(2, 3, 5, 4, generator=_gen(2))  # (B, h, T, d)
    got = fn(x)
    expected = merge_heads(x)
    if isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.equal(got, x.reshape(2, 5, 12)):
        raise CheckFailed("merge_heads: you reshaped (B, h, T, d) straight to (B, T, C), which mixes tokens across "
                          "heads. Swap the h and T axes back first, then join (h, d) into C.")
    compare_tensors(f"merge_heads(x) for x of shape {tuple(x.shape)}", got, expected, 0, 0)
    y = torch.randn(2, 5, 12, generator=_gen(3))
    compare_tensors("merge_heads(split_heads(y, 4)) == y", fn(split_heads(y, 4)), y, 0, 0)
    passed("merge_heads")
