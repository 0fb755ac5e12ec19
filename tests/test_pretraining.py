"""Pre-training (lesson 06): losses, optimizer, schedule, the trainer, checkpoints, resuming, DDP and the CLI.

Also one test per bug that famous tutorials shipped: MLM loss counting padded positions, one loss with an
`ignore_index` shared by MLM and NSP (NotNext ignored), random replacements drawn from special tokens (in
test_pretraining_data.py), NotNext sentences drawn from the same document (test_pretraining_data.py).
"""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from minibert import data
from minibert.checkpoints import UnreadableCheckpointError
from minibert.corpus import documents_from_lines
from minibert.model import IGNORE_INDEX, BertConfig, BertForPreTraining
from minibert.optimizer import build_optimizer, linear_warmup_decay
from minibert.pretraining import course_checkpoint, evaluate_pretraining, plot_loss_curve
from minibert.pretraining_data import PretrainingDataset
from minibert.resume import STATE_FILE, ResumeMismatchError, latest_checkpoint
from minibert.tokenizer import WordPieceTokenizer
from minibert.training import Trainer, TrainingConfig, TrainingDivergedError

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64)


@pytest.fixture(scope="module")
def tok(data_dir):
    return WordPieceTokenizer.from_vocab_file(data.vocab_file("bert-base-uncased"))


@pytest.fixture(scope="module")
def docs(data_dir):
    return documents_from_lines(data.load_dataset("wikitext-2", "validation"))


@pytest.fixture(scope="module")
def dataset(docs, tok):
    return PretrainingDataset(docs[:12], tok, max_length=32, seed=0)


def tiny_model(tok, seed=0, **overrides):
    torch.manual_seed(seed)
    return BertForPreTraining(BertConfig(**{"vocab_size": len(tok), **TINY, **overrides}))


def config(tmp_path=None, **kwargs):
    defaults = dict(max_steps=6, batch_size=8, lr=3e-3, warmup_steps=1, log_every=1, progress=False,
                    device="cpu", out_dir=str(tmp_path) if tmp_path else None)
    return TrainingConfig(**{**defaults, **kwargs})


def padded_batch(dataset):
    items = sorted((dataset[i] for i in range(200)), key=lambda x: len(x["input_ids"]))
    items = items[:3] + items[-1:]  # the three shortest and the longest
    batch = dataset.collate(items)
    assert (batch["attention_mask"] == 0).any()
    return batch


# --------------------------------------------------------------------------- losses (the tutorials' bugs)


def test_mlm_loss_counts_predicted_positions_only_never_padding(dataset, tok):
    model = tiny_model(tok).eval()
    batch = padded_batch(dataset)
    out = model(**batch)
    full = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]).mlm_logits  # (B, T, V)
    labels = batch["mlm_labels"]
    expected = F.cross_entropy(full[labels != IGNORE_INDEX], labels[labels != IGNORE_INDEX])
    torch.testing.assert_close(out.mlm_loss, expected)
    assert out.mlm_logits.shape == ((labels != IGNORE_INDEX).sum().item(), len(tok))  # decoder on masked only
    # the bug: labels of padded slots set to [PAD] (0) instead of -100 makes them count, and the loss changes
    buggy = labels.masked_fill(batch["attention_mask"] == 0, tok.pad_id)
    assert not torch.isclose(F.cross_entropy(full[buggy != IGNORE_INDEX], buggy[buggy != IGNORE_INDEX]), expected)
    # whatever sits in the padded slots changes nothing
    junk = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 1234)
    torch.testing.assert_close(model(**{**batch, "input_ids": junk}).loss, out.loss)


def test_not_next_pairs_count_in_the_nsp_loss(dataset, tok):
    model = tiny_model(tok).eval()
    batch = padded_batch(dataset)
    losses = {}
    for label in (0, 1):
        nsp = torch.full_like(batch["nsp_labels"], label)
        out = model(**{**batch, "nsp_labels": nsp})
        torch.testing.assert_close(out.nsp_loss, F.cross_entropy(out.nsp_logits, nsp))  # no ignore_index at all
        torch.testing.assert_close(out.loss, out.mlm_loss + out.nsp_loss)  # two separate terms
        losses[label] = out.nsp_loss
        model.zero_grad()
        out.nsp_loss.backward()
        assert model.nsp_head.classifier.weight.grad.abs().sum() > 0  # NotNext-only batches still teach
    assert not torch.isclose(losses[0], losses[1])


# --------------------------------------------------------------------------- optimizer and schedule


