"""Checkers for the exercises of the fine-tuning lessons (07-10): the classification head, the NER label alignment,
the entities of BIO tags and their entity-level scores, and for question answering the windows over a long context,
the best-span search in one window and the best answer over all of them.

Each checker runs the learner's code on inputs it makes, compares with `minibert.finetuning`, and raises `CheckFailed`
at the first difference, with a hint for the usual mistakes, without printing the expected answer.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from minibert.checks import CheckFailed, compare_tensors, passed, reports_stubs, time_limit
from minibert.finetuning_data import align_labels, best_span
from minibert.heads import BertForSequenceClassification
from minibert.metrics import entity_prf, entity_spans
from minibert.model import IGNORE_INDEX, BertConfig

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


# ------------------------------------------------------------------------------------------ NER label alignment

_LABELS = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}

# (name, word_ids of the tokens, one tag per word)
_ALIGN_CASES = [
    ("one token per word", [None, 0, 1, 2, None], ["B-PER", "I-PER", "O"]),
    ("English sub-words ('Johanson lives in Wiesbaden' -> johan ##son lives in wi ##es ##baden)",
     [None, 0, 0, 1, 2, 3, 3, 3, None], ["B-PER", "O", "O", "B-LOC"]),
    ("Chinese, one character per word (张 三 在 北 京)", [None, 0, 1, 2, 3, 4, None],
     ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]),
    ("a word that gives no token at all (word 1 is a control character)", [None, 0, 2, 2, None],
     ["B-LOC", "O", "B-PER"]),
    ("truncation (the last two words did not fit)", [None, 0, 0, 1, None], ["B-PER", "I-PER", "O", "B-LOC"]),
    ("a word split into pieces at the end", [None, 0, 1, 1, 1, 1, None], ["O", "B-LOC"]),
]


@reports_stubs
def check_align_labels(fn) -> None:
    """Check `fn(word_ids, word_labels, label_to_id) -> list[int]`, one label id per token.

    word_ids: for each token, the index of the word it comes from, or None for special tokens ([CLS], [SEP]);
    word_labels: one tag per word ("B-PER", "O"...); label_to_id: {tag: id}. The first sub-word of each word gets its
    word's label id; the other sub-words and the special tokens get -100, which the loss ignores.
    """
    for name, word_ids, tags in _ALIGN_CASES:
        expected = align_labels(word_ids, tags, _LABELS)
        try:
            got = fn(list(word_ids), list(tags), dict(_LABELS))
        except NotImplementedError:  # a stub: reports_stubs says so in one line
            raise
        except Exception as e:
            raise CheckFailed(f"case '{name}' (word_ids {word_ids}): your function raised "
                              f"{type(e).__name__}: {e}") from e
        if got is None:
            raise CheckFailed("your function returned None. Did you forget a `return`?")
        got = got.tolist() if hasattr(got, "tolist") else list(got)
        for t, (g, e) in enumerate(zip(got, expected)):
            if g != e:
                raise CheckFailed(f"case '{name}' (word_ids {word_ids}): token {t} gets {g!r}; the tokens before it "
                                  f"are right. {_align_hint(word_ids, tags, t, g)}")
        if len(got) != len(expected):
            raise CheckFailed(f"case '{name}' (word_ids {word_ids}): you return {len(got)} labels for "
                              f"{len(word_ids)} tokens: give exactly one per token.")
    passed("label alignment")


def _align_hint(word_ids, tags, t: int, got) -> str:
    w = word_ids[t]
    if w is None:
        return "Special tokens (word id None) get -100, so that the loss skips them."
    if t > 0 and word_ids[t - 1] == w:
        return "Only the first sub-word of a word gets the label; the following pieces of the same word get -100."
    if got == IGNORE_INDEX:
        return "This is the first token of its word: it gets the word's label id."
    if w < len(tags) and got == _LABELS.get(tags[min(w + 1, len(tags) - 1)]):
        return "Read the label of the word this token comes from (word_labels[word_ids[t]]), not the t-th label."
    return "Map the word's tag through label_to_id."


# ------------------------------------------------------------------------------------------ best span


def _span_cases():
    gen = torch.Generator().manual_seed(3)
    T = 16
    context = [None] * 5 + [(i, i + 1) for i in range(10)] + [None]  # [CLS] q q q [SEP] ctx x 10 [SEP]
    cases = []
    for name in ("end before start", "start in the question", "too long", "plain"):
        s, e = torch.randn(T, generator=gen), torch.randn(T, generator=gen)
        if name == "end before start":
            s[10], e[7] = 9.0, 9.0
        elif name == "start in the question":
            s[2], e[8] = 9.0, 9.0
        elif name == "too long":
            s[5], e[14] = 9.0, 9.0
        cases.append((name, s, e, context, 4))
    cases.append(("no context at all", torch.randn(T, generator=gen), torch.randn(T, generator=gen),
                  [None] * T, 30))
    return cases


@reports_stubs
def check_best_span(fn) -> None:
    """Check `fn(start_logits, end_logits, offsets, max_answer_length=30)`.

    start_logits, end_logits: (T,) tensors; offsets: a list of T items, a (start, end) character span for a token of
    the context and None for every other token ([CLS], the question, [SEP]). Return (start, end) token indices, or
    (start, end, score), of the legal span with the highest start_logits[start] + end_logits[end]: start <= end, both
    in the context, and end - start + 1 <= max_answer_length. Return None when no span is legal.
    """
    for name, s, e, offsets, max_len in _span_cases():
        expected = best_span(s, e, offsets, max_len)
        try:
            got = fn(s.clone(), e.clone(), list(offsets), max_answer_length=max_len)
        except NotImplementedError:  # a stub: reports_stubs says so in one line
            raise
        except Exception as ex:
            raise CheckFailed(f"case '{name}': your function raised {type(ex).__name__}: {ex}") from ex
        if expected is None:
            if got is not None:
                raise CheckFailed(f"case '{name}': no token is in the context, so no span is legal; return None "
                                  f"(yours returned {got!r}).")
            continue
        if got is None:
            raise CheckFailed(f"case '{name}': you returned None, but a legal span exists.")
        try:
            start, end = int(got[0]), int(got[1])
        except (TypeError, IndexError, ValueError):
            raise CheckFailed(f"case '{name}': return (start, end) token indices, got {got!r}") from None
        if (start, end) == expected[:2]:
            continue
        if end < start:
            raise CheckFailed(f"case '{name}': your span ({start}, {end}) ends before it starts.")
        if not (0 <= start < len(offsets) and 0 <= end < len(offsets)) or offsets[start] is None \
                or offsets[end] is None:
            raise CheckFailed(f"case '{name}': your span ({start}, {end}) uses a token outside the context "
                              "(offsets None: [CLS], the question or [SEP]).")
        if end - start + 1 > max_len:
            raise CheckFailed(f"case '{name}': your span ({start}, {end}) has {end - start + 1} tokens, more than "
                              f"max_answer_length={max_len}.")
        raise CheckFailed(f"case '{name}': your span ({start}, {end}) is legal but not the best: its score is "
                          f"{float(s[start] + e[end]):.4f}, and a legal span scores higher.")
    passed("best span")


# ------------------------------------------------------------------------------------------ sentence-pair encoding

_PAIR_LONG_A = ("The committee said on Tuesday that the unexpected increase in quarterly earnings was driven mostly "
                "by stronger international sales of its networking equipment.")
_PAIR_LONG_B = ("Analysts had expected weaker results because the company warned in March that demand for networking "
                "equipment was slowing in several important markets.")
_PAIR_SHORT_A = "The cat sat on the mat."
_PAIR_SHORT_B = "A cat was sitting on the mat."

# (name, sentence A, sentence B, max_length)
_PAIR_CASES = [
    ("a short pair that fits", _PAIR_SHORT_A, _PAIR_SHORT_B, 64),
    ("a long A and a short B", _PAIR_LONG_A, _PAIR_SHORT_B, 24),
    ("a short A and a long B", _PAIR_SHORT_A, _PAIR_LONG_B, 24),
    ("both long, an even budget", _PAIR_LONG_A, _PAIR_LONG_B, 21),
    ("both long, A the shorter, an odd budget", _PAIR_LONG_B, _PAIR_LONG_A, 20),
    ("both long and of the same length, an odd budget", _PAIR_LONG_A, " ".join(reversed(_PAIR_LONG_A.split())), 20),
    ("max_length=3: room for the special tokens only", _PAIR_SHORT_A, _PAIR_SHORT_B, 3),
]


def _pair_tokenizer():
    """A small WordPiece tokenizer for the checker's sentences, in which some words become several pieces."""
    from minibert.tokenizer import WordPieceTokenizer
    from minibert.wordpiece import SPECIAL_TOKENS, count_words

    split = {"networking": ("network", "##ing"), "unexpected": ("un", "##expected"), "stronger": ("strong", "##er"),
             "international": ("inter", "##national"), "quarterly": ("quarter", "##ly"), "weaker": ("weak", "##er"),
             "slowing": ("slow", "##ing"), "analysts": ("analyst", "##s"), "sitting": ("sit", "##ting")}
    words = count_words([_PAIR_LONG_A, _PAIR_LONG_B, _PAIR_SHORT_A, _PAIR_SHORT_B])
    pieces = sorted({p for w in words for p in split.get(w, (w,))})
    return WordPieceTokenizer({t: i for i, t in enumerate([*SPECIAL_TOKENS, *pieces])})


