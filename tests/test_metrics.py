"""Metrics (lessons 07-10): classification scores, entity-level NER scores against seqeval, and SQuAD EM/F1."""

import random
import warnings

import numpy as np
import pytest
import torch

from minibert import data
from minibert.metrics import (
    accuracy,
    entity_prf,
    entity_spans,
    f1_binary,
    f1_macro,
    squad_evaluate,
    squad_exact_match,
    squad_f1,
    squad_normalize,
)

# ------------------------------------------------------------------------------------------ classification


def test_accuracy_and_f1_by_hand():
    y_true = [1, 1, 0, 0, 1]
    y_pred = [1, 0, 0, 1, 1]
    assert accuracy(y_true, y_pred) == pytest.approx(3 / 5)
    # positive class: tp 2, fp 1, fn 1 -> P = R = 2/3
    assert f1_binary(y_true, y_pred) == pytest.approx(2 / 3)
    # class 0: tp 1, fp 1, fn 1 -> 1/2; macro = (2/3 + 1/2) / 2
    assert f1_macro(y_true, y_pred) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert accuracy(torch.tensor(y_true), torch.tensor(y_pred)) == pytest.approx(0.6)
    assert f1_binary([0, 0], [0, 0]) == 0.0  # nothing to find, nothing found


def test_classification_metrics_refuse_unpaired_inputs():
    with pytest.raises(ValueError, match="paired"):
        accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])


def test_classification_metrics_take_lists_tensors_and_arrays_alike():
    """Every container of one label per example gives the same number, including float labels that are whole."""
    y_true, y_pred = [1, 1, 0, 2, 1], [1, 0, 0, 2, 2]
    forms = [lambda x: x, tuple, torch.tensor, np.array, lambda x: torch.tensor(x, dtype=torch.float32),
             lambda x: (v for v in x), lambda x: [np.int64(v) for v in x]]
    for make_true in forms:
        for make_pred in forms:
            assert accuracy(make_true(y_true), make_pred(y_pred)) == 3 / 5
            assert f1_binary(make_true(y_true), make_pred(y_pred)) == pytest.approx(f1_binary(y_true, y_pred))
            assert f1_macro(make_true(y_true), make_pred(y_pred)) == f1_macro(y_true, y_pred)
    assert f1_binary(["pos", "neg", "pos"], ["pos", "pos", "neg"], positive="pos") == 0.5
    assert f1_macro(["pos", "neg"], ["pos", "pos"]) == f1_macro([1, 0], [1, 1])
    assert f1_macro([0, 0], [0, 0], labels=range(3)) == pytest.approx(1 / 3)  # unseen classes count as F1 0
    assert accuracy([True, False], [1, 0]) == 1.0


