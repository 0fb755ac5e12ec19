"""minibert.attention: the written-out attention, masks, heads, multi-head self-attention, and lesson 03's checkers."""

import math

import pytest
import torch
import torch.nn.functional as F

from minibert.attention import (
    MultiHeadSelfAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    split_heads,
)
from minibert.checks import CheckFailed
from minibert.checks.attention import check_merge_heads, check_scaled_dot_product_attention, check_split_heads


def _qkv(B=2, h=3, T=5, d=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(B, h, T, d, generator=gen) for _ in range(3))


def test_attention_matches_the_formula_and_pytorch():
    q, k, v = _qkv()
    out, weights = scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), dim=-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(out, expected @ v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))


def test_padding_mask_hides_padding_keys():
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    mask = padding_mask(attention_mask)
    assert mask.shape == (2, 1, 1, 5)
    assert (mask[0] == 0).all() and (mask[1, ..., :3] == 0).all() and (mask[1, ..., 3:] < -1e30).all()
    q, k, v = _qkv()
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert weights[1, :, :, 3:].abs().max() == 0
    # the non-padded keys alone give the same result as the masked batch
    out_short, _ = scaled_dot_product_attention(q[1:, :, :, :], k[1:, :, :3], v[1:, :, :3])
    torch.testing.assert_close(out[1:], out_short)
    # a boolean mask (True = may look) means the same
    bool_out, _ = scaled_dot_product_attention(q, k, v, attention_mask.bool()[:, None, None, :])
    torch.testing.assert_close(bool_out, out)
    with pytest.raises(ValueError, match="batch, seq_len"):
        padding_mask(torch.ones(2, 1, 5))


def test_fully_padded_row_gives_no_nan():
    mask = padding_mask(torch.zeros(1, 4, dtype=torch.long))
    q, k, v = _qkv(B=1, T=4)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()


def test_causal_mask():
    mask = causal_mask(4)
    assert mask.shape == (4, 4)
    assert (mask.tril() == 0).all() and (mask.triu(1) < -1e30).sum() == 6
    q, k, v = _qkv(T=4)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert weights.triu(1).abs().max() == 0
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6, rtol=0)


def test_mask_that_does_not_fit_is_an_error():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, torch.zeros(2, 1, 1, 7))


def test_split_and_merge_heads():
    x = torch.randn(2, 5, 12)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    torch.testing.assert_close(heads[1, 2, 4], x[1, 4, 8:12])  # head 2 of token 4 holds features 8..11
    torch.testing.assert_close(merge_heads(heads), x)
    with pytest.raises(ValueError, match="not divisible"):
        split_heads(x, 5)


def test_multi_head_attention_shapes_and_errors():
    attn = MultiHeadSelfAttention(16, 4)
    out, weights = attn(torch.randn(2, 7, 16))
    assert out.shape == (2, 7, 16) and weights is None
    out, weights = attn(torch.randn(2, 7, 16), need_weights=True)
    assert weights.shape == (2, 4, 7, 7)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadSelfAttention(30, 4)
    with pytest.raises(ValueError, match="not one of"):
        attn.implementation = "flash"
    for implementation in ("sdpa", "eager"):  # a mask that does not fit is a clear error on both paths
        attn.implementation = implementation
        for bad in (torch.zeros(2, 1, 1, 9), torch.zeros(2, 7), torch.zeros(3, 1, 1, 7)):
            with pytest.raises(ValueError, match="does not broadcast"):
                attn(torch.randn(2, 7, 16), bad)


def test_eager_and_sdpa_agree_with_padding():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(48, 4).eval()
    x = torch.randn(3, 9, 48)
    attention_mask = torch.ones(3, 9, dtype=torch.long)
    attention_mask[1, 6:] = 0
    attention_mask[2, 2:] = 0
    mask = padding_mask(attention_mask)
    attn.implementation = "sdpa"
    fast, _ = attn(x, mask)
    attn.implementation = "eager"
    eager, weights = attn(x, mask)
    torch.testing.assert_close(fast, eager, atol=1e-6, rtol=0)
    assert weights[2, :, :, 2:].abs().max() == 0
    # asking for weights on the sdpa path uses the written-out one
    attn.implementation = "sdpa"
    out, weights2 = attn(x, mask, need_weights=True)
    torch.testing.assert_close(weights2, weights)


def test_checkers_pass_on_the_package():
    check_scaled_dot_product_attention(scaled_dot_product_attention)
    check_split_heads(split_heads)
    check_merge_heads(merge_heads)


def _unscaled(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    weights = (scores if mask is None else scores + mask).softmax(-1)
    return weights @ v, weights


def _ignores_mask(q, k, v, mask=None):
    return scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("fn, message", [
    (lambda q, k, v, mask=None: None, "returned None"),
    (lambda q, k, v, mask=None: scaled_dot_product_attention(q, k, v, mask)[0], "tuple"),
    (_unscaled, "sqrt"),
    (_ignores_mask, "padding keys"),
])
def test_attention_checker_fails_on_wrong_code(fn, message):
    with pytest.raises(CheckFailed, match=message):
        check_scaled_dot_product_attention(fn)


def test_head_checkers_fail_on_wrong_code():
    with pytest.raises(CheckFailed, match="straight to"):
        check_split_heads(lambda x, h: x.reshape(x.size(0), h, x.size(1), -1))
    with pytest.raises(CheckFailed, match="shape"):
        check_split_heads(lambda x, h: x.reshape(x.size(0), x.size(1), h, -1))
    with pytest.raises(CheckFailed, match="straight to"):
        check_merge_heads(lambda x: x.reshape(x.size(0), x.size(2), -1))
