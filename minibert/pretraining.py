"""Pre-training, lesson 06: how well BERT has learned its two tasks, the curves, and the learner's own checkpoint.

Lesson 06 writes the training loop by hand; `minibert.training.Trainer` is that loop with what long runs need
(`minibert.resume`: checkpoints and exact resumption; `minibert.distributed`: several GPUs). The loss it minimises is
`BertForPreTraining`'s (minibert.model): mlm_loss + nsp_loss, two separate cross-entropies, so that NotNext pairs
can never be ignored the way one shared `ignore_index` ignores them.

What it does:
- `evaluate_pretraining(model, dataset)`: MLM accuracy (over the masked positions) and NSP accuracy (over the
  pairs), and the held-out losses.
- `plot_loss_curve(history)`: the training losses (total, MLM, NSP) against the step, the held-out loss as points.
- `course_checkpoint()`: the learner's own checkpoint for the fine-tuning lessons (runs/mini or $MINIBERT_CHECKPOINT).

What it leaves out: perplexity (BERT is not a left-to-right language model), and evaluating on downstream tasks
while pre-training (lessons 07-10 do that afterwards).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from minibert.resume import latest_checkpoint
from minibert.runtime import pick_precision

COURSE_RUN = "runs/mini"  # where lesson 06 (full mode) and `python -m minibert pretrain --out runs/mini` write


def course_checkpoint() -> Path | None:
    """The learner's own pre-trained encoder for lessons 07-10, or None: $MINIBERT_CHECKPOINT when set (a
    checkpoint folder, or a run folder whose latest checkpoint-<step> is taken), else the latest checkpoint of
    runs/mini in the current folder or its parent (a lesson runs from lessons/, next to runs/)."""
    given = os.environ.get("MINIBERT_CHECKPOINT")
    for run in [Path(given)] if given else [Path(COURSE_RUN), Path("..") / COURSE_RUN]:
        if (run / "config.json").is_file():
            return run
        if (found := latest_checkpoint(run)) is not None:
            return found
    if given:
        raise FileNotFoundError(f"MINIBERT_CHECKPOINT={given} holds neither config.json nor a checkpoint-<step> "
                                "folder: point it at lesson 06's run folder (runs/mini) or one of its checkpoints")
    return None


# ------------------------------------------------------------------------------------------ evaluation and plots


@torch.no_grad()
def evaluate_pretraining(model: nn.Module, dataset, batch_size: int = 32, device=None, precision=None,
                         max_batches: int | None = None) -> dict[str, float]:
    """MLM accuracy (over the predicted positions) and NSP accuracy (over the pairs) on held-out examples.

    Use a dataset with `static_masking=True` so that every evaluation sees the same masks. Returns
    {"mlm_accuracy", "nsp_accuracy", "mlm_loss", "nsp_loss", "loss"}, losses averaged per batch.
    """
    model = getattr(model, "module", model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    precision = precision or pick_precision(device)
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate)
    mlm_right = mlm_total = nsp_right = nsp_total = 0
    losses = {"loss": 0.0, "mlm_loss": 0.0, "nsp_loss": 0.0}
    n_batches = 0
    for batch in loader:
        if max_batches is not None and n_batches >= max_batches:
            break
        batch = {k: v.to(device) for k, v in batch.items()}
        with precision.autocast(device):
            out = model(**batch)
        labels = batch["mlm_labels"]
        targets = labels[labels != -100]  # (N,) in the order of the model's (N, V) logits
        mlm_logits = out.mlm_logits if out.mlm_logits.dim() == 2 else out.mlm_logits[labels != -100]
        mlm_right += (mlm_logits.argmax(-1) == targets).sum().item()
        mlm_total += targets.numel()
        nsp_right += (out.nsp_logits.argmax(-1) == batch["nsp_labels"]).sum().item()
        nsp_total += batch["nsp_labels"].numel()
        for key in losses:
            losses[key] += getattr(out, key).float().item()
        n_batches += 1
    model.train(was_training)
    if n_batches == 0:
        raise ValueError("evaluate_pretraining got an empty dataset")
    return {"mlm_accuracy": mlm_right / max(1, mlm_total), "nsp_accuracy": nsp_right / max(1, nsp_total),
            **{k: v / n_batches for k, v in losses.items()}}


def plot_loss_curve(history: list[dict], ax=None, title: str = "Pre-training loss"):
    """Training loss (total, MLM, NSP) against the step, and the evaluation losses as points. Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    train = [r for r in history if "loss" in r]
    if not train:
        raise ValueError("the history has no training records yet: train for at least log_every steps")
    steps = [r["step"] for r in train]
    ax.plot(steps, [r["loss"] for r in train], label="loss (MLM + NSP)")
    for key, label in (("mlm_loss", "MLM loss"), ("nsp_loss", "NSP loss")):
        if all(key in r for r in train):
            ax.plot(steps, [r[key] for r in train], label=label, alpha=0.7)
    evals = [r for r in history if "eval_loss" in r]
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o--", label="held-out loss")
    ax.set_title(title)
    ax.set_xlabel("optimizer step")
    # whole steps only (a short run got ticks at 2.5, 3.5...), spaced as matplotlib's default spaces them
    ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 5, 10], integer=True))
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