def _ids_and_type_ids(result, what: str):
    """Accept (ids, type_ids), a dict with input_ids/ids and token_type_ids/type_ids, or an Encoding-like object."""
    if result is None:
        raise CheckFailed(f"{what} returned None. Did you forget a `return`?")
    if isinstance(result, dict):
        ids = result.get("input_ids", result.get("ids"))
        type_ids = result.get("token_type_ids", result.get("type_ids"))
    elif hasattr(result, "ids") and hasattr(result, "type_ids"):
        ids, type_ids = result.ids, result.type_ids
    elif isinstance(result, (tuple, list)) and len(result) == 2:
        ids, type_ids = result
    else:
        raise CheckFailed(f"{what} should return (ids, type_ids): two lists of ints; got {type(result).__name__}.")
    if ids is None or type_ids is None:
        raise CheckFailed(f"{what} should return (ids, type_ids); one of them is missing.")
    as_list = [x.tolist() if hasattr(x, "tolist") else list(x) for x in (ids, type_ids)]
    return as_list[0], as_list[1]


@reports_stubs
def check_pair_encoding(fn) -> None:
    """Check `fn(tokenizer, a, b, max_length) -> (ids, type_ids)`, the encoding of a sentence pair.

    `[CLS] A [SEP] B [SEP]` as token ids (with `tokenizer.tokenize`, `tokenizer.vocab`, `tokenizer.cls_id` and
    `tokenizer.sep_id`), segment id 0 for `[CLS]`, A and the first `[SEP]`, 1 for B and the last `[SEP]`; at most
    `max_length` tokens in all, truncated longest first: when the pair does not fit in the max_length - 3 tokens left
    by the special tokens, the shorter sentence keeps min(its length, half of that budget rounded down) tokens and the
    longer one the rest (on equal lengths, A counts as the shorter); tokens are cut from the end. A max_length below
    3 raises ValueError. The checker compares with `tokenizer.encode(a, pair=b, max_length=max_length)`.
    """
    tokenizer = _pair_tokenizer()
    for name, a, b, max_length in _PAIR_CASES:
        expected = tokenizer.encode(a, pair=b, max_length=max_length)
        what = f"case '{name}' (max_length={max_length})"
        try:
            result = fn(tokenizer, a, b, max_length)
        except NotImplementedError:  # a stub: reports_stubs says so in one line
            raise
        except Exception as e:
            raise CheckFailed(f"{what}: your function raised {type(e).__name__}: {e}") from e
        ids, type_ids = _ids_and_type_ids(result, f"{what}: your function")
        tokens = [tokenizer.id_to_token[i] if isinstance(i, int) and 0 <= i < len(tokenizer.id_to_token) else repr(i)
                  for i in ids]
        if ids != expected.ids:
            raise CheckFailed(f"{what}: {_pair_ids_hint(tokenizer, a, b, max_length, ids, tokens, expected)}")
        if len(type_ids) != len(ids):
            raise CheckFailed(f"{what}: {len(ids)} ids but {len(type_ids)} segment ids: give one segment id per "
                              "token.")
        for t, (g, e) in enumerate(zip(type_ids, expected.type_ids)):
            if g != e:
                where = ("the first [SEP] closes sentence A" if tokens[t] == "[SEP]" and t < len(tokens) - 1
                         else "the last [SEP] closes sentence B" if tokens[t] == "[SEP]"
                         else "[CLS] starts the input" if t == 0
                         else "it belongs to sentence B" if e else "it belongs to sentence A")
                raise CheckFailed(f"{what}: the segment id of token {t} ({tokens[t]}) is {g!r} in yours, but {where}; "
                                  "the segment ids before it are right.")
    try:
        result = fn(tokenizer, _PAIR_SHORT_A, _PAIR_SHORT_B, 2)
    except ValueError:
        pass
    except NotImplementedError:  # a stub: reports_stubs says so in one line
        raise
    except Exception as e:
        raise CheckFailed(f"max_length=2: raise a ValueError (too small for [CLS] A [SEP] B [SEP]), not "
                          f"{type(e).__name__}: {e}") from e
    else:
        raise CheckFailed("max_length=2 leaves no room for the three special tokens of [CLS] A [SEP] B [SEP]: "
                          "raise a ValueError instead of returning an encoding.")
    passed("pair encoding")


