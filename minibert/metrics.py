"""Metrics for the fine-tuning lessons (07-10): classification, similarity scores, named entities, and SQuAD answers.

What it does:
- `accuracy`, `f1_binary` and `f1_macro`: for sentence (pair) classification, on lists, tensors or arrays of labels,
  one per example. Inputs that would quietly score 0 are refused with a message saying what to pass instead: logits
  or probabilities instead of labels, 2-D arrays, unpaired lengths, string labels against numbers.
- `pearson`, `spearman` and `mean_squared_error`: for a similarity score per pair (STS-B's metrics, lesson 08), on
  lists, tensors or arrays of numbers; ties share their mean rank, as in `scipy.stats.spearmanr`.
- `entity_spans(tags)`: the entities of one BIO tag sequence, read the way CoNLL's `conlleval` script (and `seqeval`
  in its default mode) reads them: an I- tag after O, or after a tag of another type, starts a new entity, and a change
  of type ends one. `entity_prf(true_seqs, pred_seqs)`: entity-level precision, recall and F1 (micro-averaged, and
  per type): a predicted entity counts only if its type, start and end are all right. Same numbers as
  `seqeval.metrics.classification_report` without `mode="strict"` (the tests compare them on thousands of cases).
- `squad_normalize`, `squad_exact_match`, `squad_f1`, `squad_evaluate(predictions, examples)`: the official SQuAD v1.1
  evaluation: lowercase, remove punctuation, the articles a/an/the and extra whitespace, then exact match and
  bag-of-words F1, each the best over the gold answers, averaged over questions; reported as fractions (0-1), like
  every other score of the course (the official script and the papers print percent: 88.5 there is 0.885 here).
  `chinese=True` (for CMRC2018) counts each CJK character as a word and also removes Chinese punctuation, so that a
  Chinese answer is not one single "word". Predictions whose ids match no question, and gold answers given as one
  string instead of a list, are refused too.

What it leaves out: the strict IOB2/IOBES mode of seqeval, token-level NER metrics beyond accuracy, SQuAD v2's
no-answer metrics, and CMRC2018's own F1, which uses the longest common substring rather than a bag of characters.
"""

from __future__ import annotations

import numbers
import re
import string
import unicodedata
from collections import Counter

# ---------------------------------------------------------------------------------------------- classification


def _kind(value) -> str:
    """'strings', 'numbers' (ints, floats, bools, NumPy scalars), or the type's name: labels of different kinds never
    compare equal, so a metric on them is 0 whatever the model did."""
    if isinstance(value, str):
        return "strings"
    return "numbers" if isinstance(value, numbers.Number) else type(value).__name__


def _kinds(values) -> set[str]:
    return {_kind(v) for v in values}


def _examples(values, n: int = 3) -> str:
    """The first few distinct values, for an error message: ('neg', 'pos')."""
    seen = list(dict.fromkeys(v for v in values if isinstance(v, (str, numbers.Number))))
    return "(" + ", ".join(repr(v) for v in seen[:n]) + (", ..." if len(seen) > n else "") + ")"


def _shape_and_floating(x) -> tuple[tuple | None, bool]:
    """The shape of a tensor or array, or (rows, columns) of a list of lists (None for a flat list), and whether it
    holds floats."""
    if hasattr(x, "shape"):
        return tuple(x.shape), "float" in str(getattr(x, "dtype", ""))
    row = next((v for v in x if isinstance(v, (list, tuple)) or getattr(v, "ndim", 0) > 0), None)
    if row is None:
        return None, False
    row = row.tolist() if hasattr(row, "tolist") else list(row)
    return (len(x), len(row)), any(isinstance(v, float) for v in row)


def _is_fraction(value) -> bool:
    """A float that is not a whole number (0.73, nan): a score or a probability, never a class label."""
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and not float(value).is_integer()


