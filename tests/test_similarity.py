"""Sentence similarity as regression (lesson 08, section 7): STS-B's data, the one-output head and its MSE loss,
Pearson and Spearman against scipy, fine-tuning, the command line and the round trip into transformers."""

import random

import pytest
import torch

from minibert import data
from minibert.finetuning import baseline_metrics, evaluate, finetune, predict, similarity_metrics
from minibert.finetuning_data import collate, encode_similarity
from minibert.heads import BertForSequenceClassification
from minibert.metrics import mean_squared_error, pearson, spearman
from minibert.model import BertConfig
from minibert.tasks import TASKS, model_for_task
from minibert.tokenizer import WordPieceTokenizer
from minibert.training import TrainingConfig

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64)
HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"


@pytest.fixture(scope="module")
def tok(data_dir):
    return WordPieceTokenizer.from_vocab_file(data.vocab_file("bert-base-uncased"))


def glue_stsb_folder(root, n_train=40, n_dev=10):
    """A folder laid out like GLUE's STS-B (sts-b/train.tsv, dev.tsv: ten tab-separated columns, a bare quote in a
    sentence), with scores that grow with how many words the two sentences share."""
    words = "the cat dog sat ran on a mat in park red blue big small".split()
    rng = random.Random(0)
    (root / "sts-b").mkdir(parents=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        lines = [HEADER]
        for i in range(n):
            a = rng.sample(words, 5)
            shared = i % 6
            b = a[:shared] + rng.sample([w for w in words if w not in a], 5 - shared)
            lines.append(f"{i}\tmain-news\tMSRvid\t2012test\t{i:04d}\tnone\tnone\t\"{' '.join(a)}\t"
                         f"{' '.join(b)}\t{shared:.3f}\n")
        (root / "sts-b" / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    return root


# ------------------------------------------------------------------------------------------------ metrics


def test_pearson_and_spearman_agree_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for n in (2, 3, 10, 200):
        x = [rng.random() for _ in range(n)]
        y = [round(a + rng.gauss(0, 0.3), 1) for a in x]  # rounding makes ties, which share their mean rank
        assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-9)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)  # only the order counts
    assert pearson([1, 2, 3, 4], [10, 20, 30, 1000]) < 0.9
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson(torch.tensor([0.0, 0.5, 1.0]), [0, 1, 2]) == pytest.approx(1.0)
    assert mean_squared_error([0.0, 1.0], [0.5, 0.5]) == pytest.approx(0.25)