def _pair_ids_hint(tokenizer, a, b, max_length, ids, tokens, expected) -> str:
    """What differs first in the ids, and why, without giving the expected ids."""
    from minibert.pretraining_data import google_truncated_lengths
    from minibert.wordpiece import CLS, SEP

    if not ids or tokens[0] != CLS:
        return "the encoding should start with [CLS] (tokenizer.cls_id)."
    if len(ids) > max_length:
        return f"yours has {len(ids)} tokens, more than max_length={max_length}: truncate the two sentences."
    seps = [t for t, token in enumerate(tokens) if token == SEP]
    if len(seps) != 2 or seps[-1] != len(tokens) - 1:
        return (f"yours has {len(seps)} [SEP] token(s), at positions {seps}: one [SEP] after A and one at the very "
                "end, after B (tokenizer.sep_id).")
    n1, n2 = seps[0] - 1, seps[1] - seps[0] - 1
    la, lb = len(tokenizer.tokenize(a)), len(tokenizer.tokenize(b))
    e1 = expected.type_ids.count(0) - 2
    e2 = len(expected.ids) - e1 - 3
    if (n1, n2) != (e1, e2):
        budget = max_length - 3
        if (e1, e2) == (la, lb):
            return (f"this pair fits in max_length, so every token is kept: A has {la} WordPiece tokens "
                    f"(tokenizer.tokenize) and B {lb}; yours keeps {n1} and {n2}.")
        if (n1, n2) == google_truncated_lengths(la, lb, budget):  # Google's run_classifier.py rule
            return (f"you kept {n1} tokens of A and {n2} of B by removing one token at a time from the longer "
                    "sentence and from B on a tie (Google's original run_classifier.py). The tokenizers of minibert "
                    "and Hugging Face split the budget instead: the shorter sentence keeps at most half of it "
                    "(rounded down), the longer the rest, and on equal lengths A counts as the shorter.")
        if n1 + n2 < min(budget, la + lb):
            return (f"you kept {n1} tokens of A and {n2} of B, {n1 + n2} in all: the budget is max_length - 3 = "
                    f"{budget} tokens, and the pair should use all of it (or all its tokens if it has fewer).")
        return (f"you kept {n1} tokens of A (of {la}) and {n2} of B (of {lb}): truncate longest first. The shorter "
                "sentence keeps min(its length, budget // 2) tokens, the longer one the rest of the budget; on equal "
                "lengths A counts as the shorter.")
    for t, (g, e) in enumerate(zip(ids, expected.ids)):
        if g != e:
            return (f"token {t} is {tokens[t]!r} in yours; the tokens before it match. Use tokenizer.tokenize (the "
                    "WordPiece pieces) and keep the first tokens of each sentence, cutting from the end.")
    return f"yours has {len(ids)} tokens, expected {len(expected.ids)}."


