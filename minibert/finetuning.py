"""Fine-tuning, lessons 07-10: evaluation, the baselines, and `finetune`, the Trainer that keeps the best epoch.

What it does:
- `predict` and `evaluate` (accuracy and F1, similarity correlations, entity-level F1, SQuAD exact match and F1),
  `baseline_metrics` (what a model that learned nothing scores: the majority class, the mean score, all-O, the empty
  answer).
- `finetune(model, train, held_out, config)`: `minibert.training.Trainer` with an evaluation each epoch and the best
  weights kept (`KeepBest`), returning the best metrics, the history and the time per epoch.
The heads are in `minibert.heads`, each task's data in `minibert.finetuning_data`, and the catalogue of tasks (their
datasets, quick and full settings, and fine-tuning from several starts) in `minibert.tasks`.

What it leaves out: layer-wise learning-rate decay, early stopping, and ensembling.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from minibert import metrics
from minibert.finetuning_data import (
    TaskDataset,
    postprocess_qa,
)
from minibert.heads import QAOutput
from minibert.model import IGNORE_INDEX

# ---------------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model, dataset: TaskDataset, batch_size: int = 64, progress: bool = False):
    """Run the model in eval mode over a dataset, shortest items first (less padding). Returns the logits of each item,
    in the dataset's order and without padding ((K,), (T_i, K), or (T_i, 2) = start and end), and the mean loss."""
    from tqdm.auto import tqdm

    from minibert.runtime import pick_precision

    device = next(model.parameters()).device
    precision = pick_precision(device)
    was_training = model.training
    model.eval()
    order = sorted(range(len(dataset)), key=lambda i: len(dataset[i]["input_ids"]))
    outputs, loss_sum, n_loss = [None] * len(dataset), 0.0, 0
    for at in tqdm(range(0, len(order), batch_size), disable=not progress, desc="evaluating", leave=False):
        index = order[at:at + batch_size]
        batch = {k: v.to(device) for k, v in dataset.collate([dataset[i] for i in index]).items()}
        with precision.autocast(device):
            out = model(**batch)
        if out.loss is not None:
            loss_sum, n_loss = loss_sum + out.loss.float().item() * len(index), n_loss + len(index)
        logits = (torch.stack([out.start_logits, out.end_logits], -1) if isinstance(out, QAOutput)
                  else out.logits).float().cpu()  # (B, K), (B, T, K) or (B, T, 2)
        for row, i in enumerate(index):
            outputs[i] = logits[row] if logits.dim() == 2 else logits[row, :len(dataset[i]["input_ids"])]
    model.train(was_training)
    return outputs, (loss_sum / n_loss if n_loss else None)


def classification_metrics(y_true, y_pred, num_labels: int) -> dict[str, float]:
    f1 = metrics.f1_binary(y_true, y_pred) if num_labels == 2 else metrics.f1_macro(y_true, y_pred, range(num_labels))
    return {"accuracy": metrics.accuracy(y_true, y_pred), "f1": f1}


def similarity_metrics(y_true, y_pred) -> dict[str, float]:
    """STS-B's metrics: Pearson and Spearman correlations, and the mean squared error (the loss)."""
    return {"pearson": metrics.pearson(y_true, y_pred), "spearman": metrics.spearman(y_true, y_pred),
            "mse": metrics.mean_squared_error(y_true, y_pred)}


def ner_metrics(dataset: TaskDataset, predicted_tags: list[list[str]]) -> dict[str, float]:
    gold = [r["ner_tags"] for r in dataset.records]
    scores = metrics.entity_prf(gold, predicted_tags)
    words = [(t, p) for g, q in zip(gold, predicted_tags) for t, p in zip(g, q)]
    return {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
            "accuracy": sum(t == p for t, p in words) / max(1, len(words))}


def evaluate(model, dataset: TaskDataset, batch_size: int = 64, progress: bool = False, n_best: int | None = None,
             max_answer_length: int = 30) -> dict[str, float]:
    """The task's metrics on a held-out TaskDataset: accuracy and F1 (binary, or macro for more than two classes);
    Pearson, Spearman and mean squared error of similarity scores; entity precision/recall/F1 and word accuracy; or
    SQuAD exact match and F1 (0-1). Plus the mean "loss"."""
    logits, loss = predict(model, dataset, batch_size, progress)
    if dataset.task == "classification":
        result = classification_metrics([it["labels"] for it in dataset.items], [int(x.argmax()) for x in logits],
                                        len(dataset.labels))
    elif dataset.task == "similarity":
        result = similarity_metrics([it["labels"] for it in dataset.items], [float(x[0]) for x in logits])
    elif dataset.task == "ner":
        result = ner_metrics(dataset, predicted_word_tags(dataset, logits))
    else:
        predictions = postprocess_qa(dataset, [x[:, 0] for x in logits], [x[:, 1] for x in logits],
                                     dataset.records, max_answer_length, n_best)
        result = metrics.squad_evaluate(predictions, dataset.records, chinese=dataset.chinese)
    return {**result, **({"loss": loss} if loss is not None else {})}


def predicted_word_tags(dataset: TaskDataset, logits) -> list[list[str]]:
    """One tag per word: the prediction on its first sub-word; 'O' for words without a token."""
    tags = []
    for item, record, x in zip(dataset.items, dataset.records, logits):
        words = ["O"] * len(record["tokens"])
        scored = [t for t, y in enumerate(item["labels"]) if y != IGNORE_INDEX]
        for t, w in zip(scored, item["words"]):
            words[w] = dataset.labels[int(x[t].argmax())]
        tags.append(words)
    return tags