def test_no_weight_decay_on_biases_and_layer_norm(tok):
    model = tiny_model(tok)
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.01)
    decay, no_decay = ({id(p) for p in g["params"]} for g in opt.param_groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    names = {id(p): n for n, p in model.named_parameters()}
    assert len(decay) + len(no_decay) == len(names)  # the tied decoder weight once
    for pid, name in names.items():
        expect_no_decay = name.endswith("bias") or "norm" in name
        assert (pid in no_decay) == expect_no_decay, name


def test_linear_warmup_then_linear_decay(tok):
    opt = torch.optim.SGD(tiny_model(tok).parameters(), lr=1.0)
    sched = linear_warmup_decay(opt, warmup_steps=4, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])


# --------------------------------------------------------------------------- the trainer


def test_loss_falls_on_a_tiny_run(dataset, tok):
    trainer = Trainer(tiny_model(tok), dataset, config(max_steps=40, batch_size=16, lr=1e-2, warmup_steps=4,
                                                       log_every=5))
    history = trainer.train()
    losses = [r["loss"] for r in history]
    assert len(losses) == 8 and all(r["tokens_per_s"] > 0 for r in history) and history[-1]["mfu"] is None
    assert losses[-1] < losses[0] - 1.5, losses
    assert history[-1]["mlm_loss"] < 8.5


def test_resume_gives_the_same_losses_as_a_run_that_never_stopped(dataset, tok, tmp_path):
    uninterrupted = Trainer(tiny_model(tok), dataset, config(tmp_path / "a", grad_accum_steps=2))
    straight = uninterrupted.train()

    def stop_at_3(trainer, record):
        if trainer.step == 3:
            raise KeyboardInterrupt  # as Ctrl-C would
    first = Trainer(tiny_model(tok), dataset, config(tmp_path / "b", grad_accum_steps=2), callbacks=[stop_at_3])
    first.train()
    assert first.interrupted and latest_checkpoint(tmp_path / "b").name == "checkpoint-3"
    # a fresh process would rebuild everything; a different seed for the new model shows the weights are loaded
    resumed = Trainer(tiny_model(tok, seed=123), dataset, config(tmp_path / "b", grad_accum_steps=2))
    history = resumed.train(resume_from=tmp_path / "b")
    assert [r["step"] for r in history] == list(range(1, 7))
    assert [r["loss"] for r in history] == [r["loss"] for r in straight]  # exactly, on CPU in fp32
    for (name, p), q in zip(resumed.model.state_dict().items(), uninterrupted.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_ctrl_c_saves_a_checkpoint_and_stops_cleanly(dataset, tok, tmp_path):
    def interrupt(trainer, record):
        if trainer.step == 2:
            raise KeyboardInterrupt
    trainer = Trainer(tiny_model(tok), dataset, config(tmp_path), callbacks=[interrupt])
    history = trainer.train()  # returns instead of raising
    assert trainer.interrupted and trainer.step == 2 and len(history) == 2
    folder = tmp_path / "checkpoint-2"
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "trainer_state.pt"}
    loaded = BertForPreTraining.from_pretrained(folder)
    for (name, p), q in zip(trainer.model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), name


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(dataset, tok, tmp_path):
    model = tiny_model(tok)
    saved = {}

    def poison_after_3(trainer, record):
        saved[trainer.step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        if trainer.step == 3:
            trainer.model.nsp_head.register_forward_hook(lambda module, inputs, output: output * float("nan"))
    trainer = Trainer(model, dataset, config(tmp_path, save_every=2), callbacks=[poison_after_3])
    with pytest.raises(TrainingDivergedError, match=r"loss became nan at step 4.*checkpoint-2, is intact"):
        trainer.train()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]  # no half-written checkpoint-4
    loaded = BertForPreTraining.from_pretrained(tmp_path / "checkpoint-2").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved[2].items())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved[3].items())  # step 4 changed nothing