# ------------------------------------------------------------------------------------------ entity-level scores

_TYPES = ("PER", "LOC", "ORG")
# tag sequences where a wrong reading of BIO shows at once: (what it tests, tags)
_ENTITY_CASES = [
    ("plain entities", ["B-PER", "I-PER", "O", "B-LOC", "O"]),
    ("an entity at the very end", ["O", "B-ORG", "I-ORG"]),
    ("a one-word entity at the end", ["O", "O", "B-LOC"]),
    ("B- right after an entity of the same type", ["B-PER", "I-PER", "B-PER", "O"]),
    ("I- after O (nothing to continue)", ["O", "I-LOC", "I-LOC", "O"]),
    ("I- at the first word", ["I-PER", "O"]),
    ("the type changes inside a run of I- tags", ["B-PER", "I-PER", "I-LOC", "I-LOC", "O"]),
    ("no entity at all", ["O", "O", "O"]),
    ("an empty sentence", []),
]


def _random_tags(rng, n: int, p_o: float = 0.5) -> list[str]:
    return ["O" if rng.random() < p_o else f"{rng.choice('BI')}-{rng.choice(_TYPES)}" for _ in range(n)]


def _as_entities(result, what: str) -> set:
    if result is None:
        raise CheckFailed(f"{what} returned None. Did you forget a `return`?")
    try:
        entities = {(str(e[0]), int(e[1]), int(e[2])) for e in result}
    except (TypeError, IndexError, ValueError):
        raise CheckFailed(f"{what} should return (type, first word, last word) tuples, got {list(result)[:3]!r}.") \
            from None
    if len(entities) != len(list(result)):
        raise CheckFailed(f"{what} returned the same entity twice: {sorted(result)!r}.")
    return entities