def baseline_metrics(dataset: TaskDataset, train: TaskDataset | None = None) -> dict[str, float]:
    """What a model that learned nothing scores: the most frequent label of `train` (else of `dataset`) for every
    sentence; its mean score for every pair; 'O' for every word; the empty answer for every question."""
    if len(dataset) == 0 or (train is not None and len(train) == 0):
        raise ValueError(f"baseline_metrics got an empty {'held-out' if len(dataset) == 0 else 'training'} dataset: "
                         f"there is nothing to score (check the limits and filters that built it)")
    if dataset.task == "classification":
        labels = [it["labels"] for it in (train or dataset).items]
        majority = max(sorted(set(labels)), key=labels.count)
        return classification_metrics([it["labels"] for it in dataset.items], [majority] * len(dataset),
                                      len(dataset.labels))
    if dataset.task == "similarity":  # the mean training score for every pair: it ranks nothing (correlations 0)
        mean = sum(it["labels"] for it in (train or dataset).items) / len((train or dataset).items)
        return similarity_metrics([it["labels"] for it in dataset.items], [mean] * len(dataset))
    if dataset.task == "ner":
        return ner_metrics(dataset, [["O"] * len(r["tokens"]) for r in dataset.records])
    return metrics.squad_evaluate({}, dataset.records, chinese=dataset.chinese)


# ---------------------------------------------------------------------------------------------------- training


class KeepBest:
    """A Trainer callback: after each evaluation, keep the weights with the best `metric` (a copy in memory, and a
    Hugging Face folder when `folder` is given). `restore(model)` puts them back."""

    def __init__(self, metric: str, folder=None, greater_is_better: bool = True, vocab_file=None):
        self.metric, self.folder, self.greater, self.vocab_file = metric, folder, greater_is_better, vocab_file
        self.best_value = self.best_step = self.best_metrics = self.state = None
        self._seen = -1

    def __call__(self, trainer, record) -> None:
        evals = [r for r in trainer.history if r.get("step") == trainer.step and f"eval_{self.metric}" in r]
        if not evals or trainer.step == self._seen:
            return
        self._seen = trainer.step
        value = evals[-1][f"eval_{self.metric}"]
        if self.best_value is None or (value > self.best_value if self.greater else value < self.best_value):
            self.best_value, self.best_step = value, trainer.step
            self.best_metrics = {k[5:]: v for k, v in evals[-1].items() if k.startswith("eval_")}
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
            if self.folder is not None and trainer.is_main:
                trainer.model.save_pretrained(self.folder, vocab_file=self.vocab_file)

    def restore(self, model) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


@dataclass
class FinetuneResult:
    trainer: object
    history: list[dict]
    best_metrics: dict | None  # the held-out metrics of the kept weights
    best_step: int | None
    steps_per_epoch: int
    seconds_per_epoch: float  # training time only (evaluation excluded)
    eval_seconds: float


def finetune(model, train: TaskDataset, held_out: TaskDataset, config=None, epochs: float | None = 3,
             metric: str | None = None, out_dir=None, vocab_file=None, restore_best: bool = True,
             warmup_ratio: float | None = 0.1, batch_size_eval: int = 64) -> FinetuneResult:
    """Fine-tune with `minibert.training.Trainer` (AdamW, warm-up then linear decay, dynamic padding, progress
    bar): `epochs` passes over `train`, an evaluation on `held_out` at the end of every epoch, and the weights with
    the best `metric` kept (written to out_dir/best, and put back into the model at the end with restore_best).

    `config` is a TrainingConfig; its max_steps becomes epochs x steps per epoch (pass epochs=None to keep it), its
    eval_every one epoch unless set, its warm-up `warmup_ratio` of the steps (None: keep config.warmup_steps).
    metric: "accuracy" for sentences, "spearman" for similarity scores, "f1" for entities and answers by default;
    "loss" and "mse" are minimised.
    """
    from minibert.training import Trainer, TrainingConfig

    config = config or TrainingConfig(lr=5e-5, batch_size=32)
    steps_per_epoch = max(1, math.ceil(len(train) / config.batch_size) // config.grad_accum_steps)
    if epochs is not None:
        config = replace(config, max_steps=max(1, round(epochs * steps_per_epoch)))
    if warmup_ratio is not None:
        config = replace(config, warmup_steps=round(warmup_ratio * config.max_steps))
    config = replace(config, eval_every=config.eval_every or steps_per_epoch, out_dir=out_dir or config.out_dir)
    metric = metric or {"classification": "accuracy", "similarity": "spearman"}.get(train.task, "f1")
    timer = {"eval": 0.0}

    def eval_fn(m):
        t = time.perf_counter()
        result = evaluate(m, held_out, batch_size_eval, progress=config.progress)
        timer["eval"] += time.perf_counter() - t
        return result

    folder = Path(config.out_dir) / "best" if config.out_dir else None
    keep = KeepBest(metric, folder, greater_is_better=metric not in ("loss", "mse"), vocab_file=vocab_file)
    trainer = Trainer(model, train, config, eval_fn=eval_fn, callbacks=[keep], vocab_file=vocab_file)
    start = time.perf_counter()
    history = trainer.train()
    total = time.perf_counter() - start
    if restore_best:
        keep.restore(model)
    epochs_done = max(trainer.step / steps_per_epoch, 1e-9)
    return FinetuneResult(trainer, history, keep.best_metrics, keep.best_step, steps_per_epoch,
                          (total - timer["eval"]) / epochs_done, timer["eval"])
