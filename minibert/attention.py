"""Attention, lesson 03: scaled dot-product attention, its masks, and multi-head self-attention.

What it does:
- `scaled_dot_product_attention(q, k, v, mask)` written out: softmax(q k^T / sqrt(d_k) + mask) v. It returns the
  attention weights too, so a lesson can look at them.
- `padding_mask(attention_mask)` and `causal_mask(T)` build *additive* masks: 0 where a query may look, a very
  large negative number where it may not. Adding them to the scores before the softmax gives those keys weight 0.
  BERT only uses the padding mask; the causal mask (each token sees itself and the past) is what GPT uses.
- `split_heads(x, n_heads)` and `merge_heads(x)` reshape between (B, T, C) and h heads of size d = C / h.
- `MultiHeadSelfAttention`: one fused projection to q, k, v, attention in every head at once, an output projection.
  Its default path calls PyTorch's fused `torch.nn.functional.scaled_dot_product_attention` ("sdpa"); the
  written-out path ("eager") gives the same numbers and also the weights.

What it leaves out: cross-attention and key/value caches (BERT is an encoder; nothing is generated token by token),
relative position schemes, and attention variants such as sparse, linear or grouped-query attention.

Shapes: B batch, T sequence length, C hidden size, h heads, d = C / h head size.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


def padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, T) with 1 for real tokens and 0 for padding -> additive mask (B, 1, 1, T) for the attention scores.

    The mask broadcasts over heads (dim 1) and over queries (dim 2): no query may look at a padding key.
    We use the most negative finite number of `dtype` instead of -inf, so that a row with nothing to look at
    gives uniform weights rather than NaN.
    """
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must have shape (batch, seq_len), got {tuple(attention_mask.shape)}")
    keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)
    mask = torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device)
    return mask.masked_fill(~keep, torch.finfo(dtype).min)  # (B, 1, 1, T)


def causal_mask(T: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Additive (T, T) mask: query i may look at keys 0..i (0 on and below the diagonal, very negative above)."""
    allowed = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T)
    return torch.zeros(T, T, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


def _check_mask_shape(mask: torch.Tensor, scores_shape: tuple[int, ...]) -> None:
    """A clear error for a mask that does not broadcast to the attention scores (B, h, T, T)."""
    try:
        fits = torch.broadcast_shapes(mask.shape, scores_shape) == tuple(scores_shape)
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the attention scores "
                         f"{tuple(scores_shape)} (batch, heads, queries, keys); padding_mask() gives (B, 1, 1, T)")


def _additive(mask: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Check that `mask` fits the scores (B, h, T, T); turn a boolean mask (True = may look) into an additive one."""
    _check_mask_shape(mask, scores.shape)
    if mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=scores.dtype, device=mask.device).masked_fill(
            ~mask, torch.finfo(scores.dtype).min)
    return mask


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                                 dropout_p: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k) + mask) v, written out. Returns (output, weights).

    q, k, v: (..., T, d), typically (B, h, T, d). mask: additive, broadcastable to (..., T, T) (a boolean mask with
    True = may look also works). Output (..., T, d); weights (..., T, T), each row sums to 1.
    """
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, T, T): how much each query matches each key
    if mask is not None:
        scores = scores + _additive(mask, scores)  # masked keys get a huge negative score
    weights = scores.softmax(dim=-1)  # (B, h, T, T), rows sum to 1 over the keys
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (B, h, T, d), (B, h, T, T)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, C) -> (B, h, T, d): cut the last dimension into h heads of size d = C / h, heads before time."""
    B, T, C = x.shape
    if C % n_heads != 0:
        raise ValueError(f"hidden size {C} is not divisible by the number of heads {n_heads}")
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)  # (B, h, T, d)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, h, T, d) -> (B, T, C): put the heads side by side again, C = h * d."""
    B, h, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d)  # (B, T, C)


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with `num_heads` heads over a hidden size of `hidden_size`, output projection included.

    `qkv` is one Linear(C, 3C) whose output is [q | k | v]: one matrix multiply instead of three. (Hugging Face
    checkpoints store `query`, `key` and `value` separately; `minibert.model` concatenates them when it loads.)
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0, implementation: str = "sdpa"):
        super().__init__()
        if hidden_size % num_heads != 0:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads}): "
                             f"each head gets hidden_size / num_heads dimensions")
        self.num_heads = num_heads
        self.dropout = dropout  # on the attention weights, during training only
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.implementation = implementation

    @property
    def implementation(self) -> str:
        return self._implementation

    @implementation.setter
    def implementation(self, name: str) -> None:
        if name not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(f"attention implementation {name!r} is not one of {ATTENTION_IMPLEMENTATIONS}")
        self._implementation = name

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C), additive mask broadcastable to (B, h, T, T) -> output (B, T, C), weights (B, h, T, T) or None.

        The weights come from the written-out path, which is used when asked for them or when `implementation`
        is "eager".
        """
        C = x.size(-1)
        q, k, v = self.qkv(x).split(C, dim=-1)  # 3 x (B, T, C)
        q, k, v = (split_heads(t, self.num_heads) for t in (q, k, v))  # 3 x (B, h, T, d)
        p = self.dropout if self.training else 0.0
        if need_weights or self.implementation == "eager":
            y, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=p)  # (B, h, T, d), (B, h, T, T)
        else:
            if mask is not None:
                _check_mask_shape(mask, (*q.shape[:-1], k.size(-2)))  # (B, h, T, T), as the written-out path does
            if mask is not None and mask.dtype not in (q.dtype, torch.bool):  # e.g. under autocast
                mask = mask.clamp(min=torch.finfo(q.dtype).min).to(q.dtype)
            y, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None  # (B, h, T, d)
        return self.out(merge_heads(y)), weights  # (B, T, C)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, dropout={self.dropout}, implementation={self.implementation!r}"
