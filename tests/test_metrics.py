"""Metrics (lessons 07-10): classification scores, entity-level NER scores against seqeval, and SQuAD EM/F1."""

import random
import warnings

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


def test_squad_evaluate_takes_the_best_gold_answer_and_averages_in_percent():
    examples = [{"id": "q1", "answers": {"text": ["Denver Broncos", "Broncos"], "answer_start": [0, 7]}},
                {"id": "q2", "answers": {"text": ["Santa Clara, California"], "answer_start": [0]}},
                {"id": "q3", "answers": {"text": ["1990"], "answer_start": [0]}}]
    predictions = {"q1": "broncos", "q2": "Santa Clara"}  # q3 has no prediction: it scores 0
    result = squad_evaluate(predictions, examples)
    assert result["exact_match"] == pytest.approx(100 / 3)
    f1_q2 = 2 * 1 * (2 / 3) / (1 + 2 / 3)
    assert result["f1"] == pytest.approx(100 * (1 + f1_q2) / 3)


def test_squad_chinese_counts_characters():
    # one "word" for the official script, characters with chinese=True
    assert squad_f1("北京大学", "北京") == 0.0
    assert squad_f1("北京大学", "北京", chinese=True) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert squad_exact_match("北京。", "北京", chinese=True) == 1.0
    assert squad_normalize("2008年北京奥运会", chinese=True) == "2008 年 北 京 奥 运 会"
