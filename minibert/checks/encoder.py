"""Checker for the exercise of lesson 04: one BERT encoder layer (block), post-LayerNorm.

The checker builds `minibert.model.EncoderLayer` with random weights (LayerNorms included, so that their place
matters), gives the learner's block the same weights, runs both in eval mode on a padded batch, and raises
`CheckFailed` at the first difference, with hints for the usual mistakes (pre-LN instead of post-LN, a missing
residual, a mask that is not passed on).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from minibert.attention import padding_mask
from minibert.checks import CheckFailed, compare_tensors, passed, reports_stubs
from minibert.model import BertConfig, EncoderLayer


def _config() -> BertConfig:
    # intermediate_size is not 4 * hidden_size, to catch a hard-coded 4x
    return BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                      intermediate_size=48, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def _reference(config: BertConfig) -> EncoderLayer:
    torch.manual_seed(0)
    layer = EncoderLayer(config)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape) * 0.3 + (1.0 if p.dim() == 1 and "norm" in _name(layer, p) else 0.0))
    return layer.eval()


def _name(module: nn.Module, param) -> str:
    return next(n for n, p in module.named_parameters() if p is param)


def _first(result, what: str) -> torch.Tensor:
    if isinstance(result, tuple):  # (hidden states, attention weights) like minibert's EncoderLayer
        result = result[0] if result else None
    if result is None:
        raise CheckFailed(f"{what}: your code returned None. Did you forget a `return`?")
    return result


def _copy_weights(reference: nn.Module, block: nn.Module) -> None:
    """Give `block` the reference weights: by name when the names match, else by order when the shapes match."""
    ref, mine = reference.state_dict(), block.state_dict()
    if set(ref) == set(mine) and all(ref[k].shape == mine[k].shape for k in ref):
        block.load_state_dict(ref)
        return
    ref_params, my_params = list(reference.parameters()), list(block.parameters())
    if [p.shape for p in ref_params] == [p.shape for p in my_params]:
        with torch.no_grad():
            for mine_p, ref_p in zip(my_params, ref_params):
                mine_p.copy_(ref_p)
        return
    expected = ", ".join(f"{n} {tuple(p.shape)}" for n, p in reference.named_parameters())
    got = ", ".join(f"{n} {tuple(p.shape)}" for n, p in block.named_parameters())
    raise CheckFailed("your block's parameters do not match the layer's, so the checker cannot give it the same "
                      f"weights.\n  expected (names or at least this order of shapes): {expected}\n  yours: {got}")


@reports_stubs
def check_encoder_block(cls_or_fn) -> None:
    """Check an encoder block, written either as a class or as a function.

    A class: `cls(config)`, an `nn.Module` built from a `minibert.model.BertConfig`, whose `forward(x, mask=None)`
    takes x (B, T, C) and an additive mask (B, 1, 1, T) or None and returns (B, T, C) (or a tuple whose first
    item is that). Its parameters must be those of `minibert.model.EncoderLayer`, by name (`attention`
    a `MultiHeadSelfAttention`, `attention_norm`, `feed_forward` a `FeedForward`, `output_norm`) or at least in
    the same order and shapes.

    A function: `fn(layer, x, mask=None) -> (B, T, C)`, where `layer` is a `minibert.model.EncoderLayer` whose
    parts the function puts together: `layer.attention(x, mask)` (returns output and weights),
    `layer.attention_norm`, `layer.feed_forward`, `layer.output_norm`, `layer.dropout`.

    The block is post-LN, as in the original BERT: x = LayerNorm(x + attention(x)); x = LayerNorm(x + ffn(x)).
    """
    with torch.random.fork_rng(devices=[]):  # the check leaves the learner's random numbers as they were
        _check_encoder_block(cls_or_fn)
    passed("encoder block")


def _check_encoder_block(cls_or_fn) -> None:
    config = _config()
    reference = _reference(config)
    if isinstance(cls_or_fn, type):
        if not issubclass(cls_or_fn, nn.Module):
            raise CheckFailed(f"{cls_or_fn.__name__} should be a subclass of torch.nn.Module")
        block = cls_or_fn(config)
        _copy_weights(reference, block)
        block.eval()
        run, what = (lambda x, mask=None: block(x, mask)), f"{cls_or_fn.__name__}(config)(x, mask)"
    elif callable(cls_or_fn):
        run, what = (lambda x, mask=None: cls_or_fn(reference, x, mask)), "your function(layer, x, mask)"
    else:
        raise CheckFailed(f"pass your block's class or function, not a {type(cls_or_fn).__name__}")

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, config.hidden_size, generator=gen)  # (B, T, C)
    with torch.no_grad():
        got = _first(run(x), what)
        expected = reference(x)[0]
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and not torch.allclose(got, expected,
                                                                                                  atol=1e-5):
            _hint(reference, x, got)
        compare_tensors(f"{what} without a mask", got, expected)

        attention_mask = torch.ones(2, 6, dtype=torch.long)
        attention_mask[1, 4:] = 0
        mask = padding_mask(attention_mask)  # (B, 1, 1, T)
        got = _first(run(x, mask), what)
        expected = reference(x, mask)[0]
        if isinstance(got, torch.Tensor) and torch.allclose(got, reference(x)[0], atol=1e-5):
            raise CheckFailed(f"{what}: the output does not change with a padding mask. Pass the mask on to the "
                              "attention.")
        compare_tensors(f"{what} with a padding mask", got, expected)


def _hint(layer: EncoderLayer, x: torch.Tensor, got: torch.Tensor) -> None:
    """Recognise the usual wrong blocks and say what is wrong, without giving the code."""
    def attention(h):
        return layer.attention(h)[0]

    pre_ln = x + attention(layer.attention_norm(x))
    pre_ln = pre_ln + layer.feed_forward(layer.output_norm(pre_ln))
    no_residual = layer.output_norm(layer.feed_forward(layer.attention_norm(attention(x))))
    h = layer.attention_norm(x + attention(x))
    ffn_without_gelu = layer.feed_forward.fc_out(layer.feed_forward.fc_in(h))
    wrong = {
        "pre-LN": (pre_ln, "you normalise before each sub-layer (pre-LN, as GPT-2 does). BERT is post-LN: add the "
                           "residual first, then apply the LayerNorm to the sum."),
        "no residual": (no_residual, "the residual connections are missing: each LayerNorm takes x + sublayer(x)."),
        "no gelu": (layer.output_norm(h + ffn_without_gelu),
                    "the feed-forward network has no activation between its two linear layers (BERT uses GELU)."),
        "tanh gelu": (layer.output_norm(h + layer.feed_forward.fc_out(
            F.gelu(layer.feed_forward.fc_in(h), approximate="tanh"))),
            "the GELU is the tanh approximation; BERT uses the exact one, F.gelu(x)."),
    }
    for candidate, message in wrong.values():
        if torch.allclose(got, candidate, atol=1e-5):
            raise CheckFailed(f"the output differs: {message}")