def test_checkpoint_loads_in_transformers(dataset, tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    trainer = Trainer(tiny_model(tok), dataset, config(tmp_path, max_steps=2), vocab_file=data.vocab_file())
    trainer.train()
    folder = latest_checkpoint(tmp_path)
    assert (folder / "vocab.txt").is_file()
    theirs = transformers.BertForPreTraining.from_pretrained(str(folder)).eval()
    ours = trainer.model.eval()
    batch = padded_batch(dataset)
    with torch.no_grad():
        out = ours(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        ref = theirs(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                     attention_mask=batch["attention_mask"])
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(out.mlm_logits[real], ref.prediction_logits[real], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.nsp_logits, ref.seq_relationship_logits, atol=1e-4, rtol=1e-4)


def test_evaluation_and_loss_curve(dataset, docs, tok):
    import matplotlib

    matplotlib.use("Agg")
    held_out = PretrainingDataset(docs[-4:], tok, max_length=32, seed=1, static_masking=True)
    trainer = Trainer(tiny_model(tok), dataset, config(max_steps=4, eval_every=2),
                      eval_fn=lambda m: evaluate_pretraining(m, held_out, batch_size=16, max_batches=2))
    history = trainer.train()
    evals = [r for r in history if "eval_mlm_accuracy" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(0 <= r["eval_mlm_accuracy"] <= 1 and 0 <= r["eval_nsp_accuracy"] <= 1 for r in evals)
    again = evaluate_pretraining(trainer.model, held_out, batch_size=16, max_batches=2)
    assert again == pytest.approx({k.removeprefix("eval_"): v for k, v in evals[-1].items() if k != "step"})
    ax = plot_loss_curve(history)
    assert ax.get_title() and ax.get_xlabel() == "optimizer step" and "loss" in ax.get_ylabel()


def test_gradient_accumulation_averages_micro_batches_and_clipping_bounds_the_norm(dataset, tok):
    from minibert.resume import ResumableSampler

    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    def gradients_of_one_step(clip):
        """The gradients the optimizer sees at step 1 of a run with 2 micro-batches of 4 (after clipping)."""
        trainer = Trainer(tiny_model(tok, **no_dropout), dataset,
                          config(max_steps=1, batch_size=4, grad_accum_steps=2, clip_grad_norm=clip))
        seen = {}

        def before_update(optimizer, args, kwargs):
            seen.update({n: p.grad.clone() for n, p in trainer.model.named_parameters()})
        trainer.optimizer.register_step_pre_hook(before_update)
        trainer.train()
        return seen

    # by hand: the same 8 examples as two micro-batches of 4, each loss halved
    model = tiny_model(tok, **no_dropout)
    order = list(ResumableSampler(dataset, seed=0))[:8]
    dataset.set_epoch(0)
    for micro in (order[:4], order[4:]):
        (model(**dataset.collate([dataset[i] for i in micro])).loss / 2).backward()
    expected = {name: p.grad for name, p in model.named_parameters()}
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    unclipped = gradients_of_one_step(clip=None)
    for name, g in expected.items():
        torch.testing.assert_close(unclipped[name], g, atol=1e-7, rtol=1e-4, msg=name)
    clip = 0.05
    assert norm > 10 * clip  # so clipping has work to do
    clipped = gradients_of_one_step(clip=clip)
    for name, g in expected.items():  # same direction, norm `clip`
        torch.testing.assert_close(clipped[name], g * clip / (norm + 1e-6), atol=1e-8, rtol=1e-4, msg=name)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in clipped.values()]))
    assert total.item() == pytest.approx(clip, rel=1e-4)


def test_bf16_mixed_precision_trains(dataset, tok):
    """Autocast to bf16 (padding mask cast to the attention's dtype, losses in fp32); no gradient scaler for bf16."""
    trainer = Trainer(tiny_model(tok), dataset, config(max_steps=12, lr=1e-2, warmup_steps=2, precision="bf16"))
    assert trainer.precision.name == "bf16" and not trainer.scaler.is_enabled()
    losses = [r["loss"] for r in trainer.train()]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.4, losses
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # the weights stay fp32


@pytest.fixture
def fp16_on_the_cpu(monkeypatch):
    """A T4's path (fp16 autocast + gradient scaler) run on the CPU, which torch allows but the course does not offer
    (pick_precision refuses fp16 there): the same Trainer code a Colab T4 runs."""
    from minibert import training
    from minibert.runtime import PRECISIONS

    monkeypatch.setattr(training, "pick_precision", lambda device, prefer=None: PRECISIONS["fp16"])


