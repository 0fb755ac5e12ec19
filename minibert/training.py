"""The training loop of lessons 06 to 10: what lesson 06 writes by hand, plus what a long run needs.

What it does:
- `Trainer(model, dataset, config)`: lesson 06's loop (forward, loss, backward, clip, step the optimizer and the
  schedule, zero the gradients) for any model whose forward takes the batch's keys and returns an object with
  `.loss` (pre-training's MLM + NSP, or a fine-tuning head's), with gradient accumulation, mixed precision
  (`minibert.runtime.pick_precision`: bf16 where the GPU supports it, fp16 with a gradient scaler on a T4, fp32 on
  the CPU), a tqdm progress bar (loss, tokens/s and, on a GPU, MFU from `minibert.speed`), a `history` of records
  for `minibert.pretraining.plot_loss_curve`, and an evaluation every `eval_every` steps. A NaN or infinite loss or
  gradient (checked with clipping on or off) stops training with an error that names the step, before the weights
  are touched. An empty dataset is an error, not an endless loop.

Optional reading, in their own modules: `minibert.resume` (checkpoints, exact resumption, Ctrl-C) and
`minibert.distributed` (several GPUs under torchrun).

What it leaves out: FSDP/ZeRO sharding, gradient checkpointing, LAMB and the 90%/10% split between sequence lengths
128 and 512 of the original BERT, `torch.compile`, learning-rate finders, and early stopping.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader

from minibert import resume
from minibert.distributed import check_ranks_agree, init_distributed, is_distributed
from minibert.optimizer import build_optimizer, linear_warmup_decay
from minibert.resume import DeferredInterrupt, ResumableSampler
from minibert.runtime import pick_device, pick_precision, seed_everything
from minibert.speed import flops_per_token, peak_flops


def _check_vocab_fits(model: nn.Module, dataset) -> None:
    """A dataset whose token ids reach past the model's embedding table fails on a GPU with a bare 'device-side
    assert'; say it here, before training, in words (a pre-training dataset knows its vocabulary's size)."""
    size = getattr(getattr(dataset, "vocab", None), "size", None)
    rows = getattr(getattr(model, "config", None), "vocab_size", None)
    if size is not None and rows is not None and size > rows:
        raise ValueError(f"the dataset's tokenizer has {size} token ids but the model's vocab_size is {rows}: ids "
                         f"from {rows} on have no embedding and no MLM output. Build the model for this tokenizer, "
                         f"e.g. BertConfig.preset(..., vocab_size=len(tokenizer)).")


# ------------------------------------------------------------------------------------------ the trainer


class TrainingDivergedError(FloatingPointError):
    """The loss (or the gradient) became NaN or infinite."""


@dataclass
class TrainingConfig:
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 32  # examples per micro-batch and process; a step sees batch x grad_accum x processes
    grad_accum_steps: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int | None = None  # None: 10% of max_steps
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    clip_grad_norm: float | None = 1.0
    precision: str | None = None  # None: pick_precision(device); or "bf16", "fp16", "fp32"
    device: str | None = None  # None: pick_device() (under torchrun with GPUs: cuda:LOCAL_RANK)
    seed: int = 0
    log_every: int = 10  # steps per history record (losses averaged over them)
    eval_every: int | None = None  # steps between evaluations (and one at the end) when there is an eval_fn
    save_every: int | None = None  # steps between checkpoints (and one at the end) when out_dir is set
    out_dir: str | None = None
    keep_checkpoints: int = 2  # older checkpoint-* folders are deleted
    num_workers: int = 0  # DataLoader worker processes
    find_unused_parameters: bool = False  # DDP: True for models with parameters the loss does not use
    progress: bool = True  # tqdm bar
    extra: dict = field(default_factory=dict)  # anything else worth saving with the run (CLI arguments...)


class Trainer:
    """Train `model` on `dataset` for `config.max_steps` optimizer steps. `model(**batch).loss` must be the loss.

    collate_fn: batches items (default: `dataset.collate`). eval_fn(model) -> dict of metrics, run on rank 0.
    callbacks: functions f(trainer, record) called after every step, where a learner can look, plot or stop
    (raising KeyboardInterrupt in one saves a checkpoint and stops, as Ctrl-C does).
    vocab_file: copied into each checkpoint, so that the folder is complete for `from_pretrained` and tokenizers.
    """

    def __init__(self, model: nn.Module, dataset, config: TrainingConfig | None = None, collate_fn=None,
                 eval_fn: Callable | None = None, callbacks=(), vocab_file=None):
        self.config = config = config or TrainingConfig()
        if config.max_steps < 1 or config.grad_accum_steps < 1 or config.batch_size < 1:
            raise ValueError(f"max_steps, grad_accum_steps and batch_size must all be at least 1, got max_steps="
                             f"{config.max_steps}, grad_accum_steps={config.grad_accum_steps}, batch_size="
                             f"{config.batch_size}")
        if len(dataset) == 0:
            raise ValueError("the training dataset is empty: there is nothing to train on. Check what built it (for "
                             "QA, every record is skipped whose answer falls outside max_length; for pre-training, "
                             "the corpus must hold sentences)")
        _check_vocab_fits(model, dataset)
        self.rank, self.world_size, local_rank = init_distributed()
        if config.device is None and self.world_size > 1 and torch.cuda.is_available():
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = pick_device(config.device)
        self.precision = pick_precision(self.device, config.precision)
        self.model = model.to(self.device)  # the model itself; self.ddp_model is what runs the forward pass
        self.dataset, self.eval_fn, self.callbacks, self.vocab_file = dataset, eval_fn, list(callbacks), vocab_file
        self.collate_fn = collate_fn or getattr(dataset, "collate", None)
        self.warmup_steps = config.warmup_steps if config.warmup_steps is not None else config.max_steps // 10
        self.optimizer = build_optimizer(model, config.lr, config.weight_decay, config.betas, config.eps)
        self.scheduler = self.schedule(self.warmup_steps)
        self.scaler = self.precision.grad_scaler(self.device)
        self.ddp_model = model
        if is_distributed():
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = nn.parallel.DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=config.find_unused_parameters)
        self.sampler = ResumableSampler(dataset, self.world_size, self.rank, seed=config.seed)
        self.loader = DataLoader(dataset, batch_size=config.batch_size, sampler=self.sampler,
                                 collate_fn=self.collate_fn, num_workers=config.num_workers,
                                 pin_memory=self.device.type == "cuda",
                                 generator=torch.Generator().manual_seed(config.seed))  # leaves torch's RNG alone
        self.step = self.epoch = self.batches_in_epoch = 0
        self.history: list[dict] = []
        self.interrupted = False
        self._interrupt = DeferredInterrupt()
        self.last_checkpoint: Path | None = None
        self._phase = "boundary"  # "forward" (grads accumulating), "update" (weights changing), "boundary"
        self._step_start = (0, 0)  # (epoch, batches_in_epoch) when the current step began
        self._loss_parts: list[str] = []  # the parts of the loss the model reports (mlm_loss, nsp_loss)
        seq_len = getattr(dataset, "max_length", 128)
        self.flops_per_token = flops_per_token(model, seq_len)
        self.peak_flops = peak_flops(self.device, self.precision.name)

    def schedule(self, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
        """BERT's schedule for this run: warm-up, then linear decay to 0 at max_steps."""
        return linear_warmup_decay(self.optimizer, warmup_steps, self.config.max_steps)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -------------------------------------------------------------- data

    def _batches(self):
        """Micro-batches forever, epoch after epoch, counting where we are so a checkpoint can say so."""
        while True:
            self.sampler.set_epoch(self.epoch)
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(self.epoch)  # fresh MLM masks every epoch
            self.sampler.skip = self.batches_in_epoch * self.config.batch_size
            seen = False
            for batch in self.loader:
                seen = True
                self.batches_in_epoch += 1
                yield batch
            if not seen and self.batches_in_epoch == 0:  # an epoch without a batch: looping again would hang
                raise ValueError(f"epoch {self.epoch} has no batch: the dataset ({len(self.dataset)} examples) gives "
                                 f"this process nothing to train on")
            self.epoch, self.batches_in_epoch = self.epoch + 1, 0

    # -------------------------------------------------------------- one optimizer step

    def _train_step(self, batches) -> dict:
        cfg, model = self.config, self.ddp_model
        self._phase, self._step_start = "forward", (self.epoch, self.batches_in_epoch)
        sums = torch.zeros(5, device=self.device)  # loss, mlm_loss, nsp_loss, tokens, stop request
        for micro in range(cfg.grad_accum_steps):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in next(batches).items()}
            last = micro == cfg.grad_accum_steps - 1
            sync = contextlib.nullcontext() if last or model is self.model else model.no_sync()
            with sync:
                with self.precision.autocast(self.device):
                    out = model(**batch)
                if out.loss is None:
                    raise ValueError("the model returned no loss: the batch needs its labels (BertForPreTraining: "
                                     "mlm_labels and nsp_labels, which PretrainingDataset.collate provides; the "
                                     "fine-tuning heads: labels, or start_positions and end_positions for QA)")
                self.scaler.scale(out.loss / cfg.grad_accum_steps).backward()
            sums[0] += out.loss.detach().float()
            self._loss_parts = [name for name in ("mlm_loss", "nsp_loss") if getattr(out, name, None) is not None]
            for i, name in ((1, "mlm_loss"), (2, "nsp_loss")):
                if name in self._loss_parts:
                    sums[i] += getattr(out, name).detach().float()
            mask = batch.get("attention_mask")
            sums[3] += mask.sum() if mask is not None else batch["input_ids"].numel()
        sums[:3] /= cfg.grad_accum_steps
        sums[4] = float(self._interrupt.requested)
        if is_distributed():
            dist.all_reduce(sums)  # every rank sees the same losses, tokens and stop request
            sums[:3] /= self.world_size
        self.scaler.unscale_(self.optimizer)
        norm = torch.zeros((), device=self.device)
        if cfg.clip_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad_norm)
        elif not self.scaler.is_enabled():  # without clipping, the norm is still the cheap way to catch a NaN grad
            norm = torch.nn.utils.get_total_norm([p.grad for p in self.model.parameters() if p.grad is not None])
        loss, mlm, nsp, tokens, stop, norm = torch.cat([sums, norm.float().view(1)]).tolist()  # one sync
        if not math.isfinite(loss) or (not self.scaler.is_enabled() and not math.isfinite(norm)):
            what = f"the loss became {loss}" if not math.isfinite(loss) else f"the gradient norm became {norm}"
            where = (f"the last good checkpoint, {self.last_checkpoint}, is intact" if self.last_checkpoint
                     else "no checkpoint had been saved")
            raise TrainingDivergedError(
                f"{what} at step {self.step + 1}; training stopped before updating the weights, and {where}. "
                f"Try a lower learning rate (now {self.scheduler.get_last_lr()[0]:.3g}), a longer warm-up, gradient "
                f"clipping, or bf16/fp32 instead of fp16.")
        self._phase = "update"
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)  # skipped by the fp16 scaler when gradients overflowed
        self.scaler.update()  # ... which then halves its scale
        if scale is None or self.scaler.get_scale() >= scale:  # the schedule follows the updates that happened
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self._phase = "boundary"
        return {"loss": loss, "mlm_loss": mlm, "nsp_loss": nsp, "tokens": tokens, "stop": stop, "grad_norm": norm}

    # -------------------------------------------------------------- the loop

    def train(self, resume_from=None) -> list[dict]:
        """Train to config.max_steps (from a checkpoint folder, or the latest one in an out_dir, if given).

        Returns `history`: records {"step", "loss", "mlm_loss", "nsp_loss", "lr", "tokens_per_s", "seconds_per_step",
        "mfu"} every `log_every` steps (timed without evaluation and checkpointing), and {"step", "eval_<metric>"...}
        after each evaluation.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        if resume_from is not None:
            self.load_checkpoint(resume_from)
            if self.step >= cfg.max_steps and self.is_main:
                print(f"the run is already at step {self.step} of max_steps {cfg.max_steps}: nothing to train (a "
                      f"larger max_steps goes on)")
        elif self.step == 0:  # (a second train() call carries on from where the first stopped)
            seed_everything(cfg.seed + self.rank)  # dropout differs between ranks, and is the same every run
        self.ddp_model.train()
        self.interrupted = False
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (cfg.progress and self.is_main),
                   desc="training", dynamic_ncols=True)
        window = {"loss": 0.0, "mlm_loss": 0.0, "nsp_loss": 0.0, "tokens": 0.0, "steps": 0}
        t0 = time.perf_counter()
        batches = self._batches()
        with DeferredInterrupt() as self._interrupt:
            try:
                while self.step < cfg.max_steps:
                    result = self._train_step(batches)
                    bar.update(1)
                    for key in ("loss", "mlm_loss", "nsp_loss", "tokens"):
                        window[key] += result[key]
                    window["steps"] += 1
                    record = None
                    if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                        record = self._log(window, time.perf_counter() - t0, bar)
                        window = dict.fromkeys(window, 0.0)
                        t0 = time.perf_counter()
                    paused = time.perf_counter()  # evaluation and saving do not count towards tokens/s
                    if self.eval_fn is not None and cfg.eval_every and (
                            self.step % cfg.eval_every == 0 or self.step == cfg.max_steps):
                        self.evaluate()
                    if cfg.out_dir and ((cfg.save_every and self.step % cfg.save_every == 0)
                                        or self.step == cfg.max_steps):
                        self.save_checkpoint()
                    t0 += time.perf_counter() - paused
                    for callback in self.callbacks:
                        callback(self, record)
                    if result["stop"] > 0:  # Ctrl-C on some rank
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                self.interrupted = True
                bar.close()
                self.optimizer.zero_grad(set_to_none=True)  # drop a half-accumulated step
                if self._phase == "forward":  # its batches will be seen again
                    self.epoch, self.batches_in_epoch = self._step_start
                if self._phase == "update":
                    print(f"interrupted while the weights were being updated at step {self.step + 1}: no "
                          f"checkpoint saved (the last one is {self.last_checkpoint})")
                elif cfg.out_dir:
                    path = self.save_checkpoint()
                    if self.is_main:
                        print(f"interrupted at step {self.step}: checkpoint saved to {path}; resume with "
                              f"trainer.train(resume_from={str(cfg.out_dir)!r}) or the CLI's --resume")
            finally:
                bar.close()
        if is_distributed():
            check_ranks_agree(self)
        return self.history

    def _log(self, window: dict, seconds: float, bar) -> dict:
        steps = max(1, window["steps"])
        tokens_per_s = window["tokens"] / max(seconds, 1e-9)
        record = {"step": self.step, "loss": window["loss"] / steps,
                  **{name: window[name] / steps for name in self._loss_parts},
                  "lr": self.scheduler.get_last_lr()[0], "tokens_per_s": tokens_per_s,
                  "seconds_per_step": seconds / steps, "mfu": None}
        if self.peak_flops:
            record["mfu"] = tokens_per_s * self.flops_per_token / (self.peak_flops * self.world_size)
        self.history.append(record)
        postfix = {"loss": f"{record['loss']:.3f}", "tok/s": f"{tokens_per_s:,.0f}"}
        if record["mfu"] is not None:
            postfix["mfu"] = f"{100 * record['mfu']:.1f}%"
        bar.set_postfix(postfix)
        return record

    def evaluate(self) -> dict | None:
        """Run eval_fn on rank 0 (the others wait) and add its metrics to the history."""
        metrics = None
        if self.is_main and self.eval_fn is not None:
            self.model.eval()
            try:
                metrics = self.eval_fn(self.model)
            finally:
                self.model.train()
            self.history.append({"step": self.step, **{f"eval_{k}": v for k, v in metrics.items()}})
            shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            print(f"step {self.step}: {shown}")
        if is_distributed():
            dist.barrier()
        return metrics

    # -------------------------------------------------------------- checkpoints (minibert.resume)

    def save_checkpoint(self, folder=None) -> Path:
        """Write checkpoint-<step>/ (or `folder`): the model as a Hugging Face folder + trainer_state.pt."""
        return resume.save_checkpoint(self, folder)

    def load_checkpoint(self, path) -> Path:
        """Restore everything from a checkpoint folder, or from the latest checkpoint-<step> of a run folder."""
        return resume.load_checkpoint(self, path)
