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
    parse_source,
    random_vs_course,
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
    sources = [parse_source(s) for s in COURSE_CORPUS]
    assert all(split in ("train", "test", "validation") for _, split, _ in sources)
    assert all(split == "train" for name, split, _ in sources if not name.startswith("wikitext"))  # never a task's
    # validation or test text
    sst2 = unlabelled_documents("sst2", "train")
    dev = {r["sentence"].strip() for r in task_records("sst2")[1]}
    assert not dev & {s for doc in sst2 for s in doc}
    train, held = split_held_out({"a": [["x"]] * 40, "b": [["y"]] * 3})
    assert len(held) == 2 + 1 and held[:2] == [["x"]] * 2


def test_a_source_read_several_times_repeats_its_training_documents_only():
    assert parse_source("sst2:train*3") == ("sst2", "train", 3)
    assert parse_source("wikitext-2") == ("wikitext-2", "train", 1)
    for bad in ("sst2:train*", "sst2:train*0", "sst2:train*x"):
        with pytest.raises(ValueError, match="how many times"):
            parse_source(bad)
    docs = [[f"d{i}"] for i in range(20)]
    train, held = split_held_out({"a": docs, "b": [["y"]] * 4}, 0.1, {"a": 3})
    assert held == [["d18"], ["d19"], ["y"]]  # held out once, before the repeat
    assert train == docs[:18] * 3 + [["y"]] * 3


@needs_data
def test_cli_reads_a_source_several_times(tmp_path, capsys):
    from minibert.__main__ import main

    text = tmp_path / "t.txt"
    text.write_text("\n\n".join(f"the cat sat on mat {i} .\nit was a good day {i} ." for i in range(10)) + "\n")
    out = tmp_path / "run"
    assert main(["pretrain", "--config", "tiny", "--corpus", f"{text}*2", "--vocab", "bert-base-uncased",
                 "--seq-len", "32", "--batch-size", "4", "--max-steps", "1", "--no-progress", "--out", str(out),
                 "--eval-fraction", "0.2"]) == 0
    said = capsys.readouterr().out
    assert "(10 documents, training ones 2 times)" in said and "16 documents" in said
    with pytest.raises(SystemExit, match="how many times"):
        main(["pretrain", "--config", "tiny", "--corpus", f"{text}*two", "--out", str(out)])


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


@needs_data
def test_random_vs_course_follows_minibert_progress(monkeypatch):
    """Its progress bars ignored MINIBERT_PROGRESS=0: in a lesson under nbval each bar is a widget, and the RTE cell's
    thousands of updates overflowed the kernel's output channel on a slow machine (CI: 'Timeout ... waiting for
    output')."""
    import minibert.tasks

    seen = []
    monkeypatch.setattr(minibert.tasks, "compare_starts", lambda *a, **k: seen.append(k["progress"]) or {})
    for env, given, expected in (("0", None, False), ("1", None, True), ("0", True, True)):
        monkeypatch.setenv("MINIBERT_PROGRESS", env)
        random_vs_course(TASKS["mrpc"], say=lambda line: None, progress=given)
        assert seen[-1] is expected, (env, given)