def _entity_hint(tags: list[str], got: set, expected: set) -> str:
    """What the first difference (by first word) says about the learner's reading of BIO, without the answer."""
    first = min(e[1] for e in got ^ expected)
    missed = [e for e in expected - got if e[1] == first]
    extra = [e for e in got - expected if e[1] == first]
    tag = tags[first] if first < len(tags) else None
    before = tags[first - 1] if 0 < first <= len(tags) else "O"
    if extra and any("-" in kind for kind, _, _ in extra):
        return "The type is the tag without its B- or I- prefix: 'PER', not 'B-PER'."
    if extra and tag == "O":
        return f"Word {first} is tagged O: no entity starts there."
    if {(kind, a, b - 1) for kind, a, b in got} == expected:
        return "The last word of an entity is the index of its last word itself (inclusive), not one past it."
    if missed and not extra and missed[0][2] == len(tags) - 1:
        return (f"The entity that starts at word {first} runs to the last word of the sentence: close the entity that "
                f"is still open when the tags end.")
    if missed and not extra and tag and tag.startswith("I-"):
        return (f"Word {first} is tagged {tag} after {before}: an I- tag with nothing of its type to continue (after "
                f"O, after another type, or at the first word) starts an entity.")
    if missed and not extra and tag and tag.startswith("B-"):
        return f"Word {first} is tagged {tag}: a B- tag always starts a new entity, even after one of the same type."
    if extra and missed:
        mine, right = extra[0], missed[0]
        after = min(mine[2], right[2]) + 1  # the first word on which the two readings differ
        if after >= len(tags):
            return (f"Your entity that starts at word {first} ends at word {mine[2]}: an entity may run to the last "
                    f"word.")
        if mine[2] > right[2] and tags[after].startswith("B-"):
            return (f"Your entity that starts at word {first} runs on through word {after}, tagged {tags[after]}: a B- "
                    f"tag always starts a new entity, even right after one of the same type.")
        if mine[2] > right[2] and tags[after].startswith("I-"):
            return (f"Your entity that starts at word {first} runs on through word {after}, tagged {tags[after]}: an "
                    f"I- tag continues only an entity of its own type.")
        return (f"Your entity that starts at word {first} ends at word {mine[2]}; look at word {after}, tagged "
                f"{tags[after]}: does it continue the entity or not?")
    if missed:
        return f"An entity starts at word {first} ({tag}) and your function does not find it."
    return f"Your entity {extra[0]!r} is not an entity of these tags."


@reports_stubs
def check_read_entities(read_entities) -> None:
    """Check `read_entities(tags) -> [(type, first, last), ...]`, the entities of one sentence's BIO tags.

    `first` and `last` are word indices, `last` inclusive. B-X starts an entity of type X; I-X continues the entity
    before it when that one is of type X, and otherwise starts one (conlleval's reading); an entity ends before the
    first tag that does not continue it, or at the last word. Compared with `minibert.metrics.entity_spans` on the
    cases of `_ENTITY_CASES` and on 2,000 random tag sequences.
    """
    rng = random.Random(0)
    cases = _ENTITY_CASES + [(f"random sequence {k}", _random_tags(rng, rng.randint(1, 12))) for k in range(2000)]
    for name, tags in cases:
        expected = set(entity_spans(tags))
        got = _as_entities(read_entities(list(tags)), f"read_entities({tags})")
        if got != expected:
            raise CheckFailed(f"case '{name}': for the tags {tags} your entities are {sorted(got, key=lambda e: e[1])}"
                              f". {_entity_hint(tags, got, expected)}")
    passed("read_entities")


def _scores(result, what: str) -> tuple[float, float, float]:
    if result is None:
        raise CheckFailed(f"{what} returned None. Did you forget a `return`?")
    if isinstance(result, dict):
        result = tuple(result.get(k) for k in ("precision", "recall", "f1"))
    try:
        p, r, f = (float(x) for x in result)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should return (precision, recall, f1), three numbers; got {result!r}.") from None
    return p, r, f


def _wrong_scores(gold, predicted) -> dict[str, tuple[float, float, float]]:
    """The scores of the usual mistakes, to recognise them."""
    def prf(correct, n_pred, n_gold):
        p = correct / n_pred if n_pred else 0.0
        r = correct / n_gold if n_gold else 0.0
        return p, r, 2 * p * r / (p + r) if p + r else 0.0

    right = entity_prf(gold, predicted)
    g_all = [[(n, *e) for e in entity_spans(t)] for n, t in enumerate(gold)]
    p_all = [[(n, *e) for e in entity_spans(t)] for n, t in enumerate(predicted)]
    g, p = {e for s in g_all for e in s}, {e for s in p_all for e in s}
    per_sentence = [prf(len(set(a) & set(b)), len(b), len(a)) for a, b in zip(g_all, p_all) if a or b]
    untyped = prf(len({e[:1] + e[2:] for e in g} & {e[:1] + e[2:] for e in p}), len(p), len(g))
    overlap = prf(sum(any(x[0] == y[0] and x[1] == y[1] and x[2] <= y[3] and y[2] <= x[3] for y in g) for x in p),
                  len(p), len(g))
    no_sentence = prf(len({e[1:] for e in g} & {e[1:] for e in p}), len({e[1:] for e in p}), len({e[1:] for e in g}))
    words = [(n, i, t) for n, tags in enumerate(gold) for i, t in enumerate(tags) if t != "O"]
    said = {(n, i, t) for n, tags in enumerate(predicted) for i, t in enumerate(tags) if t != "O"}
    word_level = prf(len(set(words) & said), len(said), len(words))
    return {
        "precision and recall are swapped: precision = correct / predicted entities, recall = correct / gold "
        "entities": (right["recall"], right["precision"], right["f1"]),
        "these are the scores averaged over sentences; count the entities of the whole data set (correct, predicted "
        "and gold), then divide once": tuple(sum(x[k] for x in per_sentence) / max(1, len(per_sentence))
                                            for k in range(3)),
        "an entity with the right words but the wrong type counts as correct here: the type must match too": untyped,
        "an entity that only overlaps a gold one counts as correct here: the type, the first and the last word must "
        "all match": overlap,
        "the same entity in two sentences counts once here: an entity is (sentence, type, first, last)": no_sentence,
        "these are word-level scores (each tagged word counted): score entities, whole spans": word_level,
    }


