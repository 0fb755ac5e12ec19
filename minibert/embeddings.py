"""Embeddings, lesson 02: how BERT turns token ids into the vectors its encoder reads.

What it does:
- `BertEmbeddings`: for each position t of each sequence, the sum of three learned vectors,
  word_embeddings[id] + position_embeddings[t] + token_type_embeddings[segment], then LayerNorm (eps 1e-12 in BERT)
  and dropout. Positions are learned, up to `max_position_embeddings` (512 in BERT); segments say whether a token
  belongs to sentence A (0) or sentence B (1).
- `sinusoidal_position_encoding(max_len, dim)`: the fixed sin/cos positions of "Attention is all you need", which
  the lesson compares with BERT's learned ones.
- Clear errors for the usual mistakes: sequences longer than the position table, ids outside the vocabulary,
  token types outside `type_vocab_size`.

What it leaves out: relative and rotary positions, factorised embeddings (ALBERT), and `inputs_embeds` (feeding
vectors instead of ids).

Shapes: B batch, T sequence length, C hidden size, V vocabulary size.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def sinusoidal_position_encoding(max_len: int, dim: int) -> torch.Tensor:
    """(max_len, dim) fixed encodings: PE[pos, 2i] = sin(pos / 10000^(2i/dim)), PE[pos, 2i+1] = cos(same angle).

    Each pair of dimensions turns at its own frequency, from one turn every 2*pi positions down to one every
    10000*2*pi, so nearby positions get similar vectors and every position a different one.
    """
    if max_len < 1 or dim < 1:
        raise ValueError(f"max_len and dim must be positive, got max_len={max_len}, dim={dim}")
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (ceil(dim/2),)
    angle = position * inv_freq  # (max_len, ceil(dim/2))
    pe = torch.zeros(max_len, dim)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : dim // 2])  # an odd dim has one sine more than cosines
    return pe


class BertEmbeddings(nn.Module):
    """word + learned position + token type embeddings, summed, then LayerNorm and dropout: (B, T) ids -> (B, T, C)."""

    def __init__(self, vocab_size: int, hidden_size: int, max_position_embeddings: int = 512,
                 type_vocab_size: int = 2, layer_norm_eps: float = 1e-12, dropout: float = 0.1,
                 pad_token_id: int | None = 0):
        super().__init__()
        # padding_idx: the [PAD] row gets no gradient, as in BERT (its vector never changes)
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)  # (V, C)
        self.position_embeddings = nn.Embedding(max_position_embeddings, hidden_size)  # (max_position_embeddings, C)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)  # (type_vocab_size, C)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T), token_type_ids (B, T) or None for all zeros (sentence A) -> (B, T, C)."""
        self.check_inputs(input_ids, token_type_ids)
        T = input_ids.size(1)
        positions = torch.arange(T, device=input_ids.device)  # (T,)
        x = self.word_embeddings(input_ids)  # (B, T, C)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]  # (C,): every token is in sentence A
        else:
            x = x + self.token_type_embeddings(token_type_ids)  # (B, T, C)
        x = x + self.position_embeddings(positions)  # (T, C) broadcasts over the batch
        return self.dropout(self.layer_norm(x))  # (B, T, C)

    def check_inputs(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> None:
        """Raise a clear error for input the tables cannot embed (instead of an index error deep inside torch)."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids must be a tensor of shape (batch, seq_len), got {shape}; "
                             f"for a single sequence use input_ids[None]")
        if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
            raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
        T, max_T = input_ids.size(1), self.position_embeddings.num_embeddings
        if T == 0:
            raise ValueError(f"input_ids has no tokens (shape {tuple(input_ids.shape)}): every sequence needs at least "
                             f"[CLS] and [SEP]; encode text with the tokenizer, which adds them")
        if T > max_T:
            raise ValueError(f"sequence length {T} is longer than max_position_embeddings={max_T}: "
                             f"truncate the input to at most {max_T} tokens")
        _check_range("input_ids", input_ids, self.word_embeddings.num_embeddings, "vocab_size")
        if token_type_ids is not None:
            if tuple(token_type_ids.shape) != tuple(input_ids.shape):
                raise ValueError(f"token_type_ids has shape {tuple(token_type_ids.shape)} but input_ids has "
                                 f"{tuple(input_ids.shape)}; they must match")
            _check_range("token_type_ids", token_type_ids, self.token_type_embeddings.num_embeddings,
                         "type_vocab_size")


def _check_range(name: str, ids: torch.Tensor, size: int, size_name: str) -> None:
    if ids.numel() == 0:
        return
    lo, hi = (int(m) for m in torch.aminmax(ids))
    if lo < 0 or hi >= size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} holds {bad}, outside 0..{size - 1} ({size_name}={size})")