@pytest.mark.parametrize("metric", [accuracy, f1_binary, f1_macro])
def test_classification_metrics_refuse_logits_columns_and_2d_inputs(metric):
    """Shapes that used to score a plausible 0.0: each is refused with what was given and what to pass."""
    labels = torch.tensor([1, 0, 1, 1])
    name = metric.__name__
    with pytest.raises(ValueError, match=rf"{name} got y_pred of shape \(4, 2\): these look like logits.*"
                                         r"y_pred\.argmax\(-1\)"):
        metric(labels, torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"y_true of shape \(4, 1\): one column.*squeeze\(-1\)"):
        metric(labels.unsqueeze(1), labels.tolist())  # a (N, 1) tensor and a list
    with pytest.raises(ValueError, match=r"shape \(4, 1\).*threshold"):
        metric(labels, torch.randn(4, 1))  # the scores of a one-output head
    with pytest.raises(ValueError, match=r"shape \(2, 2\): metrics take one label per example.*flatten"):
        metric(labels.view(2, 2), labels.view(2, 2))  # token labels
    with pytest.raises(ValueError, match=r"shape \(4, 2\)"):
        metric(np.eye(2, dtype=np.int64)[[1, 0, 1, 1]], labels)  # one-hot rows
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
        metric([[1], [0]], [1, 0])  # a list of lists
    with pytest.raises(ValueError, match=r"shape \(4, 3, 2\): these look like logits"):
        metric(labels, torch.randn(4, 3, 2))
    with pytest.raises(ValueError, match="non-integer values such as 0.25: these look like probabilities"):
        metric(labels, [0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ValueError, match="non-integer values such as nan"):
        metric(labels, [float("nan")] * 4)
    with pytest.raises(TypeError, match="a single value"):
        metric(torch.tensor(1), [1])
    with pytest.raises(TypeError, match="as a str"):
        metric("1011", "1011")
    with pytest.raises(TypeError, match="as a set"):
        metric({1, 0}, [1, 0])
    with pytest.raises(ValueError, match=f"{name} got 4 labels in y_true but 3 in y_pred: they must be paired"):
        metric(labels, labels[:3])


@pytest.mark.parametrize("metric", [accuracy, f1_binary, f1_macro])
def test_classification_metrics_refuse_string_labels_against_numbers(metric):
    with pytest.raises(ValueError, match=r"y_true of strings \('pos', 'neg'\) but y_pred of numbers \(1, 0\)"):
        metric(["pos", "neg", "pos"], [1, 0, 0])
    with pytest.raises(ValueError, match="y_true of numbers"):
        metric(torch.tensor([1, 0]), ["pos", "neg"])


def test_f1_refuses_a_class_that_cannot_be_among_the_labels():
    with pytest.raises(ValueError, match=r"f1_binary got positive=1 but y_true and y_pred hold strings.*"
                                         r"positive='pos'"):
        f1_binary(["pos", "neg", "pos"], ["pos", "pos", "neg"])
    with pytest.raises(ValueError, match=r"f1_macro got labels=\[0, 1\] but y_true and y_pred hold strings"):
        f1_macro(["pos", "neg"], ["neg", "neg"], labels=range(2))
    with pytest.raises(ValueError, match=r"labels=\[\]"):
        f1_macro([1, 0], [1, 1], labels=[])


# ------------------------------------------------------------------------------------------ entities


@pytest.mark.parametrize("tags, spans", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 1), ("LOC", 3, 3)]),
    (["I-PER", "I-PER", "O"], [("PER", 0, 1)]),  # an I- tag after O starts an entity (conlleval)
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 0), ("LOC", 1, 2)]),  # a change of type ends one and starts another
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 2)]),  # B- always starts a new entity
    (["O", "I-ORG"], [("ORG", 1, 1)]),  # an entity that runs to the end
    (["B-ORG", "I-ORG", "I-PER", "O", "I-PER"], [("ORG", 0, 1), ("PER", 2, 2), ("PER", 4, 4)]),
    (["B-creative-work", "I-creative-work"], [("creative-work", 0, 1)]),  # WNUT types with dashes
    (["O", "O"], []),
    ([], []),
])
def test_entity_spans_by_hand(tags, spans):
    assert entity_spans(tags) == spans


def test_entity_prf_by_hand():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    s = entity_prf(true, pred)
    # true: PER, LOC, ORG; predicted: PER, ORG, LOC (a different one): 2 right
    assert (s["n_true"], s["n_pred"], s["n_correct"]) == (3, 3, 2)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # a span with the right type but the wrong end is wrong
    assert entity_prf([["B-PER", "I-PER"]], [["B-PER", "O"]])["f1"] == 0.0
    assert entity_prf([["O"]], [["O"]])["f1"] == 0.0


def test_entity_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="not a BIO tag"):
        entity_spans(["PER"])
    with pytest.raises(ValueError, match="one tag per word"):
        entity_prf([["O", "O"]], [["O"]])
    with pytest.raises(TypeError, match="list of sentences"):
        entity_prf(["O", "B-PER"], ["O", "B-PER"])
    with pytest.raises(TypeError, match="list of sentences"):
        entity_prf([["B-PER", "O"]], ["B-PER", "O"])  # predictions flat, truth by sentence


def _corrupt(tags, kinds, rng, rate):
    """Random edits that make every kind of tagger mistake: wrong type, B<->I, dropped or invented entities."""
    out = list(tags)
    for i in range(len(out)):
        if rng.random() < rate:
            out[i] = rng.choice(["O", f"B-{rng.choice(kinds)}", f"I-{rng.choice(kinds)}"])
    return out


@pytest.mark.parametrize("name", ["conll2003", "wnut17"])
def test_entity_prf_matches_seqeval_on_real_tags_with_corruptions(data_dir, name):
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities

    sentences = [r["ner_tags"] for r in data.load_dataset(name, "validation")[:600]]
    kinds = sorted({t[2:] for s in sentences for t in s if t != "O"})
    rng = random.Random(0)
    for rate in (0.02, 0.1, 0.3):
        pred = [_corrupt(s, kinds, rng, rate) for s in sentences]
        for s in pred[:300]:  # entity by entity, sentence by sentence
            assert entity_spans(s) == get_entities(s)
        ours = entity_prf(sentences, pred)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert ours["precision"] == pytest.approx(precision_score(sentences, pred))
            assert ours["recall"] == pytest.approx(recall_score(sentences, pred))
            assert ours["f1"] == pytest.approx(f1_score(sentences, pred))
            per_type = f1_score(sentences, pred, average=None)
        assert [ours["per_type"][k]["f1"] for k in sorted(ours["per_type"])] == pytest.approx(list(per_type))


