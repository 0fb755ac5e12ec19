"""Checker for lesson 06's exercise: the pre-training loss, two separate cross-entropies.

`check_pretraining_loss(pretraining_loss)` calls the learner's
`pretraining_loss(mlm_logits (B, T, V), nsp_logits (B, 2), mlm_labels (B, T), nsp_labels (B,))`, which returns
`(loss, mlm_loss, nsp_loss)`, on random logits, and compares each value with the losses `BertForPreTraining` computes
(mean cross-entropy over the labelled positions, mean cross-entropy over the pairs, their sum). The batches have
padded rows, and two of them hold only IsNext or only NotNext pairs, where a loss that shares an `ignore_index`
between the two heads goes wrong. It raises `CheckFailed` at the first value that differs, with a hint when the
difference looks like a known bug.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from minibert.checks import CheckFailed, passed, reports_stubs
from minibert.model import IGNORE_INDEX


def _batch(seed: int, nsp: str, B: int = 6, T: int = 24, V: int = 50):
    """Random logits and labels: 15% of the real positions labelled, the end of each row padding (label -100)."""
    g = torch.Generator().manual_seed(seed)
    mlm_logits = (2 * torch.randn(B, T, V, generator=g)).requires_grad_()
    nsp_logits = torch.randn(B, 2, generator=g).requires_grad_()
    lengths = torch.randint(T // 3, T + 1, (B,), generator=g)
    real = torch.arange(T) < lengths[:, None]  # (B, T)
    chosen = real & (torch.rand(B, T, generator=g) < 0.15)
    chosen[:, 1] = True  # at least one labelled position per row
    mlm_labels = torch.where(chosen, torch.randint(1, V, (B, T), generator=g), IGNORE_INDEX)
    if nsp == "mixed":
        nsp_labels = torch.tensor([0, 1] * (B // 2))[torch.randperm(B, generator=g)]
    else:
        nsp_labels = torch.full((B,), {"IsNext": 0, "NotNext": 1}[nsp])
    return mlm_logits, nsp_logits, mlm_labels, nsp_labels


def _reference(mlm_logits, nsp_logits, mlm_labels, nsp_labels):
    """What BertForPreTraining computes (it runs its decoder on the labelled positions only; the values agree)."""
    labelled = mlm_labels != IGNORE_INDEX
    mlm_loss = F.cross_entropy(mlm_logits[labelled], mlm_labels[labelled])
    nsp_loss = F.cross_entropy(nsp_logits, nsp_labels)
    return mlm_loss + nsp_loss, mlm_loss, nsp_loss


def _scalar(name: str, value, case: str) -> torch.Tensor:
    if value is None:
        raise CheckFailed(f"{name} is None ({case}). Did you forget to return (loss, mlm_loss, nsp_loss)?")
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{name} must be a tensor (keep it a tensor so that .backward() works), got "
                          f"{type(value).__name__} ({case}).")
    if value.numel() != 1:
        raise CheckFailed(f"{name} has shape {tuple(value.shape)} ({case}): average it to a single number.")
    return value.reshape(())


def _mlm_hint(got: float, mlm_logits, mlm_labels) -> str:
    B, T, V = mlm_logits.shape
    labelled = mlm_labels != IGNORE_INDEX
    per_position = F.cross_entropy(mlm_logits[labelled], mlm_labels[labelled], reduction="none").detach()
    if math.isclose(got, per_position.sum().item() / (B * T), rel_tol=1e-4):
        return (" It equals the sum over the labelled positions divided by all B x T positions: padding and "
                "unlabelled positions must not count in the mean. Average over the labelled positions only.")
    if math.isclose(got, per_position.sum().item(), rel_tol=1e-4):
        return " It is the sum over the labelled positions: BERT's MLM loss is their mean."
    if not math.isfinite(got):
        return " Did every position get ignored? Only the label -100 marks a position to skip."
    return ""


@reports_stubs
def check_pretraining_loss(pretraining_loss) -> None:
    """pretraining_loss(mlm_logits, nsp_logits, mlm_labels, nsp_labels) -> (loss, mlm_loss, nsp_loss)."""
    for seed, nsp in ((0, "mixed"), (1, "NotNext"), (2, "IsNext"), (3, "mixed")):
        mlm_logits, nsp_logits, mlm_labels, nsp_labels = _batch(seed, nsp)
        case = f"a batch whose NSP labels are all {nsp}" if nsp != "mixed" else "a batch with IsNext and NotNext pairs"
        inputs = [t.detach().clone() for t in (mlm_logits, nsp_logits, mlm_labels, nsp_labels)]
        result = pretraining_loss(mlm_logits, nsp_logits, mlm_labels, nsp_labels)
        if result is None or not isinstance(result, (tuple, list)) or len(result) != 3:
            raise CheckFailed(f"pretraining_loss must return a tuple (loss, mlm_loss, nsp_loss), got "
                              f"{type(result).__name__ if result is not None else 'None'}.")
        if not all(torch.equal(a, b.detach()) for a, b in zip(inputs, (mlm_logits, nsp_logits, mlm_labels,
                                                                       nsp_labels))):
            raise CheckFailed("pretraining_loss changed its inputs in place: leave the logits and labels as they are.")
        loss, mlm_loss, nsp_loss = (_scalar(n, v, case) for n, v in zip(("loss", "mlm_loss", "nsp_loss"), result))
        expected = _reference(mlm_logits, nsp_logits, mlm_labels, nsp_labels)
        got_nsp, exp_nsp = nsp_loss.item(), expected[2].item()
        if not math.isclose(got_nsp, exp_nsp, rel_tol=1e-4, abs_tol=1e-6):
            hint = ""
            for ignored, name in ((0, "IsNext (0)"), (1, "NotNext (1)")):
                kept = nsp_labels != ignored
                if kept.any() and math.isclose(got_nsp, F.cross_entropy(nsp_logits[kept], nsp_labels[kept]).item(),
                                               rel_tol=1e-4):
                    hint = (f" It is the loss of the other pairs alone: the pairs labelled {name} are ignored. Does "
                            f"the NSP loss share an ignore_index with the MLM loss? NSP has no padding to skip: give "
                            f"it its own cross-entropy over every pair.")
            if nsp != "mixed" and (not math.isfinite(got_nsp) or got_nsp == 0.0):
                hint = (f" On a batch of {nsp} pairs only, your NSP loss is {got_nsp}: those labels are being "
                        f"ignored. Does the NSP loss share an ignore_index with the MLM loss? NSP has no padding to "
                        f"skip: give it its own cross-entropy over every pair.")
            raise CheckFailed(f"nsp_loss on {case} is {got_nsp:.6g}, off by {abs(got_nsp - exp_nsp):.3g}.{hint}")
        got_mlm, exp_mlm = mlm_loss.item(), expected[1].item()
        if not math.isclose(got_mlm, exp_mlm, rel_tol=1e-4, abs_tol=1e-6):
            raise CheckFailed(f"mlm_loss on {case} is {got_mlm:.6g}, off by {abs(got_mlm - exp_mlm):.3g}."
                              + _mlm_hint(got_mlm, mlm_logits, mlm_labels))
        if not math.isclose(loss.item(), expected[0].item(), rel_tol=1e-4, abs_tol=1e-6):
            raise CheckFailed(f"loss on {case} is {loss.item():.6g}, but mlm_loss + nsp_loss is "
                              f"{(mlm_loss + nsp_loss).item():.6g}: BERT's loss is the plain sum of the two.")
        if not loss.requires_grad:
            raise CheckFailed("loss does not require a gradient: build it from the logits with torch operations "
                              "(no .item(), no .detach()) so that loss.backward() reaches the model.")
        loss.backward()
        if nsp_logits.grad is None or not nsp_logits.grad.abs().sum() > 0:
            raise CheckFailed(f"on {case}, the loss sends no gradient to nsp_logits: those pairs teach the NSP head "
                              f"nothing.")
    passed("pretraining_loss")
