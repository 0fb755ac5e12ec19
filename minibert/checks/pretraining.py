"""Checkers for lesson 06's exercises: the pre-training loss (two separate cross-entropies), and one training step.

`check_pretraining_loss(pretraining_loss)` calls the learner's
`pretraining_loss(mlm_logits (B, T, V), nsp_logits (B, 2), mlm_labels (B, T), nsp_labels (B,))`, which returns
`(loss, mlm_loss, nsp_loss)`, on random logits, and compares each value with the losses `BertForPreTraining` computes
(mean cross-entropy over the labelled positions, mean cross-entropy over the pairs, their sum). The batches have
padded rows, and two of them hold only IsNext or only NotNext pairs, where a loss that shares an `ignore_index`
between the two heads goes wrong. It raises `CheckFailed` at the first value that differs, with a hint when the
difference looks like a known bug.

`check_training_step(training_step)` runs the learner's `training_step(model, batch, optimizer, scheduler,
max_grad_norm)` for three steps on a tiny `BertForPreTraining`, beside the reference step (forward, loss, backward,
gradient clipping, optimizer step, scheduler step, zero_grad) on a copy with the same weights, with SGD and momentum
and then with AdamW, and compares the returned loss, every weight and the learning rate after each step. It records
what the learner's step did, in order (forward passes, backward, the gradient norm the optimizer step used, scheduler
steps, zero_grads), so that an order mistake is named: clipping after the step, zero_grad between backward and the
step, the scheduler before the optimizer, gradients left behind.
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
import torch.nn.functional as F

from minibert.checks import CheckFailed, passed, reports_stubs
from minibert.config import BertConfig
from minibert.model import IGNORE_INDEX, BertForPreTraining


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


# ------------------------------------------------------------------------------------------ one training step

STEP_MAX_GRAD_NORM = 0.05  # below the gradient norm of every step of the checker's model: clipping always acts


def _step_model(seed: int = 0) -> BertForPreTraining:
    """A tiny BertForPreTraining without dropout (its forward pass is then the same however often it runs)."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return BertForPreTraining(config).train()