def _labels(x, name: str, metric: str) -> list:
    """One label per example, as a flat Python list (from a list, tuple, NumPy array or tensor), or an error that
    says what was given and what to pass: a single value, a 2-D array, logits, or probabilities."""
    if isinstance(x, (str, bytes, dict, set, frozenset)):
        raise TypeError(f"{metric} got {name} as a {type(x).__name__}: pass a list (or tensor, or array) with one "
                        "label per example, in the same order as the other argument")
    if not hasattr(x, "__iter__") and not hasattr(x, "shape"):
        raise TypeError(f"{metric} got {name} = {x!r}: pass a list (or tensor, or array) with one label per example")
    if not hasattr(x, "shape"):
        x = list(x)  # generators too, read once
    shape, floating = _shape_and_floating(x)
    if shape == ():
        raise TypeError(f"{metric} got {name} = {x!r}, a single value: pass one label per example, e.g. a 1-D tensor")
    if shape is not None and len(shape) >= 2:
        if floating and shape[-1] != 1:
            hint = (f"these look like logits or probabilities (one score per class), not labels; pass "
                    f"{name}.argmax(-1)")
        elif len(shape) == 2 and shape[1] == 1:
            hint = (f"one column, where one label per example is expected; pass {name}.squeeze(-1) for a tensor or "
                    "array" + (" (if it holds the scores of a one-output head, threshold them, e.g. scores > 0)"
                               if floating else ""))
        else:
            hint = ("metrics take one label per example, as a flat sequence; for token labels, flatten both and drop "
                    f"the ignored positions (e.g. -100) first; for one-hot rows, pass {name}.argmax(-1)")
        raise ValueError(f"{metric} got {name} of shape {shape}: {hint}")
    values = x.tolist() if hasattr(x, "tolist") else x
    fraction = next((v for v in values if _is_fraction(v)), None)
    if fraction is not None:
        raise ValueError(f"{metric} got {name} holding non-integer values such as {fraction!r}: these look like "
                         "probabilities or scores, not labels; pass class ids, e.g. logits.argmax(-1) or "
                         "(probabilities > 0.5).long()")
    return values


def _pairs(y_true, y_pred, metric: str) -> tuple[list, list]:
    """y_true and y_pred checked and as flat lists: the same length, not empty, and labels of the same kind."""
    y_true, y_pred = _labels(y_true, "y_true", metric), _labels(y_pred, "y_pred", metric)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{metric} got {len(y_true)} labels in y_true but {len(y_pred)} in y_pred: they must be "
                         "paired, one prediction per example")
    if not y_true:
        raise ValueError(f"{metric} has no labels to score: y_true and y_pred are empty")
    true_kinds, pred_kinds = _kinds(y_true), _kinds(y_pred)
    if true_kinds.isdisjoint(pred_kinds) and true_kinds | pred_kinds <= {"strings", "numbers"}:
        raise ValueError(f"{metric} got y_true of {'/'.join(sorted(true_kinds))} {_examples(y_true)} but y_pred of "
                         f"{'/'.join(sorted(pred_kinds))} {_examples(y_pred)}: no prediction can match; map both to "
                         "the same labels first, e.g. class ids to names with [names[i] for i in y_pred]")
    return y_true, y_pred


def _class_kind_problem(classes, y_true: list, y_pred: list) -> str | None:
    """When some class is of another kind than every label (1 among 'neg'/'pos'), what the labels are; else None.
    Such a class is never found, so its F1 would be a plausible-looking 0."""
    kinds = _kinds(y_true) | _kinds(y_pred)
    for c in classes:
        if _kind(c) not in kinds and kinds | {_kind(c)} <= {"strings", "numbers"}:
            return f"y_true and y_pred hold {'/'.join(sorted(kinds))} {_examples(y_true + y_pred)}"
    return None


def accuracy(y_true, y_pred) -> float:
    """The fraction of predictions equal to the true label. Both take one label per example (lists, tensors or
    arrays); logits, probabilities and 2-D arrays are refused with a message that says what to pass."""
    y_true, y_pred = _pairs(y_true, y_pred, "accuracy")
    return sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true)