def test_fp16_with_a_gradient_scaler_trains(dataset, tok, fp16_on_the_cpu):
    trainer = Trainer(tiny_model(tok), dataset, config(max_steps=12, lr=1e-2, warmup_steps=2))
    assert trainer.precision.name == "fp16" and trainer.scaler.is_enabled()
    losses = [r["loss"] for r in trainer.train()]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.4, losses
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_fp16_overflowing_steps_are_skipped_without_moving_the_schedule(dataset, tok, fp16_on_the_cpu):
    """A scale of 2^40 overflows fp16 gradients: the scaler skips those updates and halves its scale. That is not a
    divergence (no error), the weights stay as they were, and the learning-rate schedule waits for real updates
    (so no 'lr_scheduler.step() before optimizer.step()' warning either)."""
    import warnings

    trainer = Trainer(tiny_model(tok), dataset, config(max_steps=30, lr=1e-2, warmup_steps=2))
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 40)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    seen = []

    def watch(trainer, record):
        seen.append((trainer.scaler.get_scale(), trainer.scheduler.last_epoch,
                     all(torch.equal(v, start[k]) for k, v in trainer.model.state_dict().items())))
    trainer.callbacks.append(watch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the scheduler's order warning would fail the test
        trainer.train()
    scales = [2.0 ** 40] + [scale for scale, _, _ in seen]
    skipped = [after < before for before, after in zip(scales, scales[1:])]
    assert skipped[0] and 5 <= sum(skipped) < 30, scales
    assert [epoch for _, epoch, _ in seen] == [sum(1 for s in skipped[:i + 1] if not s) for i in range(30)]
    updates = [i for i, s in enumerate(skipped) if not s]  # the first runs at the warm-up's learning rate of 0
    assert all(unchanged for _, _, unchanged in seen[:updates[1]]) and not seen[updates[1]][2]


@pytest.mark.parametrize("name, bf16", [("Tesla T4", 65e12), ("NVIDIA L4", 121e12), ("NVIDIA L40S", 362e12),
                                        ("NVIDIA A100-SXM4-40GB", 312e12), ("NVIDIA A10", 125e12),
                                        ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 80GB HBM3", 989e12),
                                        ("NVIDIA GeForce RTX 4090", None)])
def test_peak_flops_finds_the_gpu_by_name(monkeypatch, name, bf16):
    from minibert.speed import peak_flops

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_flops("cuda", "bf16") == bf16  # an unlisted GPU: no MFU rather than a wrong one


def test_progress_bar_shows_loss_tokens_per_second_and_mfu(dataset, tok, capsys):
    from minibert.speed import flops_per_token, peak_flops

    assert peak_flops("cpu", "fp32") is None  # MFU only where the GPU's peak is known
    trainer = Trainer(tiny_model(tok), dataset, config(max_steps=2, log_every=2, progress=True))
    assert trainer.peak_flops is None and trainer.flops_per_token == flops_per_token(trainer.model, 32)
    trainer.peak_flops = 1e12  # as on a GPU whose peak is 1 TFLOP/s
    record = trainer.train()[-1]
    assert record["mfu"] == pytest.approx(record["tokens_per_s"] * trainer.flops_per_token / 1e12)
    bar = capsys.readouterr().err
    assert "loss=" in bar and "tok/s=" in bar and "mfu=" in bar


def test_a_model_too_small_for_the_tokenizer_is_refused_before_training(dataset, tok):
    model = tiny_model(tok, vocab_size=len(tok) - 100)  # ids from len(tok) - 100 on would index past the table
    with pytest.raises(ValueError, match=rf"{len(tok)} token ids but the model's vocab_size is {len(tok) - 100}.*"
                                         r"vocab_size=len\(tokenizer\)"):
        Trainer(model, dataset, config())
    Trainer(tiny_model(tok, vocab_size=len(tok) + 8), dataset, config())  # a larger table (padded to 8) is fine


def test_data_loader_workers_change_nothing(docs, tok):
    """The recipe loads batches in 2 worker processes: the same pairs, masks (fresh each epoch) and losses as in the
    main process, across an epoch boundary."""
    losses = {}
    for workers in (0, 2):
        small = PretrainingDataset(docs[:4], tok, max_length=32, seed=0)
        steps = len(small) * 3 // (2 * 16) + 1  # one and a half epochs of batches of 16
        trainer = Trainer(tiny_model(tok), small, config(max_steps=steps, batch_size=16, num_workers=workers))
        losses[workers] = [r["loss"] for r in trainer.train()]
        assert trainer.epoch == 1
    assert losses[2] == losses[0]


def test_a_real_ctrl_c_finishes_the_step_then_saves(dataset, tok, tmp_path):
    import signal

    before = signal.getsignal(signal.SIGINT)

    def press_ctrl_c(trainer, record):
        if trainer.step == 2:
            signal.raise_signal(signal.SIGINT)  # the trainer's handler only takes note
    trainer = Trainer(tiny_model(tok), dataset, config(tmp_path), callbacks=[press_ctrl_c])
    trainer.train()
    assert trainer.interrupted and trainer.step == 3  # the next step ran to its end, then training stopped
    assert latest_checkpoint(tmp_path).name == "checkpoint-3"
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C is the learner's again


def test_ctrl_c_in_a_terminal_also_reaches_the_data_loader_workers(dataset, tok, tmp_path, capfd):
    """A terminal's Ctrl-C signals the whole process group: the workers (forked with the trainer's handler) ignore it
    and keep loading, and the learner sees the message once, from the trainer."""
    import multiprocessing
    import os
    import signal
    import time

    def press_ctrl_c_in_a_terminal(trainer, record):
        if trainer.step == 2:
            workers = multiprocessing.active_children()
            assert len(workers) == 2
            for worker in workers:
                os.kill(worker.pid, signal.SIGINT)
            time.sleep(0.3)  # time for the workers to handle it
            signal.raise_signal(signal.SIGINT)
    trainer = Trainer(tiny_model(tok), dataset, config(tmp_path, num_workers=2),
                      callbacks=[press_ctrl_c_in_a_terminal])
    trainer.train()
    assert trainer.interrupted and trainer.step == 3 and latest_checkpoint(tmp_path).name == "checkpoint-3"
    assert capfd.readouterr().out.count("Ctrl-C: finishing this step") == 1


def test_a_failed_checkpoint_write_leaves_the_last_one_intact(dataset, tok, tmp_path, monkeypatch):
    real_save = torch.save

    def disk_full(trainer, record):
        if trainer.step == 3:  # the checkpoint of step 4 will fail half-way, after the weights are written
            def failing_save(obj, path, *args, **kwargs):
                if str(path).endswith("trainer_state.pt"):
                    raise OSError("No space left on device")
                return real_save(obj, path, *args, **kwargs)
            monkeypatch.setattr(torch, "save", failing_save)
    trainer = Trainer(tiny_model(tok), dataset, config(tmp_path, max_steps=4, save_every=2), callbacks=[disk_full])
    with pytest.raises(OSError, match="No space left"):
        trainer.train()
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-2"]  # no half-written checkpoint-4
    assert latest_checkpoint(tmp_path).name == "checkpoint-2"
    resumed = Trainer(tiny_model(tok, seed=5), dataset, config(tmp_path, max_steps=4, save_every=2))
    resumed.train(resume_from=tmp_path)
    assert resumed.step == 4 and latest_checkpoint(tmp_path).name == "checkpoint-4"
    resumed.save_checkpoint()  # the same step again: replaced whole, nothing left behind
    assert sorted(p.name for p in tmp_path.iterdir() if "checkpoint-4" in p.name) == ["checkpoint-4"]
    assert (tmp_path / "checkpoint-4" / "trainer_state.pt").is_file()


# --------------------------------------------------------------------------- the command line and torchrun

CLI_TINY = ["--config", "tiny", "--set", "hidden_size=32", "--set", "num_attention_heads=2",
            "--set", "intermediate_size=64", "--set", "num_hidden_layers=1", "--seq-len", "32", "--batch-size", "4",
            "--max-documents", "12", "--eval-batches", "2", "--no-progress", "--log-every", "1"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, data_dir):
    path = tmp_path_factory.mktemp("corpus") / "wiki.txt"
    lines = [r["text"] for r in data.load_dataset("wikitext-2", "validation")]
    path.write_text("\n".join(lines[:900]) + "\n", encoding="utf-8")
    return path


def test_cli_pretrains_and_resumes(corpus_file, tmp_path, capsys):
    from minibert.__main__ import main

    out = tmp_path / "run"
    assert main(["pretrain", *CLI_TINY, "--corpus", str(corpus_file), "--max-steps", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "MLM accuracy" in text and "NSP accuracy" in text and (out / "loss_curve.png").is_file()
    assert main(["pretrain", *CLI_TINY, "--corpus", str(corpus_file), "--max-steps", "4", "--out", str(out),
                 "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert [r["step"] for r in history if "loss" in r] == [1, 2, 3, 4]


def test_torchrun_with_two_cpu_processes(corpus_file, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MINIBERT_DEVICE": "cpu"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "minibert", "pretrain", *CLI_TINY, "--corpus", str(corpus_file), "--max-steps", "3",
           "--out", str(out)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all 2 ranks agree on the weights" in result.stdout
    assert result.stdout.count("NSP accuracy") == 1  # only rank 0 prints
    assert "2 process(es)" in result.stdout
    assert (out / "checkpoint-3" / "model.safetensors").is_file()
    state = torch.load(out / "checkpoint-3" / "trainer_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2


def test_course_checkpoint_finds_the_learners_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIBERT_CHECKPOINT", raising=False)
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    monkeypatch.chdir(lessons)
    assert course_checkpoint() is None  # nothing pre-trained yet: the lessons say so and go on
    for step in (900, 1000):
        (tmp_path / "runs" / "mini" / f"checkpoint-{step}").mkdir(parents=True)
    assert course_checkpoint().resolve() == tmp_path / "runs" / "mini" / "checkpoint-1000"  # from lessons/
    drive = tmp_path / "drive" / "my-bert"
    drive.mkdir(parents=True)
    (drive / "config.json").write_text("{}")
    monkeypatch.setenv("MINIBERT_CHECKPOINT", str(drive))
    assert course_checkpoint() == drive
    monkeypatch.setenv("MINIBERT_CHECKPOINT", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="MINIBERT_CHECKPOINT=.*nowhere.*runs/mini"):
        course_checkpoint()


# --------------------------------------------------------------------------- robustness (issue 13)


def test_an_empty_dataset_is_refused_instead_of_training_forever(tok):
    with pytest.raises(ValueError, match="the training dataset is empty"):
        Trainer(tiny_model(tok), [], config(), collate_fn=list)


def test_an_epoch_without_a_batch_stops_with_an_error(dataset, tok):
    trainer = Trainer(tiny_model(tok), dataset, config())
    trainer.loader = []  # a loader that gives nothing (the sampler's share of a tiny dataset, say): no endless loop
    with pytest.raises(ValueError, match="epoch 0 has no batch"):
        trainer.train()


def test_a_nan_gradient_without_clipping_stops_before_it_reaches_the_weights(dataset, tok, tmp_path):
    model = tiny_model(tok)
    saved = {}

    def poison_grads_after_3(trainer, record):
        saved[trainer.step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        if trainer.step == 3:  # the loss stays finite; one gradient becomes NaN
            trainer.model.nsp_head.classifier.weight.register_hook(lambda grad: grad * float("nan"))
    trainer = Trainer(model, dataset, config(tmp_path, save_every=2, clip_grad_norm=None),
                      callbacks=[poison_grads_after_3])
    with pytest.raises(TrainingDivergedError, match=r"gradient norm became nan at step 4.*checkpoint-2, is intact"):
        trainer.train()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved[3].items())  # step 4 changed nothing
    assert all(torch.isfinite(p).all() for p in model.parameters())


def stop_at(step):
    def callback(trainer, record):
        if trainer.step == step:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("change, message", [
    (dict(lr=1e-3), "lr 0.003 (given 0.001)"),
    (dict(batch_size=4), "batch_size 8 (given 4)"),
    (dict(grad_accum_steps=2, seed=1), "grad_accum_steps 1 (given 2), seed 0 (given 1)"),
    (dict(warmup_steps=3), "warmup_steps 1 (given 3)"),
])
def test_resuming_with_other_settings_is_refused_naming_each(dataset, tok, tmp_path, change, message):
    Trainer(tiny_model(tok), dataset, config(tmp_path), callbacks=[stop_at(2)]).train()
    again = Trainer(tiny_model(tok), dataset, config(tmp_path, **change))
    with pytest.raises(ResumeMismatchError, match=re.escape(message)):
        again.train(resume_from=tmp_path)
    assert again.step == 0  # nothing was loaded


def test_resuming_with_another_model_or_vocabulary_is_refused(dataset, tok, tmp_path):
    Trainer(tiny_model(tok), dataset, config(tmp_path), callbacks=[stop_at(2)], vocab_file=data.vocab_file()).train()
    wider = Trainer(tiny_model(tok, hidden_size=64), dataset, config(tmp_path), vocab_file=data.vocab_file())
    with pytest.raises(ResumeMismatchError, match=r"model.hidden_size 32 \(given 64\)"):
        wider.train(resume_from=tmp_path)
    other_vocab = tmp_path.parent / "other_vocab.txt"
    other_vocab.write_text(data.vocab_file().read_text(encoding="utf-8").replace("[unused0]", "[unused00]"))
    same_size = Trainer(tiny_model(tok), dataset, config(tmp_path), vocab_file=other_vocab)
    with pytest.raises(ResumeMismatchError, match="vocab_file .*checkpoint-2/vocab.txt"):
        same_size.train(resume_from=tmp_path)


def test_a_longer_max_steps_on_resume_follows_the_longer_schedule_and_says_so(dataset, tok, tmp_path, capsys):
    short = dict(warmup_steps=None, max_steps=10)
    Trainer(tiny_model(tok), dataset, config(tmp_path / "a", **short), callbacks=[stop_at(5)]).train()
    longer = Trainer(tiny_model(tok), dataset, config(tmp_path / "a", warmup_steps=None, max_steps=20))
    history = longer.train(resume_from=tmp_path / "a")
    said = capsys.readouterr().out
    assert "max_steps 20 instead of the run's 10" in said and "warm-up 1 steps" in said, said
    # the lr from step 5 on is that of a run started with 20 steps and the run's own warm-up (1 step, not 2)
    straight = Trainer(tiny_model(tok), dataset, config(tmp_path / "b", warmup_steps=1, max_steps=20)).train()
    assert [r["lr"] for r in history if r["step"] > 5] == pytest.approx([r["lr"] for r in straight if r["step"] > 5])
    assert history[-1]["step"] == 20 and history[-1]["lr"] == 0.0
    again = Trainer(tiny_model(tok), dataset, config(tmp_path / "a", warmup_steps=None, max_steps=20))
    again.train(resume_from=tmp_path / "a")  # the extended run resumes as itself: its warm-up is still 1 step
    assert "nothing to train" in capsys.readouterr().out and again.warmup_steps == 1


def test_checkpoint_files_reach_the_disk_before_the_rename(dataset, tok, tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(a), str(b))), real_replace(a, b)))
    Trainer(tiny_model(tok), dataset, config(tmp_path, max_steps=1)).train()
    rename = events.index(("replace", str(tmp_path / ".checkpoint-1.tmp"), str(tmp_path / "checkpoint-1")))
    flushed = {e[1] for e in events[:rename] if e[0] == "fsync"}
    tmp = tmp_path / ".checkpoint-1.tmp"
    assert {str(tmp / name) for name in ("config.json", "model.safetensors", STATE_FILE)} | {str(tmp)} <= flushed
    assert ("fsync", str(tmp_path)) in events[rename:]  # the rename itself


@pytest.mark.parametrize("broken", ["model.safetensors", STATE_FILE, "config.json"])
def test_a_corrupt_checkpoint_file_is_named_with_an_earlier_checkpoint(dataset, tok, tmp_path, broken):
    Trainer(tiny_model(tok), dataset, config(tmp_path, max_steps=4, save_every=2)).train()
    path = tmp_path / "checkpoint-4" / broken
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a copy killed half-way
    trainer = Trainer(tiny_model(tok), dataset, config(tmp_path, max_steps=4, save_every=2))
    earlier = re.escape(str(tmp_path / "checkpoint-2"))
    with pytest.raises(UnreadableCheckpointError,
                       match=rf"{re.escape(str(path))} is truncated or corrupt.*earlier checkpoint: {earlier}"):
        trainer.train(resume_from=tmp_path)
    if broken != STATE_FILE:  # the same words from from_pretrained
        with pytest.raises(UnreadableCheckpointError, match=re.escape(str(path))):
            BertForPreTraining.from_pretrained(tmp_path / "checkpoint-4")


def test_labels_out_of_range_are_named_before_cross_entropy(dataset, tok):
    model = tiny_model(tok)
    batch = dataset.collate([dataset[i] for i in range(4)])
    bad_nsp = {**batch, "nsp_labels": torch.tensor([0, 1, 2, 0])}
    with pytest.raises(ValueError, match=r"nsp_labels holds 2, outside 0..1"):
        model(**bad_nsp)
    mlm = batch["mlm_labels"].clone()
    mlm[mlm != IGNORE_INDEX] = len(tok) + 5
    with pytest.raises(ValueError, match=rf"mlm_labels holds {len(tok) + 5}, outside 0..{len(tok) - 1}"):
        model(**{**batch, "mlm_labels": mlm})
    with pytest.raises(ValueError, match=r"input_ids has no tokens \(shape \(2, 0\)\)"):
        model(torch.zeros(2, 0, dtype=torch.long))


def test_step_time_leaves_out_evaluation_on_any_machine(dataset, tok, monkeypatch):
    """Evaluation (here a fake clock's 1,000 s) is not counted in seconds_per_step or tokens/s: no real time assumed."""
    import time

    real, offset = time.perf_counter, [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: real() + offset[0])

    def slow_evaluation(model):
        offset[0] += 1000.0
        return {"mlm_accuracy": 0.0}
    trainer = Trainer(tiny_model(tok), dataset, config(max_steps=4, log_every=1, eval_every=1, batch_size=4),
                      eval_fn=slow_evaluation)
    logs = [r for r in trainer.train() if "loss" in r]
    assert [r["step"] for r in logs] == [1, 2, 3, 4]
    assert all(0 < r["seconds_per_step"] < 1000 for r in logs), [r["seconds_per_step"] for r in logs]
    tokens = [r["tokens_per_s"] * r["seconds_per_step"] for r in logs]  # the tokens of one step: 4 pairs of <= 32
    assert all(4 * 3 <= t <= 4 * 32 for t in tokens), tokens


# --------------------------------------------------------------------------- the command line's errors: one line each


def cli_error(argv) -> str:
    """The message of the SystemExit that `python -m minibert` ends with (no traceback), or fail."""
    from minibert.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    message = str(stopped.value.code)
    assert "Traceback" not in message and message.count("\n") <= 1, message
    return message


@pytest.mark.parametrize("flags, expected", [
    (["--config", "minni"], "--config 'minni' is neither a preset (tiny, mini, small, medium, base, large) nor a "
                            "config.json file; did you mean --config mini?"),
    (["--set", "hiden_size=64"], "BertConfig has no field 'hiden_size'; did you mean --set hidden_size=64?"),
    (["--seq-len", "100"], "pass --seq-len 64 or less, or give the model more positions with --set "
                           "max_position_embeddings=100"),
])
def test_cli_plain_mistakes_are_one_line(corpus_file, tmp_path, flags, expected):
    argv = ["pretrain", *CLI_TINY, "--set", "max_position_embeddings=64", "--corpus", str(corpus_file),
            "--out", str(tmp_path / "run"), *flags]
    assert expected in cli_error(argv)


@pytest.mark.parametrize("argv", [["pretrain", "--batch-size", "0"], ["finetune", "sst2", "--from", "course",
                                                                      "--batch-size", "0"],
                                  ["finetune", "sst2", "--from", "course", "--train-limit", "0"],
                                  ["finetune", "sst2", "--from", "course", "--epochs", "0"]])
def test_cli_refuses_zero_sizes_before_loading_anything(argv, capsys):
    from minibert.__main__ import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert re.search(r"argument --[a-z-]+: must be (at least 1|more than 0), got 0", capsys.readouterr().err)


def test_cli_corpus_without_text_or_with_one_document(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n", encoding="utf-8")
    assert "it holds no text" in cli_error(["pretrain", *CLI_TINY, "--corpus", str(empty), "--out", str(tmp_path)])
    one = tmp_path / "one.txt"  # one long text, as zh-wiki-sample is
    one.write_text("\n".join(f"This is sentence number {i} of one long text." for i in range(60)), encoding="utf-8")
    argv = ["pretrain", *CLI_TINY, "--corpus", str(one), "--out", str(tmp_path / "run"), "--max-steps", "1"]
    assert "--sentences-per-document 20" in cli_error(argv)
    from minibert.__main__ import main

    assert main(argv + ["--sentences-per-document", "20"]) == 0  # what the message says to type works


def test_cli_resume_names_the_flags_that_differ(corpus_file, tmp_path):
    from minibert.__main__ import main

    out = tmp_path / "run"
    argv = ["pretrain", *CLI_TINY, "--corpus", str(corpus_file), "--max-steps", "2", "--out", str(out)]
    assert main(argv) == 0
    message = cli_error(argv + ["--resume", "--lr", "0.001", "--vocab", "bert-base-chinese"])
    vocab = data.vocab_file("bert-base-chinese")
    assert f"was trained with --lr 0.0001 --vocab {out}/checkpoint-2/vocab.txt (30,522 tokens)" in message, message
    assert f"not --lr 0.001 --vocab {vocab} (21,128 tokens)" in message, message
    (out / "checkpoint-2" / "model.safetensors").write_bytes(b"")  # a disk that filled up
    message = cli_error(argv + ["--resume"])
    assert "checkpoint-2/model.safetensors is truncated or corrupt" in message, message


def test_cli_default_split_is_one_the_local_copy_holds(tmp_path, capsys, monkeypatch):
    """WikiText-2's local copy has no train split: the default trains on test and holds out validation, and says so;
    asking for train where it cannot be had is one line that names the splits there are (issue 14)."""
    from minibert.__main__ import main

    argv = ["pretrain", *CLI_TINY, "--corpus", "wikitext-2", "--out", str(tmp_path / "run"), "--max-steps", "1"]
    assert main(argv) == 0
    assert "training on 'test', holding out 'validation'" in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "datasets", None)  # no download possible: the local copy is all there is
    message = cli_error(argv + ["--split", "train"])
    assert "use a split that the local copy holds (validation, test; on the command line --split" in message, message