@reports_stubs
def check_entity_scores(entity_scores) -> None:
    """Check `entity_scores(gold_sequences, predicted_sequences) -> (precision, recall, f1)`, entity-level scores.

    A predicted entity is correct when its sentence has a gold entity of the same type, first and last word;
    precision = correct / predicted, recall = correct / gold, F1 their harmonic mean, each counted over all sentences
    (not averaged per sentence), 0 when there is nothing to divide by. Compared with `minibert.metrics.entity_prf` on
    hand-made cases and on 300 random data sets of gold tags and predictions made from them with the usual errors.
    """
    rng = random.Random(1)
    cases = [
        ("one entity cut short", [["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O", "B-LOC"]],
         [["B-PER", "I-PER", "O", "B-ORG", "O", "O", "B-LOC"]]),
        ("the right words, the wrong type", [["B-PER", "I-PER", "O"], ["O", "B-LOC", "O"]],
         [["B-ORG", "I-ORG", "O"], ["O", "B-LOC", "O"]]),
        ("the same entity in two sentences", [["B-LOC", "O"], ["O", "O"]], [["B-LOC", "O"], ["B-LOC", "O"]]),
        ("nothing predicted", [["B-PER", "O"], ["O", "B-LOC"]], [["O", "O"], ["O", "O"]]),
        ("no entity at all, in gold and predicted", [["O", "O", "O"]], [["O", "O", "O"]]),
    ]
    for k in range(300):
        gold = [_random_tags(rng, rng.randint(0, 10), p_o=0.6) for _ in range(rng.randint(1, 6))]
        predicted = []
        for tags in gold:  # the usual errors: another type, a boundary moved, an entity missed, one made up
            tags = list(tags)
            for i in range(len(tags)):
                if rng.random() < 0.15:
                    tags[i] = "O" if rng.random() < 0.4 else f"{rng.choice('BI')}-{rng.choice(_TYPES)}"
            predicted.append(tags)
        cases.append((f"random data set {k}", gold, predicted))
    for name, gold, predicted in cases:
        expected = entity_prf(gold, predicted)
        expected = (expected["precision"], expected["recall"], expected["f1"])
        try:
            got = entity_scores([list(t) for t in gold], [list(t) for t in predicted])
        except ZeroDivisionError:
            raise CheckFailed(f"case '{name}': your function divided by zero. A score with nothing to divide by (no "
                              f"predicted entity, or no gold one) is 0.") from None
        got = _scores(got, f"entity_scores on case '{name}'")
        if all(math.isclose(g, e, abs_tol=1e-9) for g, e in zip(got, expected)):
            continue
        which = next(n for n, g, e in zip(("precision", "recall", "f1"), got, expected)
                     if not math.isclose(g, e, abs_tol=1e-9))
        hint = next((why for why, scores in _wrong_scores(gold, predicted).items()
                     if all(math.isclose(g, w, abs_tol=1e-9) for g, w in zip(got, scores))), "")
        if not hint and any(math.isnan(g) for g in got):
            hint = "a score with nothing to divide by (no predicted entity, or no gold one) is 0, not nan"
        show = "\n".join(f"    gold {g}\n    pred {p}" for g, p in zip(gold, predicted)) if len(gold) <= 3 else ""
        right = {"precision": "", "recall": " (your precision is right)",
                 "f1": " (your precision and recall are right)"}
        raise CheckFailed(f"case '{name}': your {which} is {dict(zip(('precision', 'recall', 'f1'), got))[which]:.4f}"
                          f"{right[which]}" + (f" for\n{show}" if show else "") + (f"\nIt looks like {hint}." if hint
                                                                                   else ""))
    passed("entity_scores")


# ------------------------------------------------------------------------------------------ windows over a long context


def _reference_windows(n_context: int, n_question: int, max_length: int, stride: int) -> list[tuple[int, int]]:
    """What prepare_qa_features cuts: (first, last + 1) context token of each window."""
    budget = max_length - n_question - 3
    windows, start = [], 0
    while True:
        end = min(start + budget, n_context)
        windows.append((start, end))
        if end >= n_context:
            return windows
        start += budget - stride