def test_a_constant_prediction_correlates_zero_and_bad_inputs_are_refused():
    assert pearson([0.2, 0.9, 0.4], [0.5] * 3) == 0.0 and spearman([0.2, 0.9, 0.4], [0.5] * 3) == 0.0
    with pytest.raises(ValueError, match="paired"):
        pearson([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="at least two"):
        spearman([0.1], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        pearson([0.1, float("nan")], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"output\[:, 0\]"):
        pearson([0.1, 0.2], torch.zeros(2, 1))


# ------------------------------------------------------------------------------------------------ data


def test_stsb_reads_glues_local_files_with_scores_divided_by_5(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIBERT_DATA", str(glue_stsb_folder(tmp_path)))
    data._load_cached.cache_clear()
    train = data.load_dataset("stsb", "train")
    assert len(train) == 40 and data.local_splits("stsb") == ["train", "validation"]
    assert set(train[0]) == {"sentence1", "sentence2", "score"}
    assert train[0]["sentence1"].startswith('"')  # the bare quote is kept, as for MRPC and SST-2
    assert [r["score"] for r in train[:6]] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert len(data.load_dataset("stsb", "validation")) == 10
    data._load_cached.cache_clear()


def test_stsb_from_the_hub_is_scaled_and_its_hidden_test_scores_are_skipped(fake_hub):
    calls = []

    def fake_load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        return [{"sentence1": "A man plays.", "sentence2": "A man is playing.", "label": 4.6, "idx": 0},
                {"sentence1": "x", "sentence2": "y", "label": -1.0, "idx": 1}]

    fake_hub(fake_load_dataset)  # no local copy: the hub path is taken
    records = data.load_dataset("stsb", "validation")
    assert calls == [("nyu-mll/glue", "stsb", "validation")]
    assert len(records) == 1 and records[0]["score"] == pytest.approx(0.92)


def test_encode_similarity_gives_float_labels_and_refuses_scores_outside_0_1(tok):
    records = [{"sentence1": "a cat sat.", "sentence2": "a cat was sitting.", "score": 0.9},
               {"sentence1": "a cat sat.", "sentence2": "stocks fell.", "score": 0}]
    dataset = encode_similarity(records, tok, 32)
    assert dataset.task == "similarity" and dataset.labels == ["similarity"]
    batch = collate([dataset[0], dataset[1]], tok.pad_id)
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == pytest.approx([0.9, 0.0])
    assert batch["token_type_ids"][0].tolist().count(1) > 0  # a pair: segment B is marked
    with pytest.raises(ValueError, match="divided by 5"):
        encode_similarity([{**records[0], "score": 3.8}], tok)
    with pytest.raises(KeyError, match="'score'"):
        encode_similarity([{"sentence1": "a", "sentence2": "b", "label": 1}], tok)


# ------------------------------------------------------------------------------------------------ the head


def test_one_output_head_trains_on_the_mean_squared_error_like_transformers(tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=len(tok), **TINY), labels=["similarity"]).eval()
    batch = collate([{"input_ids": [2, 7, 9, 3, 11, 3], "token_type_ids": [0, 0, 0, 0, 1, 1], "labels": 0.8},
                     {"input_ids": [2, 5, 3, 6, 3], "token_type_ids": [0, 0, 0, 1, 1], "labels": 0.1}])
    with torch.no_grad():
        out = model(**batch)
        assert out.logits.shape == (2, 1)
        torch.testing.assert_close(out.loss, ((out.logits[:, 0] - batch["labels"]) ** 2).mean())
        folder = model.save_pretrained(tmp_path / "regression")
        theirs = transformers.BertForSequenceClassification.from_pretrained(folder).eval()
        hf = theirs(**batch)  # one label and float labels: transformers' regression, the MSE
        torch.testing.assert_close(hf.logits, out.logits, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(hf.loss, out.loss, atol=1e-5, rtol=1e-4)
    again = BertForSequenceClassification.from_pretrained(folder, verbose=False)
    assert again.num_labels == 1 and again.loading_info == {"new": [], "skipped": []}
    with pytest.raises(ValueError, match="floats"):
        model(batch["input_ids"], labels=torch.tensor([1, 0]))


def test_an_unnamed_one_output_head_keeps_its_size_when_saved(tmp_path):
    """Without label names the number of outputs was not saved, so a reload built two and dropped the trained head."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=40, **TINY), num_labels=1)
    again = BertForSequenceClassification.from_pretrained(model.save_pretrained(tmp_path / "one"), verbose=False)
    assert again.num_labels == 1 and again.loading_info["new"] == []
    torch.testing.assert_close(again.classifier.weight, model.classifier.weight)


def test_the_stsb_task_builds_a_one_output_head(tok):
    task = TASKS["stsb"]
    assert (task.kind, task.metric, task.text_keys) == ("similarity", "spearman", ("sentence1", "sentence2"))
    model = model_for_task(task, "random:tiny", tok)
    assert isinstance(model, BertForSequenceClassification) and model.num_labels == 1
    with pytest.raises(ValueError, match="one label name"):
        model_for_task(task, "random:tiny", tok, labels=["low", "high"])


def test_finetuning_a_similarity_head_ranks_the_pairs_it_learned(tok):
    """16 pairs learned by heart: the scores come to rank them (Spearman near 1) and the MSE falls far below the mean
    score's; `finetune` keeps the best epoch by Spearman's rho, and the baseline ranks nothing."""
    rng = random.Random(0)
    words = "cat dog bird fish tree rock sun moon red blue green old new big small".split()
    records = [{"sentence1": " ".join(rng.sample(words, 4)), "sentence2": " ".join(rng.sample(words, 4)),
                "score": i / 15} for i in range(16)]
    dataset = encode_similarity(records, tok, 32)
    baseline = baseline_metrics(dataset, dataset)
    assert baseline["pearson"] == baseline["spearman"] == 0.0
    assert baseline["mse"] == pytest.approx(sum((r["score"] - 0.5) ** 2 for r in records) / 16)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=len(tok), **TINY), labels=["similarity"])
    config = TrainingConfig(lr=3e-3, batch_size=16, progress=False, device="cpu", seed=0)
    result = finetune(model, dataset, dataset, config, epochs=150, warmup_ratio=0.1)
    assert result.best_metrics["spearman"] > 0.9 and result.best_metrics["mse"] < baseline["mse"] / 4
    scores = [float(x[0]) for x in predict(model, dataset)[0]]
    again = evaluate(model, dataset)
    assert again["spearman"] == pytest.approx(result.best_metrics["spearman"])
    assert similarity_metrics([r["score"] for r in records], scores)["pearson"] == pytest.approx(again["pearson"])


def test_cli_finetunes_stsb_from_a_local_copy(tmp_path, monkeypatch, capsys, data_dir):
    from minibert.__main__ import main

    root = glue_stsb_folder(tmp_path / "data")
    (root / "bert-base-uncased").symlink_to(data_dir / "bert-base-uncased")
    monkeypatch.setenv("MINIBERT_DATA", str(root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data._load_cached.cache_clear()
    assert main(["finetune", "stsb", "--from", "random:tiny", "--set", "hidden_size=32", "--set",
                 "num_attention_heads=2", "--quick", "--max-steps", "2", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "baseline (mean score): pearson 0.0000  spearman 0.0000  mse" in out
    assert "dev metrics (best spearman, step 2 of 2): pearson" in out
    model = BertForSequenceClassification.from_pretrained(tmp_path / "run" / "best", verbose=False)
    assert model.num_labels == 1 and model.labels == ["similarity"]
    data._load_cached.cache_clear()
