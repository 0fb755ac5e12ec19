"""The course's own small BERT (lesson 06's laptop recipe): shipped complete and small, loadable by `transformers`,
named `course` everywhere a start is named, and reproducible: the recipe's first steps give the shipped history."""

import json
import os
import shlex

import pytest
import torch
from safetensors import safe_open

from minibert.course_bert import (
    COURSE_CORPUS,
    RECIPE,
    course_folder,
    resolve_start,
    split_held_out,
    unlabelled_documents,
)
from minibert.model import BertForPreTraining
from minibert.tasks import TASKS, compare_starts, encode_task, model_for_task, task_labels, task_records
from minibert.tokenizer import WordPieceTokenizer

FOLDER = course_folder()
needs_data = pytest.mark.skipif(not os.environ.get("MINIBERT_DATA"), reason="needs MINIBERT_DATA (the course data)")


def test_shipped_folder_is_complete_and_small():
    names = {p.name for p in FOLDER.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "history.json", "recipe.json"} <= names
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) <= 5 * 1024 * 1024
    recipe = json.loads((FOLDER / "recipe.json").read_text())
    assert recipe["command"] == f"python -m minibert {RECIPE}"
    assert recipe["minutes"] <= 30 and recipe["machine"]
    config = json.loads((FOLDER / "config.json").read_text())
    vocab = (FOLDER / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert config["vocab_size"] == len(vocab) and config["architectures"] == ["BertForPreTraining"]
    with safe_open(FOLDER / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    history = json.loads((FOLDER / "history.json").read_text())
    last_eval = [r for r in history if "eval_nsp_accuracy" in r][-1]
    assert last_eval["eval_nsp_accuracy"] >= 0.70  # the target for held-out NSP


def test_course_loads_in_transformers_with_the_same_outputs():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    ours = BertForPreTraining.from_pretrained("course").eval()
    theirs = transformers.BertForPreTraining.from_pretrained(str(FOLDER), dtype=torch.float32).eval()
    tok = WordPieceTokenizer.from_vocab_file(FOLDER / "vocab.txt")
    enc = tok.encode("the film is a [MASK] and moving story .", "it was released in [MASK] .")
    ids, types = torch.tensor([enc.ids]), torch.tensor([enc.type_ids])
    with torch.no_grad():
        a = ours(ids, types)
        b = theirs(input_ids=ids, token_type_ids=types)
    torch.testing.assert_close(a.mlm_logits, b.prediction_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.nsp_logits, b.seq_relationship_logits, atol=1e-4, rtol=1e-4)


def test_course_and_random_course_resolve():
    assert resolve_start("course") == str(FOLDER)
    assert resolve_start("random:course") == "random:" + str(FOLDER / "config.json")
    assert resolve_start("random:tiny") == "random:tiny" and resolve_start("runs/x") == "runs/x"


def test_model_for_task_course_and_random_course():
    tok = WordPieceTokenizer.from_vocab_file(FOLDER / "vocab.txt")
    task = TASKS["conll2003"]
    labels = ["O", "B-PER", "I-PER"]
    course = model_for_task(task, "course", tok, labels, verbose=False)
    torch.manual_seed(0)
    random = model_for_task(task, "random:course", tok, labels, verbose=False)
    assert course.config.to_dict() == random.config.to_dict()  # the same architecture...
    shipped = BertForPreTraining.from_pretrained("course").bert.state_dict()
    for name, weight in course.bert.state_dict().items():  # ...the course's weights in one, random ones in the other
        torch.testing.assert_close(weight, shipped[name])
    w = "embeddings.word_embeddings.weight"
    assert not torch.allclose(random.bert.state_dict()[w], shipped[w])


@needs_data
def test_compare_starts_and_cli_take_course(tmp_path, capsys):
    from minibert.__main__ import main

    tok = WordPieceTokenizer.from_vocab_file(FOLDER / "vocab.txt")
    task = TASKS["sst2"]
    train_records, held_records = task_records(task)
    labels = task_labels(task, train_records, held_records)
    train = encode_task(task, train_records[:48], tok, labels, 32)
    held = encode_task(task, held_records[:16], tok, labels, 32)
    said = []
    done = compare_starts(task, train, held, tok, {"course": ("course", dict(lr=1e-4)),
                                                   "random": ("random:course", dict(lr=1e-4))},
                          labels=labels, epochs=1, say=said.append)
    assert set(done) == {"course", "random"}, said
    assert main(["finetune", "sst2", "--from", "random:course", "--train-limit", "32", "--eval-limit", "16",
                 "--max-steps", "2", "--no-save", "--no-progress", "--max-length", "32"]) == 0
    out = capsys.readouterr().out
    assert "model from random:" in out and "course_bert/config.json" in out


@needs_data
def test_course_corpus_holds_no_evaluation_text():
    assert all(source.endswith((":train", ":test", ":validation")) for source in COURSE_CORPUS)
    tasks = [s for s in COURSE_CORPUS if not s.startswith("wikitext")]
    assert all(s.endswith(":train") for s in tasks)  # never a task's validation or test text
    sst2 = unlabelled_documents("sst2", "train")
    dev = {r["sentence"].strip() for r in task_records("sst2")[1]}
    assert not dev & {s for doc in sst2 for s in doc}
    train, held = split_held_out({"a": [["x"]] * 40, "b": [["y"]] * 3})
    assert len(held) == 2 + 1 and held[:2] == [["x"]] * 2


@pytest.mark.slow
@needs_data
def test_recipe_reproduces_the_shipped_history(tmp_path):
    """The recipe from scratch, stopped after its first logged steps: the same vocab, the same losses."""
    from minibert.__main__ import main

    argv = shlex.split(RECIPE)
    argv[argv.index("--out") + 1] = str(tmp_path / "course")
    shipped = [r for r in json.loads((FOLDER / "history.json").read_text()) if "loss" in r]
    first = shipped[0]["step"]
    assert main([*argv, "--stop-after", str(first), "--no-progress"]) == 0
    assert (tmp_path / "course" / "vocab.txt").read_text() == (FOLDER / "vocab.txt").read_text()
    ours = [r for r in json.loads((tmp_path / "course" / "history.json").read_text()) if "loss" in r]
    assert ours[0]["step"] == first
    for key in ("loss", "mlm_loss", "nsp_loss"):  # another CPU may sum in another order: the 4th digit
        assert ours[0][key] == pytest.approx(shipped[0][key], rel=1e-3), key