_WINDOW_CASES = [  # (what it tests, n_context, n_question, max_length, stride)
    ("a context that fits in one window", 50, 10, 128, 32),
    ("a context of exactly one window", 115, 10, 128, 32),
    ("one token more than a window", 116, 10, 128, 32),
    ("a long context", 300, 10, 128, 32),
    ("BERT's SQuAD windows: 384 tokens sharing 128", 1000, 14, 384, 128),
    ("no overlap (stride 0)", 200, 5, 64, 0),
    ("a large overlap", 120, 8, 48, 30),
]


def _window_message(windows, n_context: int, n_question: int, max_length: int, stride: int) -> str | None:
    """The first thing wrong with the learner's windows, or None when they are right."""
    budget = max_length - n_question - 3
    if not windows:
        return "you return no window: even a short context is read in one window."
    if windows[0][0] != 0:
        return f"the first window starts at context token {windows[0][0]}: it starts at the first, 0."
    for k, (start, end) in enumerate(windows):
        if end <= start:
            return f"window {k} is ({start}, {end}): a window is (first token, last token + 1) and holds tokens."
        if end - start > budget:
            if end - start == budget + 3:
                return (f"window {k} holds {end - start} context tokens: the window's max_length also holds [CLS], the "
                        f"question and two [SEP], so {budget} are left for the context.")
            return (f"window {k} holds {end - start} context tokens, more than the {budget} that max_length leaves "
                    f"next to [CLS], the {n_question} question tokens and two [SEP].")
        if end > n_context:
            return f"window {k} ends at {end}, past the context's {n_context} tokens."
        last = end == n_context
        if last and k < len(windows) - 1:
            return (f"window {k} already reaches the end of the context, yet window {k + 1} follows: stop at the "
                    f"window that reaches the end.")
        if not last and end - start < budget:
            return (f"window {k} holds {end - start} context tokens although the context goes on: every window but "
                    f"the last takes as many as fit, {budget}.")
        if k + 1 < len(windows):
            shared = end - windows[k + 1][0]
            if shared != stride:
                step = windows[k + 1][0] - start
                hint = (" Here stride is the overlap (the Hugging Face meaning), not the step between window starts "
                        "(Google's doc_stride)." if step == stride else "")
                return (f"windows {k} and {k + 1} share {shared} tokens; neighbouring windows share stride = "
                        f"{stride}.{hint}")
    if windows[-1][1] != n_context:
        return (f"the last window ends at context token {windows[-1][1]}, but the context has {n_context}: its end is "
                f"never read. Go on until a window reaches the end.")
    return None


@reports_stubs
def check_context_windows(context_windows) -> None:
    """Check `context_windows(n_context, n_question, max_length, stride) -> [(start, end), ...]`.

    The windows over a context of n_context tokens for [CLS] question [SEP] window [SEP] of at most max_length tokens:
    each window (first token, last token + 1) takes as many context tokens as fit, max_length - n_question - 3 (the
    last window fewer), neighbouring windows share `stride` tokens, and the last one ends at n_context. Compared
    with what `prepare_qa_features` cuts on the cases of `_WINDOW_CASES` and 300 random ones.
    """
    rng = random.Random(0)
    cases = list(_WINDOW_CASES)
    for k in range(300):
        max_length = rng.randint(16, 200)
        n_question = rng.randint(1, max_length // 3)
        budget = max_length - n_question - 3
        n_context, stride = rng.randint(1, 6 * budget), rng.randint(0, budget - 1)
        cases.append((f"random case {k}", n_context, n_question, max_length, stride))
    for name, n_context, n_question, max_length, stride in cases:
        what = (f"case '{name}' (n_context={n_context}, n_question={n_question}, max_length={max_length}, "
                f"stride={stride})")
        with time_limit(10, f"{what}: context_windows ran for more than 10 seconds. Does its loop stop?"):
            result = context_windows(n_context, n_question, max_length, stride)
        if result is None:
            raise CheckFailed("context_windows returned None. Did you forget a `return`?")
        try:
            windows = [(int(a), int(b)) for a, b in result]
        except (TypeError, ValueError):
            raise CheckFailed(f"{what}: return a list of (start, end) pairs, got {list(result)[:3]!r}.") from None
        message = _window_message(windows, n_context, n_question, max_length, stride)
        if message is None and windows != _reference_windows(n_context, n_question, max_length, stride):
            message = "your windows differ from what prepare_qa_features cuts."
        if message:
            raise CheckFailed(f"{what}: {message}")
    passed("context_windows")


# ------------------------------------------------------------------------------------------ the answer over all windows


def _qa_example(rng, n_words: int, n_question: int, max_length: int, stride: int):
    """A context of made-up words, and its windows as features: offsets (None outside the context), and logits."""
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 6))) for _ in range(n_words)]
    context, offsets = "", []
    for w in words:
        context += ("" if not context else " ")
        offsets.append((len(context), len(context) + len(w)))
        context += w
    lead = n_question + 2
    features = []
    for a, b in _reference_windows(n_words, n_question, max_length, stride):
        T = lead + (b - a) + 1
        s = torch.tensor([rng.gauss(0, 1) for _ in range(T)])
        e = torch.tensor([rng.gauss(0, 1) for _ in range(T)])
        features.append({"offsets": [None] * lead + offsets[a:b] + [None], "start_logits": s, "end_logits": e})
    return context, features