def _step_batches(n: int, seed: int = 0, B: int = 4, T: int = 10) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        input_ids = torch.randint(5, 40, (B, T), generator=g)
        mlm_labels = torch.where(torch.rand(B, T, generator=g) < 0.3, torch.randint(5, 40, (B, T), generator=g),
                                 IGNORE_INDEX)
        mlm_labels[:, 1] = input_ids[:, 1]
        batches.append({"input_ids": input_ids, "token_type_ids": (torch.arange(T) >= T // 2).long().expand(B, T),
                        "attention_mask": torch.ones(B, T, dtype=torch.long), "mlm_labels": mlm_labels,
                        "nsp_labels": torch.tensor([0, 1] * (B // 2))})
    return batches


def _reference_step(model, batch, optimizer, scheduler, max_grad_norm: float) -> float:
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _sgd(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)


def _adamw(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 2) * 0.8 ** step)


def _grad_norm(model) -> tuple[float, int]:
    """(the total norm of the gradients, how many parameters have a nonzero gradient)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0, 0
    return (torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item(),
            sum(bool(g.abs().sum() > 0) for g in grads))


class _StepRecorder:
    """Records, in order, what one call of the learner's step does: forward passes, backward passes (the moment the
    NSP head gets its gradient), optimizer steps (with the gradient norm they use), scheduler steps, zero_grads."""

    def __init__(self, model, optimizer, scheduler):
        self.events: list[tuple] = []
        self.model = model
        model.register_forward_pre_hook(lambda module, args: self.events.append(("forward",)))
        model.nsp_head.classifier.weight.register_hook(lambda grad: self.events.append(("backward",)))
        for owner, name in ((optimizer, "step"), (optimizer, "zero_grad"), (model, "zero_grad"),
                            (scheduler, "step")):
            what = "scheduler" if owner is scheduler else "zero_grad" if name == "zero_grad" else "step"
            setattr(owner, name, self._wrap(getattr(owner, name), what))

    def _wrap(self, method, what: str):
        def recorded(*args, **kwargs):
            self.events.append((what, *(_grad_norm(self.model) if what == "step" else ())))
            return method(*args, **kwargs)

        return recorded

    def names(self) -> list[str]:
        return [e[0] for e in self.events]


def _diagnose(names: list[str], events: list[tuple], unclipped: float, max_grad_norm: float, model) -> None:
    """Raise CheckFailed naming the first thing one step did in a wrong order, or left out."""
    count = {n: names.count(n) for n in ("forward", "backward", "step", "scheduler", "zero_grad")}
    if count["forward"] != 1:
        raise CheckFailed(f"the model ran {count['forward']} times in one step: one forward pass gives the loss, "
                          f"model(**batch).loss.")
    if count["backward"] != 1:
        raise CheckFailed("loss.backward() was not called: without it the parameters have no gradient to step with."
                          if not count["backward"] else
                          f"backward ran {count['backward']} times in one step: once, on the loss of the batch.")
    if count["step"] != 1:
        raise CheckFailed("optimizer.step() was not called: the weights did not change." if not count["step"] else
                          f"optimizer.step() ran {count['step']} times in one step: once per training step.")
    if count["scheduler"] != 1:
        raise CheckFailed(("scheduler.step() was not called" if not count["scheduler"] else
                           f"scheduler.step() ran {count['scheduler']} times in one step")
                          + ": once per training step, so that the learning rate follows the schedule step by step.")
    backward, step, scheduler = names.index("backward"), names.index("step"), names.index("scheduler")
    if names.index("forward") > backward:
        raise CheckFailed("backward ran before the forward pass of this step: the gradient must be that of this "
                          "batch's loss.")
    if step < backward:
        raise CheckFailed("optimizer.step() ran before loss.backward(): the weights moved with no gradient of this "
                          "batch yet. The step uses the gradients that backward() computes.")
    zero_between = [i for i, n in enumerate(names) if n == "zero_grad" and backward < i < step]
    norm_at_step, nonzero_at_step = events[step][1], events[step][2]
    if zero_between or not nonzero_at_step:
        raise CheckFailed("optimizer.step() found no gradient: zero_grad ran after loss.backward() and before "
                          "optimizer.step(), and threw away the gradients the step needed. Clear the gradients "
                          "where they are no longer needed.")
    if scheduler < step:
        raise CheckFailed("scheduler.step() ran before optimizer.step(): the update then used the learning rate of "
                          "the next step, not this one's (PyTorch warns about this order). The scheduler sets the "
                          "learning rate for the update that comes after it.")
    if norm_at_step > max_grad_norm * (1 + 1e-4) and math.isclose(norm_at_step, unclipped, rel_tol=1e-4):
        raise CheckFailed(f"optimizer.step() used unclipped gradients (their norm was {norm_at_step:.4g}, above "
                          f"max_grad_norm={max_grad_norm}): clipping must act on the gradients before the step uses "
                          f"them; clipping after the step changes nothing that matters.")
    if not math.isclose(norm_at_step, min(unclipped, max_grad_norm), rel_tol=1e-4):
        raise CheckFailed(f"when optimizer.step() ran, the gradients had a total norm of {norm_at_step:.4g}; clipped "
                          f"to max_grad_norm={max_grad_norm} it would be {min(unclipped, max_grad_norm):.4g}. Clip the "
                          f"norm of all the gradients together (torch.nn.utils.clip_grad_norm_), to the max_grad_norm "
                          f"you are given.")
    left, _ = _grad_norm(model)
    if left > 0:
        zeroed_before = any(n == "zero_grad" for n in names[:backward])
        raise CheckFailed("the gradients of this step are still there after it"
                          + (": zero_grad ran before backward, at the start of the step. That works in a plain loop, "
                             "but this step must leave nothing behind (an evaluation or a checkpoint between two "
                             "steps, or a caller that accumulates, would find stale gradients): clear them once they "
                             "have been used." if zeroed_before else
                             ": the next backward() would add to them. Clear them once they have been used."))


@reports_stubs
def check_training_step(training_step) -> None:
    """training_step(model, batch, optimizer, scheduler, max_grad_norm) -> the loss as a float.

    Runs three steps of the learner's function and three of the reference (forward, loss, backward, gradient
    clipping, optimizer step, scheduler step, zero_grad) on two copies of a tiny BertForPreTraining, with SGD and
    momentum and then with AdamW, and compares the losses, the weights and the learning rate after every step. It
    records what each call did, in order, to name the first operation out of place.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small is fastest on one thread, and far faster on a busy machine
    try:
        _check_training_step(training_step)
    finally:
        torch.set_num_threads(threads)
    passed("training_step")


def _check_training_step(training_step) -> None:
    for name, make in (("SGD with momentum", _sgd), ("AdamW", _adamw)):
        reference, mine = _step_model(), _step_model()
        ref_opt, ref_sched = make(reference)
        opt, sched = make(mine)
        recorder = _StepRecorder(mine, opt, sched)
        for k, batch in enumerate(_step_batches(3)):
            # what the gradient norm of this step is before clipping, on a copy of the reference
            probe = copy.deepcopy(reference)
            probe(**batch).loss.backward()
            unclipped = _grad_norm(probe)[0]
            expected_loss = _reference_step(reference, batch, ref_opt, ref_sched, STEP_MAX_GRAD_NORM)
            recorder.events.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PyTorch's warning about the scheduler's order: the checker says it
                got = training_step(mine, {key: v.clone() for key, v in batch.items()}, opt, sched,
                                    STEP_MAX_GRAD_NORM)
            _diagnose(recorder.names(), recorder.events, unclipped, STEP_MAX_GRAD_NORM, mine)
            where = f"step {k + 1} (with {name})"
            if got is None:
                raise CheckFailed("training_step returned None: return the loss of the batch as a float "
                                  "(loss.item()), for the log.")
            if isinstance(got, torch.Tensor) and got.requires_grad:
                raise CheckFailed("training_step returned the loss tensor: return loss.item(), a float. A tensor that "
                                  "requires grad keeps the whole graph of its step alive in the caller's list of "
                                  "losses.")
            try:
                got = float(got)
            except (TypeError, ValueError, RuntimeError):
                raise CheckFailed(f"training_step should return the loss as a float, got "
                                  f"{type(got).__name__}.") from None
            if not math.isclose(got, expected_loss, rel_tol=1e-5, abs_tol=1e-6):
                raise CheckFailed(f"{where}: the loss you return is {got:.6g}, off by {abs(got - expected_loss):.3g}: "
                                  f"return the loss of this batch, computed before the weights change.")
            for (pname, p), r in zip(mine.named_parameters(), reference.parameters()):
                if not torch.allclose(p, r, rtol=1e-5, atol=1e-6):
                    raise CheckFailed(f"{where}: after your step, {pname} differs from the reference step's by up to "
                                      f"{(p - r).abs().max().item():.3g}.")
            lr, expected_lr = opt.param_groups[0]["lr"], ref_opt.param_groups[0]["lr"]
            if not math.isclose(lr, expected_lr, rel_tol=1e-9):
                raise CheckFailed(f"{where}: the learning rate after your step is {lr:.6g}; the schedule says "
                                  f"{expected_lr:.6g}.")