def test_entity_spans_match_seqeval_on_random_tag_soup():
    """Any sequence at all, including IOBES tags and I- after another type, reads as seqeval reads it."""
    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(1)
    tags = ["O"] + [f"{p}-{k}" for p in "BIES" for k in ("PER", "LOC")]
    for _ in range(3000):
        seq = [rng.choice(tags) for _ in range(rng.randint(0, 12))]
        assert entity_spans(seq) == get_entities(seq), seq


# ------------------------------------------------------------------------------------------ SQuAD


def test_squad_normalize_by_hand():
    assert squad_normalize("The  Denver Broncos!") == "denver broncos"
    assert squad_normalize("an apple, a pear and the end.") == "apple pear and end"
    assert squad_normalize("theatre") == "theatre"  # articles only as whole words
    assert squad_normalize("  1,000  ") == "1000"
    assert squad_normalize("“Quoted”") == "“quoted”"  # the official script removes ASCII punctuation only


def test_squad_em_and_f1_by_hand():
    assert squad_exact_match("the Broncos", "Broncos.") == 1.0
    assert squad_exact_match("Denver Broncos", "Broncos") == 0.0
    # prediction 'denver broncos', truth 'broncos': P = 1/2, R = 1 -> F1 = 2/3
    assert squad_f1("Denver Broncos", "Broncos") == pytest.approx(2 / 3)
    assert squad_f1("Santa Clara", "Levi's Stadium") == 0.0
    assert squad_f1("", "anything") == 0.0
    # repeated words count as often as they appear in both: common = {a:1 ... } after normalization
    assert squad_f1("new york new york", "new york") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))


def test_squad_evaluate_takes_the_best_gold_answer_and_averages_as_a_fraction():
    examples = [{"id": "q1", "answers": {"text": ["Denver Broncos", "Broncos"], "answer_start": [0, 7]}},
                {"id": "q2", "answers": {"text": ["Santa Clara, California"], "answer_start": [0]}},
                {"id": "q3", "answers": {"text": ["1990"], "answer_start": [0]}}]
    predictions = {"q1": "broncos", "q2": "Santa Clara"}  # q3 has no prediction: it scores 0
    result = squad_evaluate(predictions, examples)
    assert result["exact_match"] == pytest.approx(1 / 3)  # on 0-1, as accuracy and entity F1 (issue 14.6)
    f1_q2 = 2 * 1 * (2 / 3) / (1 + 2 / 3)
    assert result["f1"] == pytest.approx((1 + f1_q2) / 3)


def test_squad_evaluate_refuses_predictions_that_match_no_question():
    examples = [{"id": "56be4db0", "answers": {"text": ["Denver Broncos"], "answer_start": [0]}},
                {"id": "56be4db1", "answers": {"text": ["1990"], "answer_start": [0]}}]
    with pytest.raises(ValueError, match=r"got 2 predictions but none of their ids is the id of one of the 2 examples "
                                         r"\(prediction ids such as 0, example ids such as '56be4db0'\)"):
        squad_evaluate({0: "Denver Broncos", 1: "1990"}, examples)  # keyed by position, not by id
    assert squad_evaluate({}, examples) == {"exact_match": 0.0, "f1": 0.0}  # the empty answer everywhere is valid
    partly = squad_evaluate({"56be4db0": "Broncos", "other": "x"}, examples)  # unanswered questions score 0
    assert partly["f1"] == pytest.approx((2 / 3) / 2)
    assert squad_evaluate({"56be4db0": "Denver Broncos"}, iter(examples))["exact_match"] == 0.5  # any iterable


def test_squad_evaluate_refuses_answers_of_the_wrong_type():
    one_string = [{"id": "q", "answers": {"text": "Denver Broncos", "answer_start": 0}}]
    with pytest.raises(ValueError, match="one str: it must be a list of gold answers"):
        squad_evaluate({"q": "D"}, one_string)  # would have scored the letters of the answer
    examples = [{"id": "q", "answers": {"text": ["Denver Broncos"], "answer_start": [0]}}]
    with pytest.raises(TypeError, match="the prediction for example 'q' is a list, not a str"):
        squad_evaluate({"q": ["Denver Broncos", "Broncos"]}, examples)
    with pytest.raises(TypeError, match="got one dict"):
        squad_evaluate({"q": "Broncos"}, examples[0])
    with pytest.raises(TypeError, match="squad_normalize takes an answer as a str, got NoneType"):
        squad_f1(None, "Broncos")


def test_squad_chinese_counts_characters():
    # one "word" for the official script, characters with chinese=True
    assert squad_f1("北京大学", "北京") == 0.0
    assert squad_f1("北京大学", "北京", chinese=True) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert squad_exact_match("北京。", "北京", chinese=True) == 1.0
    assert squad_normalize("2008年北京奥运会", chinese=True) == "2008 年 北 京 奥 运 会"
