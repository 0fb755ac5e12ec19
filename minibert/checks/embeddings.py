"""Checkers for the exercises of lesson 02 (embeddings): the sinusoidal position table and BERT's input embeddings.

Each checker runs the learner's function on inputs it makes, compares with `minibert.embeddings`, and raises
`CheckFailed` at the first shape or value that differs, with a hint for the usual mistakes.
"""

from __future__ import annotations

import math

import torch

from minibert.checks import CheckFailed, compare_tensors, passed, reports_stubs
from minibert.embeddings import BertEmbeddings, sinusoidal_position_encoding


@reports_stubs
def check_sinusoidal_position_encoding(fn) -> None:
    """Check `fn(max_len, dim) -> (max_len, dim)` for an even `dim`.

    PE[pos, 2i] = sin(pos / 10000^(2i/dim)) and PE[pos, 2i+1] = cos(pos / 10000^(2i/dim)): sines in the even
    columns, cosines in the odd ones, one frequency per pair of columns.
    """
    for max_len, dim in ((12, 8), (50, 16), (7, 2)):
        got = fn(max_len, dim)
        expected = sinusoidal_position_encoding(max_len, dim)
        what = f"sinusoidal_position_encoding({max_len}, {dim})"
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and not torch.allclose(
                got.float(), expected, atol=1e-5):
            _sinusoidal_hint(got.float(), max_len, dim)
        compare_tensors(what, got, expected, atol=1e-5)
    passed("sinusoidal_position_encoding")


def _sinusoidal_hint(got: torch.Tensor, max_len: int, dim: int) -> None:
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
    i = torch.arange(dim // 2, dtype=torch.float32)  # (dim/2,)
    right = position / 10000 ** (2 * i / dim)  # (max_len, dim/2)
    wrong_exponent = position / 10000 ** (i / dim)
    candidates = {
        "swapped": (torch.stack([right.cos(), right.sin()], -1).flatten(1),
                    "sines and cosines are swapped: the even columns (0, 2, 4...) hold the sines."),
        "halves": (torch.cat([right.sin(), right.cos()], -1),
                   "all sines come first, then all cosines. Interleave them: column 2i is a sine, 2i+1 a cosine of "
                   "the same angle."),
        "exponent": (torch.stack([wrong_exponent.sin(), wrong_exponent.cos()], -1).flatten(1),
                     "the frequencies are off: the exponent is 2i/dim, where 2i is the index of the even column "
                     "(0, 2, 4...), not i/dim."),
        "power": (torch.stack([(position * 10000 ** (2 * i / dim)).sin(), (position * 10000 ** (2 * i / dim)).cos()],
                              -1).flatten(1),
                  "the angle is pos / 10000^(2i/dim): divide by the power of 10000, do not multiply."),
    }
    for candidate, message in candidates.values():
        if torch.allclose(got, candidate, atol=1e-5):
            raise CheckFailed(f"sinusoidal_position_encoding({max_len}, {dim}): {message}")


def _embeddings() -> BertEmbeddings:
    gen = torch.Generator().manual_seed(0)
    emb = BertEmbeddings(vocab_size=40, hidden_size=16, max_position_embeddings=12, type_vocab_size=2, dropout=0.1)
    with torch.no_grad():  # LayerNorm away from (1, 0), so that a missing LayerNorm weight or bias shows
        for p in emb.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
    return emb.eval()


@reports_stubs
def check_embeddings(fn) -> None:
    """Check `fn(emb, input_ids, token_type_ids) -> (B, T, C)`.

    `emb` is a `minibert.embeddings.BertEmbeddings` (in eval mode) whose parts the function uses:
    `emb.word_embeddings`, `emb.position_embeddings`, `emb.token_type_embeddings` (three `nn.Embedding`),
    `emb.layer_norm` and `emb.dropout`. input_ids and token_type_ids are (B, T) integer tensors.
    The result is dropout(LayerNorm(word[input_ids] + position[0..T-1] + token_type[token_type_ids])).
    """
    emb = _embeddings()
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, 40, (2, 7), generator=gen)
    token_type_ids = torch.tensor([[0, 0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]])
    what = "your function(emb, input_ids, token_type_ids)"
    with torch.no_grad():
        got = fn(emb, input_ids, token_type_ids)
        expected = emb(input_ids, token_type_ids)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and not torch.allclose(got, expected,
                                                                                                  atol=1e-5):
            _embeddings_hint(emb, input_ids, token_type_ids, got)
        compare_tensors(what, got, expected)
        # another length: the positions must follow T
        short_ids, short_types = input_ids[:, :3], token_type_ids[:, :3]
        compare_tensors(f"{what} for a (2, 3) batch", fn(emb, short_ids, short_types), emb(short_ids, short_types))
    passed("embeddings")


def _embeddings_hint(emb: BertEmbeddings, input_ids, token_type_ids, got: torch.Tensor) -> None:
    T = input_ids.size(1)
    word = emb.word_embeddings(input_ids)  # (B, T, C)
    position = emb.position_embeddings.weight[:T]  # (T, C)
    segment = emb.token_type_embeddings(token_type_ids)  # (B, T, C)
    candidates = {
        "no norm": (word + position + segment, "the sum is not normalised: apply emb.layer_norm to it."),
        "no position": (emb.layer_norm(word + segment), "the position embeddings are missing from the sum."),
        "no segment": (emb.layer_norm(word + position), "the token type (segment) embeddings are missing."),
        "positions from 1": (emb.layer_norm(word + emb.position_embeddings.weight[1:T + 1] + segment),
                             "the positions start at 1; the first token is at position 0."),
    }
    for candidate, message in candidates.values():
        if candidate.shape == got.shape and torch.allclose(got, candidate, atol=1e-5):
            raise CheckFailed(f"the embeddings differ: {message}")
    if math.isclose(float(got.mean(-1).abs().max()), 0.0, abs_tol=1e-3) and math.isclose(
            float(got.std(-1, unbiased=False).mean()), 1.0, abs_tol=1e-2):
        raise CheckFailed("the embeddings differ: they look normalised without LayerNorm's own weight and bias; "
                          "use emb.layer_norm (an nn.LayerNorm), not a hand-written normalisation.")
