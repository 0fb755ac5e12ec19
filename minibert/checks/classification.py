"""Checkers for the exercises of lesson 07 (sentence classification): the classification head on [CLS], and a linear
probe on the course BERT's frozen [CLS] vectors (`check_probe`).

Each checker runs the learner's code on inputs it makes, compares with minibert's own, and raises `CheckFailed` at the
first difference, with a hint for the usual mistakes, without printing the expected answer.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from minibert.checks import CheckFailed, compare_tensors, passed, reports_stubs, time_limit
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
                      "you read the [CLS] hidden state directly. That is the paper's C (section 4.1), a sound "
                      "choice; this head follows Google's code and transformers, which first pass it through the "
                      "pooler (`pooler_output`: tanh of a dense layer, pre-trained by the next-sentence task)."),
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


# ------------------------------------------------------------------------------------------ a probe on frozen features

PROBE_SIZES = (2000, 500)  # SST-2 training and held-out sentences: features in seconds on a laptop CPU
PROBE_MARGIN = 0.03  # the probe must beat the majority class by this much (about 1.3 standard errors on 500 sentences)


def _probe_data(tokenizer, max_length: int = 64):
    """(train, held_out): the first SST-2 training and validation sentences, encoded for the course BERT."""
    from minibert.data import load_dataset
    from minibert.finetuning_data import encode_classification

    n_train, n_held = PROBE_SIZES
    train = encode_classification(load_dataset("sst2", "train")[:n_train], tokenizer, max_length)
    held_out = encode_classification(load_dataset("sst2", "validation")[:n_held], tokenizer, max_length)
    return train, held_out


def _features(encoder, dataset, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """The frozen encoder's [CLS] vectors (last hidden state at position 0) and pooled vectors, on the CPU."""
    cls, pooled = [], []
    with torch.no_grad():
        for i in range(0, len(dataset), batch_size):
            batch = dataset.collate([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))])
            out = encoder(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
            cls.append(out.last_hidden_state[:, 0])
            pooled.append(out.pooler_output)
    return {"[CLS] vectors (last_hidden_state[:, 0])": torch.cat(cls),
            "pooled vectors (pooler_output)": torch.cat(pooled)}


@reports_stubs
def check_probe(train_probe) -> None:
    """Check `train_probe(encoder, head, train, held_out) -> (accuracy, majority)`, a linear probe on frozen features.

    The checker gives it the course BERT's encoder (in training mode, as a model is after loading), a fresh
    nn.Linear(128, 2), and 2,000 / 500 SST-2 sentences. Afterwards the encoder must be unchanged, without a gradient and
    in eval mode; the head must have changed; `majority` must be the share of held-out sentences whose label is the
    most frequent training label; `accuracy` must be what the returned head scores on the held-out [CLS] vectors (or
    pooled vectors), and above `majority` by PROBE_MARGIN.
    """
    from minibert.course_bert import course_folder
    from minibert.model import BertModel
    from minibert.tokenizer import WordPieceTokenizer

    folder = course_folder()
    tokenizer = WordPieceTokenizer.from_vocab_file(folder / "vocab.txt")
    train, held_out = _probe_data(tokenizer)
    encoder = BertModel.from_pretrained(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        head = nn.Linear(encoder.config.hidden_size, 2)
    features = _features(encoder.eval(), held_out)
    train_features = _features(encoder, train)
    encoder.train()  # as a model is after loading: putting it in eval mode is part of freezing it
    weights = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    head_before = [p.detach().clone() for p in head.parameters()]

    with time_limit(300, "train_probe ran for more than 5 minutes: compute the features once, then train the head on "
                         "them (a few hundred full-batch steps take a second)."):
        result = train_probe(encoder, head, train, held_out)

    changed = [name for name, p in encoder.named_parameters() if not torch.equal(p.detach().cpu(), weights[name])]
    if changed:
        raise CheckFailed(f"the encoder's weights changed ({len(changed)} tensors, {changed[0]} first): a probe keeps "
                          f"the encoder frozen, and trains the head alone. Give the optimizer the head's parameters "
                          f"only, and keep the encoder out of the backward pass.")
    with_grad = [name for name, p in encoder.named_parameters() if p.grad is not None]
    if with_grad:
        raise CheckFailed(f"{len(with_grad)} of the encoder's weights have a gradient ({with_grad[0]} first): the "
                          f"backward pass went through the frozen encoder. Compute the features without gradients "
                          f"(torch.no_grad(), or requires_grad_(False) on the encoder): they are fixed inputs to the "
                          f"head, and computing them once is much faster than at every step.")
    if encoder.training:
        raise CheckFailed("the encoder is still in training mode: call encoder.eval(), so that dropout is off and the "
                          "features are the same every time (frozen features).")
    head = head.cpu()
    if all(torch.equal(p.detach(), b) for p, b in zip(head.parameters(), head_before)):
        raise CheckFailed("the head's weights did not change: train the head you are given (an optimizer over "
                          "head.parameters(), the cross-entropy of its logits, backward, step).")
    if result is None or not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(f"train_probe should return (accuracy, majority), two numbers; got {result!r}.")
    try:
        accuracy, majority = (float(x) for x in result)
    except (TypeError, ValueError):
        raise CheckFailed(f"train_probe should return (accuracy, majority), two numbers; got {result!r}.") from None

    held_labels = torch.tensor([held_out[i]["labels"] for i in range(len(held_out))])
    train_labels = torch.tensor([train[i]["labels"] for i in range(len(train))])
    most_frequent = int(torch.bincount(train_labels).argmax())
    expected_majority = (held_labels == most_frequent).float().mean().item()
    if not math.isclose(majority, expected_majority, abs_tol=1e-9):
        own = (held_labels == int(torch.bincount(held_labels).argmax())).float().mean().item()
        hint = (" It is the held-out set's own most frequent label: the baseline may only know the training labels."
                if math.isclose(majority, own, abs_tol=1e-9) else "")
        raise CheckFailed(f"your majority baseline is {majority:.4f}: it is the share of held-out sentences whose "
                          f"label is the most frequent label of the training sentences.{hint}")
    with torch.no_grad():
        scores = {what: (head(x).argmax(-1) == held_labels).float().mean().item() for what, x in features.items()}
        on_train = {what: (head(x).argmax(-1) == train_labels).float().mean().item()
                    for what, x in train_features.items()}
    tolerance = 1.5 / len(held_out)  # one sentence: a near-tie may flip with another batch size
    if not any(math.isclose(accuracy, s, abs_tol=tolerance) for s in scores.values()):
        if any(math.isclose(accuracy, s, abs_tol=1.5 / len(train)) for s in on_train.values()):
            raise CheckFailed(f"your accuracy {accuracy:.4f} is the head's accuracy on the training sentences: report "
                              f"it on held_out, sentences the head never saw.")
        raise CheckFailed(f"your accuracy {accuracy:.4f} is not what the head you trained scores on the held-out "
                          f"sentences' [CLS] vectors (the checker measures "
                          + ", ".join(f"{s:.4f} on the {w}" for w, s in scores.items())
                          + "): train and score the head on the encoder's [CLS] vectors.")
    if accuracy < majority + PROBE_MARGIN:
        raise CheckFailed(f"your probe scores {accuracy:.4f} against a majority baseline of {majority:.4f}: not "
                          f"clearly better (by less than {PROBE_MARGIN:.2f}, {round(PROBE_MARGIN * len(held_out))} "
                          f"of {len(held_out)} sentences, which chance can give). The head has not learned yet: train "
                          f"it for more steps or with a larger learning rate (full-batch Adam at lr 1e-2 for a few "
                          f"hundred steps is plenty).")
    print(f"accuracy {accuracy:.3f} against a majority baseline of {majority:.3f}")
    passed("train_probe")