def _answer(context, features, max_answer_length, pick="best", normalise=False, cut="offsets"):
    """The reference answer, or one of the usual mistakes."""
    best = None
    for f in (features[:1] if pick == "first" else features):
        s, e = f["start_logits"], f["end_logits"]
        if normalise:
            s, e = s.log_softmax(-1), e.log_softmax(-1)
        span = best_span(s, e, f["offsets"], max_answer_length)
        if span is None or not (best is None or span[2] > best[0] or pick == "last"):
            continue
        i, j = span[0], span[1]
        o = f["offsets"]
        text = {"offsets": context[o[i][0]:o[j][1]], "end start": context[o[i][0]:o[j][0]],
                "tokens": context[i:j + 1]}[cut]
        best = (span[2], text)
    return best[1] if best else ""


@reports_stubs
def check_best_answer(best_answer) -> None:
    """Check `best_answer(context, features, max_answer_length=30) -> str`, one question's answer over its windows.

    features: one dict per window, with "offsets" (a (start, end) character span per token of the context, None for
    [CLS], the question and [SEP]), and "start_logits", "end_logits" ((T,) tensors). The answer is the legal span with
    the highest start_logits[i] + end_logits[j] over all windows (start <= end, both in the context, at most
    max_answer_length tokens), cut out of the context from the first character of its start token to the last of its
    end token; '' when no window has a legal span.
    """
    rng = random.Random(2)
    cases = []
    for k in range(200):
        n_question = rng.randint(1, 8)
        max_length = rng.randint(n_question + 8, n_question + 40)
        budget = max_length - n_question - 3
        context, features = _qa_example(rng, rng.randint(1, 4 * budget), n_question, max_length,
                                        rng.randint(0, budget - 1))
        cases.append((f"random question {k} ({len(features)} windows)", context, features, rng.choice([3, 5, 30])))
    context, features = _qa_example(random.Random(3), 12, 3, 12, 2)
    for f in features:
        f["offsets"] = [None] * len(f["offsets"])
    cases.append(("no window holds a context token", context, features, 30))
    for name, context, features, max_answer_length in cases:
        expected = _answer(context, features, max_answer_length)
        given = [{key: (v.clone() if isinstance(v, torch.Tensor) else list(v)) for key, v in f.items()}
                 for f in features]
        got = best_answer(context, given, max_answer_length=max_answer_length)
        if got == expected:
            continue
        if got is None:
            raise CheckFailed(f"case '{name}': you returned None; return the answer text, or '' when no window has a "
                              f"legal span.")
        if not isinstance(got, str):
            raise CheckFailed(f"case '{name}': return the answer as a string, got {type(got).__name__}.")
        wrong = {
            "first": "this is the best span of the first window only: every window proposes its best span, and the "
                     "best-scoring one over all windows wins",
            "last": "this is the span of the last window that has one: compare each window's best score with the "
                    "best so far, and keep the higher",
            "normalise": "the scores were normalised in each window (a softmax) before comparing: compare the raw "
                         "start_logits[i] + end_logits[j] across windows, as BERT's script does",
            "end start": "the answer stops at the first character of its end token: it runs to the last one, "
                         "offsets[end][1]",
            "tokens": "the answer is cut from the context with token positions: token positions index the window, "
                      "the offsets give the characters in the context",
            "30": "max_answer_length was not passed on to the span search",
        }
        for mistake, why in wrong.items():
            variant = (_answer(context, features, 30) if mistake == "30" else
                       _answer(context, features, max_answer_length, pick=mistake) if mistake in ("first", "last") else
                       _answer(context, features, max_answer_length, normalise=True) if mistake == "normalise" else
                       _answer(context, features, max_answer_length, cut=mistake))
            if variant == got and variant != expected:
                raise CheckFailed(f"case '{name}' (max_answer_length={max_answer_length}): your answer {got!r} is not "
                                  f"the best: {why}.")
        if expected == "":
            raise CheckFailed(f"case '{name}': no window has a legal span (no token is in the context), so the "
                              f"answer is '' (yours is {got!r}).")
        raise CheckFailed(f"case '{name}' (max_answer_length={max_answer_length}): your answer {got!r} is not the "
                          f"text of the best legal span over all windows.")
    passed("best_answer")