def _f1(tp: int, fp: int, fn: int) -> float:
    """2PR / (P + R) = 2tp / (2tp + fp + fn); 0 when there is nothing to find and nothing found."""
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _f1_of_class(y_true: list, y_pred: list, positive) -> float:
    """F1 of one class, on labels already checked by `_pairs`."""
    tp = sum(t == positive and p == positive for t, p in zip(y_true, y_pred))
    fp = sum(t != positive and p == positive for t, p in zip(y_true, y_pred))
    fn = sum(t == positive and p != positive for t, p in zip(y_true, y_pred))
    return _f1(tp, fp, fn)


def f1_binary(y_true, y_pred, positive=1) -> float:
    """F1 of the positive class (GLUE's F1 for MRPC: 1 = paraphrase). With string labels, name the positive class:
    f1_binary(y_true, y_pred, positive="pos")."""
    y_true, y_pred = _pairs(y_true, y_pred, "f1_binary")
    labels = _class_kind_problem([positive], y_true, y_pred)
    if labels:
        raise ValueError(f"f1_binary got positive={positive!r} but {labels}: name the positive class as it appears "
                         f"in them, e.g. positive={next(iter(y_true))!r}")
    return _f1_of_class(y_true, y_pred, positive)


def f1_macro(y_true, y_pred, labels=None) -> float:
    """The mean over classes of each class's F1 (classes: `labels`, or all those seen in y_true and y_pred)."""
    y_true, y_pred = _pairs(y_true, y_pred, "f1_macro")
    labels = sorted(set(y_true) | set(y_pred)) if labels is None else list(labels)
    if not labels:
        raise ValueError("f1_macro got labels=[]: pass the classes to average over, e.g. range(num_labels), or None "
                         "for those seen in y_true and y_pred")
    problem = _class_kind_problem(labels, y_true, y_pred)
    if problem:
        raise ValueError(f"f1_macro got labels={labels!r} but {problem}: list the classes as they appear in them, or "
                         "pass labels=None for those seen")
    return sum(_f1_of_class(y_true, y_pred, c) for c in labels) / len(labels)


# ---------------------------------------------------------------------------------------------- similarity scores


def _scores(y_true, y_pred, metric: str) -> tuple[list[float], list[float]]:
    """Two paired lists of real numbers (a score per example), checked: the same length, at least two, no NaN."""
    pairs = []
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        shape, _ = _shape_and_floating(values)
        if shape is not None and len(shape) != 1:
            raise ValueError(f"{metric} takes one score per example, but {name} has shape {shape}: for a regression "
                             f"head's (N, 1) output pass output[:, 0]")
        values = [float(v) for v in values]
        if any(v != v for v in values):
            raise ValueError(f"{metric} got NaN in {name}: a diverged model? Check the loss before scoring")
        pairs.append(values)
    if len(pairs[0]) != len(pairs[1]):
        raise ValueError(f"{metric} got {len(pairs[0])} scores in y_true but {len(pairs[1])} in y_pred: they must be "
                         "paired, one prediction per example")
    if len(pairs[0]) < 2:
        raise ValueError(f"{metric} needs at least two examples to correlate, got {len(pairs[0])}")
    return pairs[0], pairs[1]


def _correlation(x: list[float], y: list[float]) -> float:
    """Pearson's r = cov(x, y) / (std x std y); 0 when either side is constant (scipy says NaN: nothing to read)."""
    if min(x) == max(x) or min(y) == max(y):
        return 0.0
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else 0.0


def _ranks(x: list[float]) -> list[float]:
    """1-based ranks; tied values share the mean of their ranks (1, 2.5, 2.5, 4)."""
    order = sorted(range(len(x)), key=x.__getitem__)
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(y_true, y_pred) -> float:
    """Pearson's correlation of predicted and true scores (-1..1): how well a straight line maps one to the other.
    GLUE scores STS-B with it and with `spearman`."""
    return _correlation(*_scores(y_true, y_pred, "pearson"))


def spearman(y_true, y_pred) -> float:
    """Spearman's correlation (-1..1): Pearson's on the ranks, so only the order matters: 1 when the predictions
    sort the pairs exactly as the gold scores do. The BERT paper reports it for STS-B."""
    y_true, y_pred = _scores(y_true, y_pred, "spearman")
    return _correlation(_ranks(y_true), _ranks(y_pred))


