"""Checkers for the exercises of lesson 07 (sentence classification): the classification head on [CLS].

Each checker runs the learner's code on inputs it makes, compares with minibert's own, and raises `CheckFailed` at the
first difference, with a hint for the usual mistakes, without printing the expected answer.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from minibert.checks import CheckFailed, compare_tensors, passed, reports_stubs
from minibert.heads import BertForSequenceClassification
from minibert.model import BertConfig

# ------------------------------------------------------------------------------------------ classification head


def _config() -> BertConfig:
    return BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                      max_position_embeddings=32)


def _logits_and_loss(result, what: str):
    """Accept an output with .logits (and .loss), a tuple (logits, loss), or a bare logits tensor."""
    if result is None:
        raise CheckFailed(f"{what} returned None. Did you forget a `return`?")
    if hasattr(result, "logits"):
        return result.logits, getattr(result, "loss", None)
    if isinstance(result, (tuple, list)):
        return result[0], (result[1] if len(result) > 1 else None)
    return result, None


def _copy_weights(reference: nn.Module, model: nn.Module) -> None:
    ref, mine = reference.state_dict(), model.state_dict()
    if set(ref) == set(mine) and all(ref[k].shape == mine[k].shape for k in ref):
        model.load_state_dict(ref)
        return
    ref_params, my_params = list(reference.parameters()), list(model.parameters())
    if [p.shape for p in ref_params] == [p.shape for p in my_params]:
        with torch.no_grad():
            for m, r in zip(my_params, ref_params):
                m.copy_(r)
        return
    theirs = [(n, tuple(p.shape)) for n, p in model.named_parameters() if not n.startswith("bert.")]
    raise CheckFailed("your model's parameters do not match BertForSequenceClassification's, so the checker cannot "
                      "give it the same weights. Expected `self.bert = BertModel(config)`, then a dropout and "
                      f"`self.classifier = nn.Linear(config.hidden_size, num_labels)`; your non-encoder parameters "
                      f"are {theirs}.")


@reports_stubs
def check_classification_head(cls) -> None:
    """Check a sentence(-pair) classifier written as a class.

    `cls(config, num_labels)` is an `nn.Module` built from a `minibert.model.BertConfig`, with `self.bert` a
    `minibert.model.BertModel` and `self.classifier` an `nn.Linear(config.hidden_size, num_labels)` (and a dropout,
    which has no weights). `forward(input_ids, token_type_ids=None, attention_mask=None, labels=None)` returns the
    logits (B, num_labels) computed from the pooled [CLS] vector (`pooler_output`) through dropout and the classifier,
    and, given labels (B,), the mean cross-entropy loss: an object with `.logits` and `.loss`, or a tuple
    (logits, loss), or just the logits when no labels are given.
    """
    with torch.random.fork_rng(devices=[]):
        _check_classification_head(cls)
    passed("classification head")


def _check_classification_head(cls) -> None:
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise CheckFailed(f"pass your class (a subclass of torch.nn.Module), not {type(cls).__name__}")
    config, num_labels = _config(), 3
    torch.manual_seed(0)
    reference = BertForSequenceClassification(config, num_labels)
    with torch.no_grad():
        reference.classifier.weight.normal_(0, 0.5)
        reference.classifier.bias.normal_(0, 0.5)
    try:
        model = cls(config, num_labels)
    except TypeError as e:
        raise CheckFailed(f"{cls.__name__}(config, num_labels) failed: {e}") from None
    _copy_weights(reference, model)
    reference.eval()
    model.eval()
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, config.vocab_size, (4, 9), generator=gen)  # (B, T)
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 5:] = 1  # a pair: [CLS] A [SEP] B [SEP]
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 7:] = 0  # padding
    labels = torch.tensor([0, 2, 1, 2])
    what = f"{cls.__name__}(config, {num_labels})"
    with torch.no_grad():
        got, _ = _logits_and_loss(model(input_ids, token_type_ids, attention_mask), f"{what}(...)")
        expected = reference(input_ids, token_type_ids, attention_mask)
        if isinstance(got, torch.Tensor) and got.shape == expected.logits.shape:
            _hint(reference, input_ids, token_type_ids, attention_mask, got, expected.logits)
        compare_tensors(f"{what}: the logits", got, expected.logits)
        got_logits, loss = _logits_and_loss(model(input_ids, token_type_ids, attention_mask, labels=labels),
                                            f"{what}(..., labels=labels)")
        if loss is None:
            raise CheckFailed(f"{what}: given labels, forward should also return the loss (mean cross-entropy).")
        if isinstance(loss, torch.Tensor) and loss.numel() == 1 and torch.isclose(
                loss.float(), F.cross_entropy(expected.logits.softmax(-1), labels), atol=1e-5):
            raise CheckFailed(f"{what}: the loss is computed on probabilities. F.cross_entropy takes the logits and "
                              "does the softmax itself.")
        compare_tensors(f"{what}: the loss", loss.reshape(()) if isinstance(loss, torch.Tensor) else loss,
                        expected.loss if expected.loss is not None else
                        F.cross_entropy(expected.logits, labels))


def _hint(reference, input_ids, token_type_ids, attention_mask, got, expected) -> None:
    """Recognise the usual mistakes and say what is wrong, without giving the code."""
    bert, head = reference.bert, reference.classifier
    out = bert(input_ids, token_type_ids, attention_mask)
    wrong = {
        "no pooler": (head(out.last_hidden_state[:, 0]),
                      "you read the [CLS] hidden state directly; BERT's classifier reads `pooler_output` (tanh of a "
                      "dense layer on [CLS]), which the next-sentence task pre-trained."),
        "mean": (head(out.last_hidden_state.mean(1)),
                 "you average the hidden states; use the pooled [CLS] vector (`pooler_output`)."),
        "softmax": (expected.softmax(-1), "you return probabilities; return the logits (no softmax): the loss "
                                          "applies it, and argmax does not need it."),
        "no segments": (head(bert(input_ids, None, attention_mask).pooler_output),
                        "the segment ids (token_type_ids) are not passed on to the encoder."),
        "no mask": (head(bert(input_ids, token_type_ids, None).pooler_output),
                    "the attention_mask is not passed on to the encoder: padding is attended to."),
    }
    for candidate, message in wrong.values():
        if candidate.shape == got.shape and torch.allclose(got, candidate, atol=1e-5):
            raise CheckFailed(f"the logits differ: {message}")
