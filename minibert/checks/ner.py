"""Checkers for the exercises of lesson 09 (NER): word labels on the first sub-word, the entities of BIO tags, and
their entity-level scores.

Each checker runs the learner's code on inputs it makes, compares with minibert's own, and raises `CheckFailed` at the
first difference, with a hint for the usual mistakes, without printing the expected answer.
"""

from __future__ import annotations

import math
import random

from minibert.checks import CheckFailed, passed, reports_stubs
from minibert.finetuning_data import align_labels
from minibert.metrics import entity_prf, entity_spans
from minibert.model import IGNORE_INDEX

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
