"""Fine-tuning (lessons 07-10): heads, data preparation, answers, checkpoints, feature-based mode, quick training
runs that must beat their baselines, the CLI, and the exercise checkers."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minibert import data
from minibert.checks import CheckFailed
from minibert.finetuning import baseline_metrics, evaluate, finetune
from minibert.finetuning_data import (
    align_labels,
    best_span,
    collate,
    encode_classification,
    encode_ner,
    postprocess_qa,
    prepare_qa_features,
)
from minibert.heads import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    VocabMismatchError,
    check_vocab,
)
from minibert.model import BertConfig, BertForPreTraining
from minibert.optimizer import build_optimizer
from minibert.tasks import TASKS, compare_starts, task_labels, task_records
from minibert.tokenizer import WordPieceTokenizer
from minibert.training import Trainer, TrainingConfig

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=128)
CONLL = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The machines that run these tests are shared: one thread per process avoids OpenMP threads spinning while
    they wait for a busy core (which made the training runs ten times slower), and gives the same numbers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok(data_dir):
    return WordPieceTokenizer.from_vocab_file(data.vocab_file("bert-base-uncased"))


@pytest.fixture(scope="module")
def zh_tok(data_dir):
    return WordPieceTokenizer.from_vocab_file(data.vocab_file("bert-base-chinese"), lowercase=False)


def config_for(tok, **overrides):
    return BertConfig(vocab_size=len(tok), **{**TINY, **overrides})


def train_config(**kwargs):
    defaults = dict(batch_size=32, lr=1e-3, progress=False, device="cpu", log_every=50, seed=0)
    return TrainingConfig(**{**defaults, **kwargs})


# ------------------------------------------------------------------------------------------ label alignment


def test_align_labels_first_subword_gets_the_label():
    labels = {"O": 0, "B-PER": 1, "I-PER": 2}
    assert align_labels([None, 0, 0, 1, 2, 2, None], ["B-PER", "O", "I-PER"], labels) == [
        -100, 1, -100, 0, 2, -100, -100]
    with pytest.raises(ValueError, match="'B-LOC'.*not in the label set"):
        align_labels([None, 0, None], ["B-LOC"], labels)


def test_encode_ner_english_subwords(tok):
    record = {"tokens": ["Johanson", "visited", "U.S.", "bases", "."], "ner_tags": ["B-PER", "O", "B-LOC", "O", "O"]}
    item = encode_ner([record], tok, CONLL).items[0]
    tokens = [tok.id_to_token[i] for i in item["input_ids"]]
    assert tokens == ["[CLS]", "johan", "##son", "visited", "u", ".", "s", ".", "bases", ".", "[SEP]"]
    names = [CONLL[y] if y >= 0 else None for y in item["labels"]]
    assert names == [None, "B-PER", None, "O", "B-LOC", None, None, None, "O", "O", None]
    assert item["words"] == [0, 1, 2, 3, 4]


def test_encode_ner_chinese_characters_one_word_each(zh_tok):
    record = {"tokens": list("张三在北京2008"),
              "ner_tags": ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O", "O", "O"]}
    item = encode_ner([record], zh_tok, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]).items[0]
    assert len(item["input_ids"]) == 2 + 9  # digits joined with spaces stay one token each
    assert item["labels"][1:-1] == [1, 2, 0, 3, 4, 0, 0, 0, 0]


def test_encode_ner_words_without_tokens_and_truncation(tok):
    record = {"tokens": ["Paris", "\u200b", "is", "nice", "Berlin", "too"],
              "ner_tags": ["B-LOC", "B-MISC", "O", "O", "B-LOC", "O"]}
    dataset = encode_ner([record], tok, CONLL, max_length=6)  # [CLS] paris is nice berlin [SEP]
    item = dataset.items[0]
    assert item["words"] == [0, 2, 3, 4]  # the zero-width space gives no token; 'too' was cut off
    assert [CONLL[y] for y in item["labels"] if y >= 0] == ["B-LOC", "O", "O", "B-LOC"]
    # evaluation gives the words without a token 'O'; a perfect model then misses exactly the B-MISC
    logits = [torch.full((len(item["input_ids"]), len(CONLL)), -5.0)]
    for t, y in enumerate(item["labels"]):
        if y >= 0:
            logits[0][t, y] = 5.0
    from minibert.finetuning import ner_metrics, predicted_word_tags

    tags = predicted_word_tags(dataset, logits)
    assert tags == [["B-LOC", "O", "O", "O", "B-LOC", "O"]]
    assert ner_metrics(dataset, tags)["recall"] == pytest.approx(2 / 3)


def test_ner_alignment_covers_every_word_of_real_data(tok, zh_tok):
    for name, t in (("conll2003", tok), ("wnut17", tok), ("weibo-ner", zh_tok)):
        records = data.load_dataset(name, "validation")[:300]
        labels = task_labels(TASKS[name], records, [])
        dataset = encode_ner(records, t, labels, max_length=512)
        for r, item in zip(records, dataset.items):
            assert item["words"] == sorted(set(item["words"]))  # one scored token per word, in order
            scored = [y for y in item["labels"] if y >= 0]
            assert [labels[y] for y in scored] == [r["ner_tags"][w] for w in item["words"]]
            missing = set(range(len(r["tokens"]))) - set(item["words"])
            assert all(t.tokenize(r["tokens"][w]) == [] for w in missing), name


def test_labels_outside_the_label_set_are_errors(tok):
    with pytest.raises(ValueError, match="record 1 has the tag 'B-FOO'"):
        encode_ner([{"tokens": ["a"], "ner_tags": ["O"]}, {"tokens": ["b"], "ner_tags": ["B-FOO"]}], tok, CONLL)
    records = [{"sentence": "good", "label": 1}, {"sentence": "bad", "label": 2}]
    with pytest.raises(ValueError, match="record 1 has label 2, outside the label set 0..1"):
        encode_classification(records, tok, num_labels=2)
    with pytest.raises(ValueError, match="-1"):
        encode_classification([{"sentence": "hidden", "label": -1}], tok, num_labels=2)
    with pytest.raises(KeyError, match="sentence2"):
        encode_classification(records, tok, text_keys=("sentence", "sentence2"))


def test_labels_out_of_range_given_to_a_head_are_named_not_an_index_error(tok):
    ids = torch.tensor([[tok.cls_id, 2000, tok.sep_id]] * 2)  # (2, 3)
    classifier = BertForSequenceClassification(config_for(tok), num_labels=2)
    with pytest.raises(ValueError, match=r"labels holds 5, outside 0..1 \(this head has 2 classes\)"):
        classifier(ids, labels=torch.tensor([0, 5]))
    tagger = BertForTokenClassification(config_for(tok), num_labels=9)
    with pytest.raises(ValueError, match=r"labels holds 9, outside 0..8"):
        tagger(ids, labels=torch.tensor([[-100, 9, -100], [-100, 0, -100]]))  # -100 (not scored) is fine
    qa = BertForQuestionAnswering(config_for(tok))
    with pytest.raises(ValueError, match=r"end_positions holds 3, outside 0..2 \(token positions in windows of 3\)"):
        qa(ids, start_positions=torch.tensor([0, 1]), end_positions=torch.tensor([3, 1]))


def test_baseline_metrics_on_an_empty_dataset_says_so(tok):
    empty = encode_classification([], tok, num_labels=2)
    with pytest.raises(ValueError, match="empty held-out dataset"):
        baseline_metrics(empty)


# ------------------------------------------------------------------------------------------ classification data


def test_encode_classification_pairs_and_dynamic_padding(tok):
    records = data.load_dataset("mrpc", "validation")[:5]
    dataset = encode_classification(records, tok, 64, ("sentence1", "sentence2"))
    for r, item in zip(records, dataset.items):
        assert item["input_ids"] == tok.encode(r["sentence1"], r["sentence2"], max_length=64).ids
        assert item["token_type_ids"][-1] == 1 and item["token_type_ids"][0] == 0
    batch = dataset.collate(dataset.items)
    longest = max(len(it["input_ids"]) for it in dataset.items)
    assert batch["input_ids"].shape == (5, longest)  # padded to the batch's longest, not to max_length
    assert batch["attention_mask"].sum().item() == sum(len(it["input_ids"]) for it in dataset.items)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    ner = collate([{"input_ids": [1, 2], "token_type_ids": [0, 0], "labels": [-100, 3], "words": [0]}], pad_id=0)
    assert ner["labels"].tolist() == [[-100, 3]] and "words" not in ner


# ------------------------------------------------------------------------------------------ QA features


def _check_features(features, max_length):
    """Every answer-bearing window maps back through the offsets to the answer text (or to the token(s) that hold
    it, when the answer starts or ends inside a token), and every answer lies in at least one window."""
    answered, mid_token = set(), 0
    for f in features.items:
        assert len(f["input_ids"]) <= max_length
        record = features.records[f["example"]]
        if f["start_positions"] == 0:
            assert f["end_positions"] == 0
            continue
        s, e = f["start_positions"], f["end_positions"]
        assert f["offsets"][s] is not None and f["offsets"][e] is not None and s <= e
        text, start = record["answers"]["text"][0], record["answers"]["answer_start"][0]
        a, b = f["offsets"][s][0], f["offsets"][e][1]
        if record["context"][a:b] != text:  # only when the answer starts or ends inside a token
            end = start + len(text)
            assert a == start or a < start < f["offsets"][s][1]
            assert b == end or f["offsets"][e][0] < end < b
            mid_token += 1
        answered.add(f["example"])
    assert answered == set(range(len(features.records))) - {n for n, _ in features.skipped}
    return mid_token


@pytest.mark.parametrize("max_length, stride", [(384, 128), (96, 32)])
def test_qa_features_recover_every_answer_squad(tok, max_length, stride):
    records = data.load_dataset("squad", "validation")[:1500]
    features = prepare_qa_features(records, tok, max_length, stride)
    mid_token = _check_features(features, max_length)
    assert mid_token < 0.02 * len(features)  # '8' inside '18': a token cannot be split
    if max_length == 96:
        assert len(features) > 2 * len(records)  # long contexts do get several windows
        by_example = {}
        for f in features.items:
            by_example.setdefault(f["example"], []).append(f)
        windows = max(by_example.values(), key=len)
        first, second = windows[0]["offsets"], windows[1]["offsets"]
        context_first = [o for o in first if o is not None]
        context_second = [o for o in second if o is not None]
        assert context_first[-stride:] == context_second[:stride]  # consecutive windows share `stride` tokens


def test_qa_features_recover_every_answer_cmrc2018(zh_tok):
    records = data.load_dataset("cmrc2018", "validation")[:600]
    features = prepare_qa_features(records, zh_tok, 256, 64, verbose=False)
    _check_features(features, 256)
    assert features.chinese


def test_answers_not_in_their_context_are_counted_and_skipped(tok, capsys):
    good = {"id": "a", "context": "Paris is the capital of France.", "question": "What is the capital?",
            "answers": {"text": ["Paris"], "answer_start": [0]}}
    moved = {**good, "id": "b", "answers": {"text": ["France"], "answer_start": [3]}}
    absent = {**good, "id": "c", "answers": {"text": ["Berlin"], "answer_start": [-1]}}
    features = prepare_qa_features([good, moved, absent], tok, 64, 16)
    assert [n for n, _ in features.skipped] == [1, 2]
    assert {f["example"] for f in features.items} == {0}
    assert "2 of 3 examples have no usable answer; left out" in capsys.readouterr().out
    kept = prepare_qa_features([good, moved, absent], tok, 64, 16, training=False)  # evaluation keeps them all
    assert {f["example"] for f in kept.items} == {0, 1, 2} and len(kept.skipped) == 2
    real = prepare_qa_features(data.load_dataset("cmrc2018", "validation"), tok, 384, 128, verbose=False)
    assert len(real.skipped) == 3  # CMRC2018's dev set has three such questions


# ------------------------------------------------------------------------------------------ best span


def _brute_force(s, e, offsets, max_len):
    best = None
    for i in range(len(offsets)):
        for j in range(i, min(len(offsets), i + max_len)):
            if offsets[i] is not None and offsets[j] is not None:
                score = float(s[i] + e[j])
                if best is None or score > best[2]:
                    best = (i, j, score)
    return best


def test_best_span_is_the_best_legal_span():
    gen = torch.Generator().manual_seed(0)
    for trial in range(200):
        T = random.Random(trial).randint(1, 40)
        offsets = [None if random.Random(trial * 100 + t).random() < 0.3 else (t, t + 1) for t in range(T)]
        s, e = torch.randn(T, generator=gen), torch.randn(T, generator=gen)
        max_len = 1 + trial % 6
        got, expected = best_span(s, e, offsets, max_len), _brute_force(s, e, offsets, max_len)
        assert (got is None) == (expected is None)
        if got is not None:
            assert got[:2] == expected[:2] and got[2] == pytest.approx(expected[2])
            assert best_span(s, e, offsets, max_len, n_best=T) == got  # n-best over everything: the same
    # the n-best shortcut of the reference scripts can miss the best legal span; the full search cannot
    s, e = torch.tensor([9.0, 8.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 9.0, 1.0])
    offsets = [None, (0, 1), (1, 2), (2, 3)]
    assert best_span(s, e, offsets) == (1, 2, 17.0)
    assert best_span(s, e, offsets, n_best=1) is None  # top start is [CLS]: nothing legal among the top 1


def test_postprocess_takes_the_best_window(tok):
    record = {"id": "q", "context": "one two three four five six seven eight", "question": "which?",
              "answers": {"text": ["six"], "answer_start": [18]}}
    features = prepare_qa_features([record], tok, 10, 2, training=False)  # 10 tokens: several windows
    assert len(features) > 1
    starts = [torch.zeros(len(f["input_ids"])) for f in features.items]
    ends = [torch.zeros(len(f["input_ids"])) for f in features.items]
    last = features.items[-1]
    six = next(t for t, o in enumerate(last["offsets"]) if o and record["context"][o[0]:o[1]] == "six")
    starts[-1][six], ends[-1][six] = 5.0, 5.0
    assert postprocess_qa(features, starts, ends) == {"q": "six"}
    nothing = [torch.zeros(len(f["input_ids"])) for f in features.items]
    prediction = postprocess_qa(features, nothing, nothing, max_answer_length=1)
    assert prediction["q"] in record["context"].split()  # ties: still a legal one-token span


# ------------------------------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def pretraining_folder(tok, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("pretrained") / "checkpoint"
    BertForPreTraining(config_for(tok)).save_pretrained(folder, vocab_file=data.vocab_file("bert-base-uncased"))
    return folder


@pytest.mark.parametrize("cls, options, new", [
    (BertForSequenceClassification, {"num_labels": 3}, ["classifier.weight", "classifier.bias"]),
    (BertForTokenClassification, {"labels": CONLL}, ["classifier.weight", "classifier.bias"]),
    (BertForQuestionAnswering, {}, ["qa_outputs.weight", "qa_outputs.bias"]),
])
def test_heads_load_the_encoder_of_a_pretraining_folder(pretraining_folder, tok, cls, options, new, capsys):
    model = cls.from_pretrained(pretraining_folder, tokenizer=tok, **options)
    reference = BertForPreTraining.from_pretrained(pretraining_folder)
    for name, value in reference.bert.state_dict().items():
        torch.testing.assert_close(model.bert.state_dict()[name], value, rtol=0, atol=0)
    assert model.loading_info["new"] == new
    assert all(k.startswith("cls.") for k in model.loading_info["skipped"]) and model.loading_info["skipped"]
    out = capsys.readouterr().out
    assert "New, randomly initialised" in out and "pre-training heads" in out


def test_task_folders_round_trip_and_load_in_transformers(tok, tmp_path):
    import transformers

    batch = collate([{"input_ids": [2, 7, 9, 3], "token_type_ids": [0, 0, 1, 1]},
                     {"input_ids": [2, 5, 3], "token_type_ids": [0, 0, 0]}])
    torch.manual_seed(0)
    for cls, options in ((BertForSequenceClassification, {"labels": ["neg", "pos"]}),
                         (BertForTokenClassification, {"labels": CONLL}), (BertForQuestionAnswering, {})):
        model = cls(config_for(tok), **options).eval()
        folder = model.save_pretrained(tmp_path / cls.__name__)
        again = cls.from_pretrained(folder, verbose=False)
        assert again.loading_info == {"new": [], "skipped": []}
        assert getattr(again, "labels", None) == options.get("labels")
        theirs = getattr(transformers, cls.__name__).from_pretrained(folder).eval()
        with torch.no_grad():
            mine, back, hf = model(**batch), again(**batch), theirs(**batch)
        for name in ("logits",) if cls is not BertForQuestionAnswering else ("start_logits", "end_logits"):
            torch.testing.assert_close(getattr(back, name), getattr(mine, name))
            torch.testing.assert_close(getattr(hf, name), getattr(mine, name), atol=1e-5, rtol=1e-4)
    # another number of labels: the classifier is new, the encoder is kept
    other = BertForSequenceClassification.from_pretrained(tmp_path / "BertForSequenceClassification", num_labels=5,
                                                          verbose=False)
    assert other.num_labels == 5 and other.loading_info["skipped"] == ["classifier.bias", "classifier.weight"]


def test_vocab_mismatch_is_an_error(pretraining_folder, tok, zh_tok, tmp_path):
    with pytest.raises(VocabMismatchError, match="21128 tokens but the checkpoint's embedding table has "
                                                 "vocab_size=30522"):
        BertForSequenceClassification.from_pretrained(pretraining_folder, tokenizer=zh_tok)
    # same size, different tokens: caught through the folder's vocab.txt
    swapped = dict(tok.vocab)
    swapped["apple"], swapped["pear"] = tok.vocab["pear"], tok.vocab["apple"]
    with pytest.raises(VocabMismatchError, match="differs from .*vocab.txt at id"):
        check_vocab(BertForSequenceClassification.from_pretrained(pretraining_folder, verbose=False),
                    WordPieceTokenizer(swapped))
    from minibert.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(["finetune", "chnsenticorp", "--from", str(pretraining_folder), "--vocab", "bert-base-chinese",
              "--no-save", "--max-steps", "1"])
    said = str(stopped.value.code)  # the command line's advice is a flag, not Python (issue 14.8)
    assert "--vocab bert-base-chinese does not fit --from" in said and "21128 tokens" in said, said
    assert "To fix: drop --vocab (the checkpoint's own vocab.txt is then used)" in said and "from_vocab" not in said


# ------------------------------------------------------------------------------------------ feature-based mode


def test_feature_based_mode_trains_the_head_only(tok):
    torch.manual_seed(0)
    model = BertForTokenClassification(config_for(tok, num_hidden_layers=4), labels=CONLL, feature_based=True,
                                       last_n_layers=4)
    assert model.classifier.in_features == 4 * 32  # the last four hidden layers, concatenated
    assert not any(p.requires_grad for p in model.bert.parameters())
    assert model.num_parameters(trainable_only=True) == 4 * 32 * len(CONLL) + len(CONLL)
    optimizer = build_optimizer(model, 1e-3)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == model.num_parameters(True)
    records = data.load_dataset("conll2003", "validation")[:64]
    dataset = encode_ner(records, tok, CONLL, 64)
    before = {k: v.clone() for k, v in model.bert.state_dict().items()}
    trainer = Trainer(model, dataset, TrainingConfig(max_steps=3, batch_size=16, lr=1e-2, progress=False,
                                                     device="cpu"))
    trainer.train()
    assert model.training and not model.bert.training  # the frozen encoder keeps its dropout off
    assert all(p.grad is None for p in model.bert.parameters())
    for k, v in model.bert.state_dict().items():
        assert torch.equal(v, before[k]), k
    model.unfreeze_encoder()
    assert all(p.requires_grad for p in model.bert.parameters())
    with pytest.raises(ValueError, match="last_n_layers=4"):
        BertForTokenClassification(config_for(tok), labels=CONLL, last_n_layers=4)


# ------------------------------------------------------------------------------------------ quick training runs


def test_sst2_quick_run_beats_the_majority_class(tok):
    train = encode_classification(data.load_dataset("sst2", "train")[:2000], tok, 64)
    held_out = encode_classification(data.load_dataset("sst2", "validation"), tok, 64)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config_for(tok, hidden_size=64, num_attention_heads=2,
                                                     intermediate_size=256))
    result = finetune(model, train, held_out, train_config(), epochs=3)
    baseline = baseline_metrics(held_out, train)["accuracy"]
    assert result.best_metrics["accuracy"] > baseline + 0.1, (result.best_metrics, baseline)
    assert evaluate(model, held_out)["accuracy"] == pytest.approx(result.best_metrics["accuracy"])  # best restored
    evals = [r for r in result.history if "eval_accuracy" in r]
    assert [r["step"] for r in evals] == [63, 126, 189]  # one evaluation per epoch


def test_ner_quick_run_beats_all_o(tok):
    train = encode_ner(data.load_dataset("conll2003", "train")[:1000], tok, CONLL, 64)
    held_out = encode_ner(data.load_dataset("conll2003", "validation")[:300], tok, CONLL, 64)
    torch.manual_seed(0)
    model = BertForTokenClassification(config_for(tok, hidden_size=64, intermediate_size=256), labels=CONLL)
    result = finetune(model, train, held_out, train_config(), epochs=3)
    baseline = baseline_metrics(held_out)
    assert baseline["f1"] == 0.0
    assert result.best_metrics["f1"] > 0.15, result.best_metrics
    assert result.best_metrics["accuracy"] > baseline["accuracy"] + 0.02, (result.best_metrics, baseline)


def test_qa_quick_run_beats_the_empty_answer(tok):
    """A tiny encoder trained from scratch for seconds does not learn to read yet (that takes a pre-trained encoder);
    it learns which windows hold no answer ([CLS]), and its spans beat the empty answer, which scores 0."""
    records = data.load_dataset("squad", "validation")
    train = prepare_qa_features(records[:1000], tok, 128, 32)
    held_out = prepare_qa_features(records[-300:], tok, 128, 32, training=False)  # other articles
    torch.manual_seed(0)
    model = BertForQuestionAnswering(config_for(tok, hidden_size=64, intermediate_size=256))
    untrained = evaluate(model, held_out)
    result = finetune(model, train, held_out, train_config(lr=2e-3), epochs=1)
    baseline = baseline_metrics(held_out)
    assert baseline["f1"] == 0.0  # (one gold answer of these normalizes to '', so EM is 1/300)
    assert result.best_metrics["f1"] > baseline["f1"] + 0.02, result.best_metrics  # 2 points of F1, on 0-1
    assert result.best_metrics["loss"] < untrained["loss"] - 1.0, (result.best_metrics, untrained)


# ------------------------------------------------------------------------------------------ tasks and CLI


def test_task_records_carve_a_held_out_split_when_one_is_missing(data_dir, capsys):
    train, held_out = task_records("squad")  # SQuAD's train split is not in the course's offline data
    assert "not the published dev set" in capsys.readouterr().out
    assert not {r["context"] for r in train} & {r["context"] for r in held_out}
    assert len(train) + len(held_out) == 10570
    train, held_out = task_records("sst2")
    assert len(held_out) == 872


def test_task_records_can_split_one_split_even_when_the_others_exist(data_dir, capsys):
    """Quick mode's way to see the same records online (where SQuAD's train split exists) and offline."""
    train, held_out = task_records("sst2", only_split="validation")
    assert "'validation' split is used, as asked" in capsys.readouterr().out
    assert len(train) + len(held_out) == 872 and len(held_out) == round(0.2 * 872)
    full = data.load_dataset("sst2", "validation")
    assert sorted(r["sentence"] for r in train + held_out) == sorted(r["sentence"] for r in full)
    squad_train, squad_held = task_records("squad", only_split="validation")
    assert (squad_train, squad_held) == task_records("squad")  # offline: the same split either way
    with pytest.raises(KeyError, match="no-such-split"):
        task_records("sst2", only_split="no-such-split")


def test_cli_finetune_prints_dev_metrics(data_dir, tmp_path):
    env = {**os.environ, "MINIBERT_DATA": str(data_dir), "MINIBERT_QUICK": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "minibert", "finetune", "sst2", "--from", "random:tiny", "--set", "hidden_size=64",
           "--set", "num_attention_heads=2", "--max-steps", "4", "--train-limit", "256", "--eval-limit", "64",
           "--no-progress", "--out", str(tmp_path / "run")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "baseline (majority class): accuracy" in out.stdout
    assert "dev metrics (best accuracy, step 4 of 4): accuracy" in out.stdout
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(summary["dev"]) >= {"accuracy", "f1"}
    model = BertForSequenceClassification.from_pretrained(tmp_path / "run" / "best", verbose=False)
    assert model.labels == ["negative", "positive"]


def test_quick_mode_is_defined_once_and_the_command_line_reads_it(data_dir, capsys, monkeypatch):
    """Issue 14.5: the command line used 300 held-out NER sentences and 192-token QA windows where lesson 09 used 500
    and lesson 10 128; now both read minibert.finetuning.QUICK (test_notebooks checks that the lessons do)."""
    from minibert.__main__ import main
    from minibert.course_bert import quick_task_data
    from minibert.tasks import run_settings

    ner, qa = run_settings("conll2003", quick=True), run_settings("squad", quick=True)
    assert (ner.train_limit, ner.eval_limit, ner.max_length) == (1000, 300, 128)
    assert (qa.max_length, qa.stride, qa.epochs) == (128, 64, 2)
    assert run_settings("squad", quick=False).max_length == 384
    assert run_settings("cmrc2018", quick=True).train_limit == 300  # its own: four windows per question
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["finetune", "conll2003", "--from", "random:tiny", "--set", "hidden_size=64", "--set",
                 "num_attention_heads=2", "--quick", "--max-steps", "1", "--no-save", "--no-progress"]) == 0
    assert "conll2003 (quick mode): 1000 training examples" in capsys.readouterr().out
    train, held, _ = quick_task_data(TASKS["conll2003"], WordPieceTokenizer.from_vocab_file(data.vocab_file()))
    assert (len(train), len(held)) == (1000, 300)


# ------------------------------------------------------------------------------------------ exercise checkers


def test_checkers_pass_on_the_package_and_fail_on_mistakes(capsys):
    import torch.nn as nn

    from minibert.checks.classification import check_classification_head
    from minibert.checks.ner import check_align_labels
    from minibert.checks.question_answering import check_best_span
    from minibert.model import BertModel

    check_classification_head(BertForSequenceClassification)
    check_align_labels(align_labels)
    check_best_span(lambda s, e, offsets, max_answer_length=30: best_span(s, e, offsets, max_answer_length))
    assert capsys.readouterr().out.count("✓") == 3

    class NoPooler(nn.Module):
        def __init__(self, config, num_labels):
            super().__init__()
            self.bert, self.dropout = BertModel(config), nn.Dropout(0.1)
            self.classifier = nn.Linear(config.hidden_size, num_labels)

        def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
            h = self.bert(input_ids, token_type_ids, attention_mask).last_hidden_state[:, 0]
            return self.classifier(self.dropout(h)), None

    with pytest.raises(CheckFailed, match="pooler_output") as failure:
        check_classification_head(NoPooler)
    # the paper's C is the [CLS] hidden state itself: a learner who follows it is told so, not that it is wrong
    assert "paper's C" in str(failure.value) and "Google's code" in str(failure.value)

    def every_piece(word_ids, word_labels, label_to_id):
        return [-100 if w is None else label_to_id[word_labels[w]] for w in word_ids]

    with pytest.raises(CheckFailed, match="Only the first sub-word") as failure:
        check_align_labels(every_piece)
    assert "[-100" not in str(failure.value)  # the expected labels are not given away

    def unconstrained(s, e, offsets, max_answer_length=30):
        return int(s.argmax()), int(e.argmax())

    with pytest.raises(CheckFailed, match="ends before it starts"):
        check_best_span(unconstrained)


def test_compare_starts_trains_every_available_start_and_says_why_others_did_not(data_dir, tmp_path):
    """The lessons' full-mode comparison: a random encoder, lesson 06's checkpoint (a Path, as course_checkpoint
    returns it), its feature-based variant; no checkpoint and an unreachable hub model are said and skipped."""
    tok = WordPieceTokenizer.from_pretrained("bert-base-uncased")
    records = data.load_dataset("sst2", "validation")
    train = encode_classification(records[:64], tok, 32, num_labels=2)
    held = encode_classification(records[64:96], tok, 32, num_labels=2)
    small = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=1)
    config = BertConfig.preset("tiny", vocab_size=len(tok.id_to_token), pad_token_id=tok.pad_id, **small)
    checkpoint = BertForPreTraining(config).save_pretrained(tmp_path / "runs" / "checkpoint-20")
    other = BertForPreTraining(BertConfig.preset("tiny", vocab_size=100, **small)).save_pretrained(tmp_path / "other")
    said = []
    starts = {
        "random": ("random:tiny", dict(lr=1e-3, overrides=small)),
        "lesson 06 checkpoint": (Path(checkpoint), dict(lr=1e-3)),
        "feature-based": (Path(checkpoint), dict(lr=1e-3, feature_based=True)),
        "no checkpoint": (None, dict(lr=1e-3)),
        "the hub": ("minibert-course/no-such-model", dict(lr=2e-5)),
        "another vocab": (other, dict(lr=2e-5)),
    }
    done = compare_starts(TASKS["sst2"], train, held, tok, starts, labels=["negative", "positive"], epochs=1,
                          batch_size=16, say=said.append)
    assert list(done) == ["random", "lesson 06 checkpoint", "feature-based"]
    for name, (result, model) in done.items():
        assert 0 <= result.best_metrics["accuracy"] <= 1 and result.trainer.step == 4
        assert not model.training  # finetune put the best weights back; the model comes back ready to evaluate
        assert any(line.startswith(f"{name}: accuracy ") for line in said), said
    assert done["feature-based"][1].num_parameters(trainable_only=True) == 2 * 32 + 2
    assert "no checkpoint: no checkpoint found, skipped" in said
    assert any(line.startswith("the hub: not available here (OSError") for line in said), said
    mismatch = [line for line in said if line.startswith("another vocab: not available here (VocabMismatchError")]
    assert mismatch and "Offline?" not in mismatch[0], said
    with pytest.raises(KeyError, match="lr"):
        compare_starts(TASKS["sst2"], train, held, tok, {"random": ("random:tiny", {})}, labels=["a", "b"])
    # each start is seeded: its result does not depend on the starts that ran before it
    alone = compare_starts(TASKS["sst2"], train, held, tok, {"random": starts["random"]},
                           labels=["negative", "positive"], epochs=1, batch_size=16, say=said.append)
    losses = lambda result: [r["loss"] for r in result.history if "loss" in r]
    assert losses(alone["random"][0]) == losses(done["random"][0])


def test_sentence_pooling_reads_the_pooler_the_cls_state_or_the_mean_of_real_tokens(tmp_path):
    """Lesson 07's three readings of a sentence: the pooler (default), the paper's C and the mean over real tokens,
    which padding does not change; the choice is saved with the model."""
    from minibert.tasks import model_for_task

    config = BertConfig.preset("tiny", vocab_size=50, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ids = torch.randint(5, 50, (2, 6))  # (B, T)
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(2, 6, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)], dim=1)
    models = {}
    for pooling in ("pooler", "cls", "mean"):
        torch.manual_seed(0)
        models[pooling] = BertForSequenceClassification(config, 3, pooling=pooling).eval()
    with torch.no_grad():
        out = models["pooler"].bert(ids)
        head = models["pooler"].classifier
        torch.testing.assert_close(models["pooler"](ids).logits, head(out.pooler_output))
        torch.testing.assert_close(models["cls"](ids).logits, head(out.last_hidden_state[:, 0]))
        torch.testing.assert_close(models["mean"](ids).logits, head(out.last_hidden_state.mean(1)))
        torch.testing.assert_close(models["mean"](padded, attention_mask=mask).logits, models["mean"](ids).logits,
                                   atol=1e-5, rtol=1e-5)
    folder = models["mean"].save_pretrained(tmp_path / "mean")
    assert BertForSequenceClassification.from_pretrained(folder, verbose=False).pooling == "mean"
    with pytest.raises(ValueError, match="'pooler', 'cls', 'mean'"):
        BertForSequenceClassification(config, 3, pooling="max")
    tok = WordPieceTokenizer.from_vocab_file(data.vocab_file("bert-base-uncased"))
    with pytest.raises(ValueError, match="for sentence tasks"):
        model_for_task(TASKS["conll2003"], "random:tiny", tok, ["O"], pooling="mean")