def mean_squared_error(y_true, y_pred) -> float:
    """The mean of (prediction - truth)^2: the regression head's loss."""
    y_true, y_pred = _scores(y_true, y_pred, "mean_squared_error")
    return sum((p - t) ** 2 for t, p in zip(y_true, y_pred)) / len(y_true)


# ---------------------------------------------------------------------------------------------- named entities


def _split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''); a bare 'B' or 'I' -> ('B', '_'), as seqeval reads them."""
    if not isinstance(tag, str) or not tag:
        raise ValueError(f"a tag must be a non-empty string such as 'O', 'B-PER' or 'I-PER', got {tag!r}")
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    if prefix not in ("B", "I", "E", "S") or len(prefix) != 1:
        raise ValueError(f"tag {tag!r} is not a BIO tag: use 'O', or 'B-' / 'I-' followed by the entity type")
    return prefix, kind or "_"


def _ends(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """Does the entity that the previous tag was in end before the current tag? (conlleval's endOfChunk)"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != cur_type  # B-PER I-LOC: the type changes, PER ends


def _starts(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """Does an entity start at the current tag? (conlleval's startOfChunk)"""
    if cur in ("B", "S"):
        return True
    if cur in ("I", "E") and prev in ("O", "E", "S"):
        return True  # O I-PER: an I- tag with nothing to continue starts an entity (conlleval's lenient reading)
    return cur != "O" and prev_type != cur_type  # B-PER I-LOC: the type changes, LOC starts


def entity_spans(tags) -> list[tuple[str, int, int]]:
    """The entities of one tag sequence as (type, start, end), end inclusive: ['B-PER', 'I-PER', 'O', 'I-LOC'] ->
    [('PER', 0, 1), ('LOC', 3, 3)]. Also reads IOBES tags (E- ends, S- is a one-word entity), as conlleval does."""
    if isinstance(tags, str):
        raise TypeError("tags must be a list of tags such as ['B-PER', 'I-PER', 'O'], not one string")
    spans, start = [], None
    prev, prev_type = "O", ""
    for i, tag in enumerate([*tags, "O"]):  # the extra O closes an entity that runs to the end
        cur, cur_type = _split_tag(tag)
        if start is not None and _ends(prev, prev_type, cur, cur_type):
            spans.append((prev_type, start, i - 1))
            start = None
        if _starts(prev, prev_type, cur, cur_type):
            start = i
        prev, prev_type = cur, cur_type
    return spans


def entity_prf(true_seqs, pred_seqs) -> dict:
    """Entity-level scores over sentences: {"precision", "recall", "f1", "n_true", "n_pred", "n_correct",
    "per_type": {type: {"precision", "recall", "f1", "support"}}}. An entity is right only when its type, first and
    last word all match. Scores with nothing to divide by are 0 (seqeval warns and returns 0 too)."""
    for seqs in (true_seqs, pred_seqs):
        if isinstance(seqs, (list, tuple)) and seqs and isinstance(seqs[0], str):
            raise TypeError("entity_prf takes a list of sentences, each a list of tags: wrap one sentence as [tags]")
    true_seqs, pred_seqs = list(true_seqs), list(pred_seqs)
    if len(true_seqs) != len(pred_seqs):
        raise ValueError(f"{len(true_seqs)} true sentences but {len(pred_seqs)} predicted ones")
    gold, found = set(), set()
    for n, (t, p) in enumerate(zip(true_seqs, pred_seqs)):
        if len(t) != len(p):
            raise ValueError(f"sentence {n} has {len(t)} true tags but {len(p)} predicted tags: give one tag per word")
        gold.update((n, *span) for span in entity_spans(t))
        found.update((n, *span) for span in entity_spans(p))
    right = gold & found
    per_type = {}
    for kind in sorted({e[1] for e in gold | found}):
        g = sum(e[1] == kind for e in gold)
        f = sum(e[1] == kind for e in found)
        r = sum(e[1] == kind for e in right)
        per_type[kind] = {"precision": r / f if f else 0.0, "recall": r / g if g else 0.0,
                          "f1": _f1(r, f - r, g - r), "support": g}
    return {"precision": len(right) / len(found) if found else 0.0,
            "recall": len(right) / len(gold) if gold else 0.0,
            "f1": _f1(len(right), len(found) - len(right), len(gold) - len(right)),
            "n_true": len(gold), "n_pred": len(found), "n_correct": len(right), "per_type": per_type}


# ---------------------------------------------------------------------------------------------- SQuAD

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def _is_cjk(ch: str) -> bool:
    from minibert.wordpiece import is_chinese_char

    return is_chinese_char(ch)


def squad_normalize(text: str, chinese: bool = False) -> str:
    """The official SQuAD v1.1 normalization: lowercase, drop ASCII punctuation, drop the words a, an, the, and
    collapse whitespace. `chinese=True` also drops all Unicode punctuation (，。「」...) and puts spaces around CJK
    characters, so that each one is a word."""
    if not isinstance(text, str):
        raise TypeError(f"squad_normalize takes an answer as a str, got {type(text).__name__} {text!r:.60}: pass one "
                        "answer text (for several gold answers, score each one)")
    text = text.lower()
    if chinese:
        text = "".join(" " if unicodedata.category(c).startswith("P") else f" {c} " if _is_cjk(c) else c
                       for c in text)
    text = "".join(c for c in text if c not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def squad_exact_match(prediction: str, truth: str, chinese: bool = False) -> float:
    """1.0 when the two are equal after normalization, else 0.0."""
    return float(squad_normalize(prediction, chinese) == squad_normalize(truth, chinese))


def squad_f1(prediction: str, truth: str, chinese: bool = False) -> float:
    """F1 between the bags of (normalized) words of the prediction and of the true answer."""
    pred, gold = squad_normalize(prediction, chinese).split(), squad_normalize(truth, chinese).split()
    same = sum((Counter(pred) & Counter(gold)).values())  # words in common, each counted as often as in both
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_evaluate(predictions: dict[str, str], examples, chinese: bool = False) -> dict[str, float]:
    """{"exact_match", "f1"} as fractions from 0 to 1 (the official script's percent / 100), each the best over an
    example's gold answers, averaged over `examples` (records with "id" and "answers"). A question without a
    prediction scores 0, as in the official script, so `{}` scores the empty answer everywhere; but predictions none
    of whose ids is an example's id are refused."""
    if not isinstance(predictions, dict):
        raise TypeError("predictions must be a dict {example id: predicted answer text}")
    if isinstance(examples, dict):
        raise TypeError("examples must be a list of records with 'id' and 'answers', got one dict: wrap one example "
                        "as [example]")
    examples = list(examples)
    if predictions and examples and not any(example["id"] in predictions for example in examples):
        raise ValueError(f"squad_evaluate got {len(predictions)} predictions but none of their ids is the id of one "
                         f"of the {len(examples)} examples (prediction ids such as {next(iter(predictions))!r}, "
                         f"example ids such as {examples[0]['id']!r}): key each prediction by its example's 'id'")
    em = f1 = 0.0
    n = 0
    for example in examples:
        truths = example["answers"]["text"]
        if isinstance(truths, str):
            raise ValueError(f"example {example['id']!r} has answers['text'] = {truths!r:.60}, one str: it must be a "
                             f"list of gold answers, e.g. [{truths!r:.60}]")
        truths = list(truths)
        if not truths:
            raise ValueError(f"example {example['id']!r} has no gold answer: SQuAD v1.1 scoring needs at least one")
        prediction = predictions.get(example["id"], "")
        if not isinstance(prediction, str):
            raise TypeError(f"the prediction for example {example['id']!r} is a {type(prediction).__name__}, not a "
                            "str: predictions map each id to one answer text (take the best of n-best answers)")
        em += max(squad_exact_match(prediction, t, chinese) for t in truths)
        f1 += max(squad_f1(prediction, t, chinese) for t in truths)
        n += 1
    if n == 0:
        raise ValueError("no examples to score")
    return {"exact_match": em / n, "f1": f1 / n}
