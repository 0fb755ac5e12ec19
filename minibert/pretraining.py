"""Pre-training, lesson 06: the training loop that teaches BERT, and that the fine-tuning lessons reuse.

What it does:
- `build_optimizer(model, lr, weight_decay)`: AdamW with two parameter groups, weight decay on the weight matrices
  only (never on biases or LayerNorm), fused on CUDA.
- `linear_warmup_decay(optimizer, warmup_steps, total_steps)`: the learning rate climbs linearly from 0 to its peak,
  then falls linearly back to 0 (BERT's schedule), as a `torch.optim.lr_scheduler.LambdaLR`.
- `Trainer(model, dataset, config)`: any model whose forward takes the batch's keys and returns an object with
  `.loss` (`BertForPreTraining` returns loss = mlm_loss + nsp_loss, two separate cross-entropies, so that NotNext
  pairs can never be ignored the way one shared `ignore_index` ignores them). It does gradient accumulation,
  gradient clipping and mixed precision (`minibert.runtime.pick_precision`: bf16 where the GPU supports it, fp16
  with a gradient scaler on a T4, fp32 on the CPU), a tqdm progress bar with loss, tokens/s and, on a GPU, model
  FLOPs utilisation (MFU), a `history` of records for `plot_loss_curve`, and evaluation every `eval_every` steps.
- Checkpoints: `checkpoint-<step>/` is a Hugging Face folder (`config.json`, `model.safetensors`, `vocab.txt`) that
  `transformers.BertForPreTraining.from_pretrained` loads, plus `trainer_state.pt` with the optimizer, scheduler,
  gradient scaler, step, data position and the random number generators of python, numpy and torch. Resuming
  continues exactly where the run stopped: same batches, same masks, same dropout, same losses; resuming with another
  batch size, learning rate, seed, model or vocabulary is refused with the differences named, and another max_steps
  is said and followed (the schedule of a run of that length). A checkpoint is written to a temporary folder, flushed
  to the disk, then renamed: neither a crash nor a power cut leaves half a checkpoint, and a file that is corrupt all
  the same is named in the error, with the earlier checkpoints to use instead.
- Ctrl-C finishes the current step, saves a checkpoint and stops (press twice to stop at once). A NaN or infinite
  loss or gradient (checked with clipping on or off) stops training with an error that names the step, before the
  weights are touched; the last good checkpoint stays as it was. An empty dataset is an error, not an endless loop.
- Several GPUs (or CPU processes): under `torchrun`, each process trains on its own shard of the data
  (`DistributedSampler`) and `DistributedDataParallel` averages the gradients; only rank 0 writes and prints.
- `evaluate_pretraining(model, dataset)`: MLM accuracy and NSP accuracy on held-out text.
- `course_checkpoint()`: the learner's own checkpoint for the fine-tuning lessons (runs/mini or $MINIBERT_CHECKPOINT).

What it leaves out: FSDP/ZeRO sharding, gradient checkpointing, LAMB and the 90%/10% split between sequence lengths
128 and 512 of the original BERT, `torch.compile`, learning-rate finders, and early stopping.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from minibert.runtime import pick_device, pick_precision, seed_everything

STATE_FILE = "trainer_state.pt"

# ------------------------------------------------------------------------------------------ optimizer and schedule


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.01, betas=(0.9, 0.999), eps: float = 1e-6,
                    fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW; weight decay for weight matrices and embeddings, none for biases and LayerNorm (as BERT did).

    `fused=None` fuses the update into one kernel when every parameter is on CUDA.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:  # the tied decoder weight is the word embeddings: once only
                continue
            seen.add(id(p))
            if isinstance(module, nn.LayerNorm) or name == "bias" or p.dim() < 2:
                no_decay.append(p)
            else:
                decay.append(p)
    if fused is None:
        fused = all(p.is_cuda for p in decay + no_decay)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused or None)


def linear_warmup_decay(optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """lr x step / warmup_steps during warm-up, then down linearly to 0 at total_steps."""
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1, got warmup_steps="
                         f"{warmup_steps}, total_steps={total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ------------------------------------------------------------------------------------------ speed and MFU

# dense peak FLOP/s (bf16/fp16 tensor cores, and fp32) of GPUs the course runs on, from their data sheets
PEAK_FLOPS = {"H200": (989e12, 67e12), "H100 PCIe": (756e12, 51e12), "H100": (989e12, 67e12),
              "A100": (312e12, 19.5e12), "L40S": (362e12, 91.6e12), "L40": (181e12, 90.5e12), "L4": (121e12, 30e12),
              "A10": (125e12, 31e12), "T4": (65e12, 8.1e12), "V100": (125e12, 15.7e12)}
# (dense bf16/fp16 tensor-core, fp32) FLOP/s; the first key found in the device's name wins, so "L40S" before "L4"


def _check_vocab_fits(model: nn.Module, dataset) -> None:
    """A dataset whose token ids reach past the model's embedding table fails on a GPU with a bare 'device-side
    assert'; say it here, before training, in words (a pre-training dataset knows its vocabulary's size)."""
    size = getattr(getattr(dataset, "vocab", None), "size", None)
    rows = getattr(getattr(model, "config", None), "vocab_size", None)
    if size is not None and rows is not None and size > rows:
        raise ValueError(f"the dataset's tokenizer has {size} token ids but the model's vocab_size is {rows}: ids "
                         f"from {rows} on have no embedding and no MLM output. Build the model for this tokenizer, "
                         f"e.g. BertConfig.preset(..., vocab_size=len(tokenizer)).")


def peak_flops(device, precision_name: str) -> float | None:
    """The GPU's peak FLOP/s for this precision, or None when unknown (CPU, MPS, an unlisted GPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (half, single) in PEAK_FLOPS.items():
        if key in name:
            return single if precision_name == "fp32" else half
    return None


def flops_per_token(model: nn.Module, seq_len: int, mlm_fraction: float = 0.15) -> float:
    """Training FLOPs per token: 6 x (parameters that multiply) + attention scores 12 x layers x hidden x seq_len.

    Embedding tables are lookups, not multiplications; BERT's tied decoder (V x C) runs on the masked tokens only.
    """
    model = getattr(model, "module", model)
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    n = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    flops = 6 * n
    config = getattr(model, "config", None)
    if config is not None:
        flops += 12 * config.num_hidden_layers * config.hidden_size * seq_len
        if hasattr(model, "mlm_head"):
            flops += 6 * config.hidden_size * config.vocab_size * mlm_fraction
    return flops


# ------------------------------------------------------------------------------------------ distributed helpers


def init_distributed() -> tuple[int, int, int]:
    """Under torchrun (RANK and WORLD_SIZE set): start the process group, gloo on CPU, nccl on GPUs.
    Returns (rank, world_size, local_rank); (0, 1, 0) for a single process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if not dist.is_initialized():
        gpus = torch.cuda.is_available() and os.environ.get("MINIBERT_DEVICE", "cuda").startswith("cuda")
        if gpus:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if gpus else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class ResumableSampler(DistributedSampler):
    """DistributedSampler (this rank's share of a shuffled epoch; one rank without torchrun) that can start in the
    middle of an epoch: `skip` examples are left out once, so a resumed run sees the batches it had not seen."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.skip = 0

    def __iter__(self):
        indices = list(super().__iter__())[self.skip:]
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples - self.skip


# ------------------------------------------------------------------------------------------ the trainer


class TrainingDivergedError(FloatingPointError):
    """The loss (or the gradient) became NaN or infinite."""


# settings a resumed run must share with the run that saved the checkpoint: each changes what the next step does
RESUME_MUST_MATCH = ("batch_size", "grad_accum_steps", "lr", "weight_decay", "betas", "eps", "seed")


class ResumeMismatchError(ValueError):
    """Resuming with other settings than the run's own; `differences` lists (setting, the run's value, given)."""

    def __init__(self, folder, differences: list[tuple[str, object, object]]):
        self.folder, self.differences = folder, differences
        shown = ", ".join(f"{key} {run!r} (given {given!r})" for key, run, given in differences)
        super().__init__(f"cannot resume from {folder}: the run was trained with {shown}. Resume with the run's own "
                         f"settings, or start a new run in another folder")


def _plain(value):
    """Tuples and lists compare equal (a tuple saved by torch.save may come back as a list)."""
    return list(value) if isinstance(value, (tuple, list)) else value


def _run_warmup(state: dict) -> int:
    """The warm-up steps of the run that saved this trainer state (older states: 10% of its max_steps)."""
    if state.get("warmup_steps") is not None:
        return state["warmup_steps"]
    saved = state["config"]
    return saved["warmup_steps"] if saved["warmup_steps"] is not None else saved["max_steps"] // 10


def _read_checkpoint_file(path: Path):
    """torch.load of a checkpoint file, with an error that names the file when it is truncated or corrupt."""
    from minibert.checkpoints import unreadable_file

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated zip, a pickle from elsewhere, an empty file: all mean "unreadable"
        raise unreadable_file(path, e) from e


def _fsync_folder(folder: Path, files: bool = True) -> None:
    """Flush the folder's files (and the folder's own entry list) to the disk: after this, power loss keeps them."""
    if files:
        for path in folder.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    try:
        fd = os.open(folder, os.O_RDONLY)  # a folder's entries (a rename) are flushed through the folder itself
    except OSError:  # Windows cannot open a folder; NTFS journals renames
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


class _DeferredInterrupt:
    """While active, the first Ctrl-C only sets `requested` (the trainer stops after the step); a second one raises."""

    def __init__(self):
        self.requested = False
        self._previous = None
        self._pid = os.getpid()

    def _handler(self, signum, frame):
        if os.getpid() != self._pid:  # a DataLoader worker forked with this handler: Ctrl-C in a terminal reaches it
            return  # too; it carries on, and the trainer's process decides
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: finishing this step, then saving a checkpoint (press Ctrl-C again to stop at once)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(out_dir) -> Path | None:
    """The checkpoint-<step> folder with the highest step in out_dir, or None."""
    folders = [p for p in Path(out_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(folders, key=lambda p: int(p.name.split("-")[-1]), default=None)


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
        self.scheduler = linear_warmup_decay(self.optimizer, self.warmup_steps, config.max_steps)
        self.scaler = self.precision.grad_scaler(self.device)
        self.ddp_model = model
        if _distributed():
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
        self._interrupt = _DeferredInterrupt()
        self.last_checkpoint: Path | None = None
        self._phase = "boundary"  # "forward" (grads accumulating), "update" (weights changing), "boundary"
        self._step_start = (0, 0)  # (epoch, batches_in_epoch) when the current step began
        self._loss_parts: list[str] = []  # the parts of the loss the model reports (mlm_loss, nsp_loss)
        seq_len = getattr(dataset, "max_length", 128)
        self.flops_per_token = flops_per_token(model, seq_len)
        self.peak_flops = peak_flops(self.device, self.precision.name)

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
        if _distributed():
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
        with _DeferredInterrupt() as self._interrupt:
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
        if _distributed():
            self._check_ranks_agree()
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
        if _distributed():
            dist.barrier()
        return metrics

    def _check_ranks_agree(self) -> None:
        """DDP keeps every rank's weights equal; check it (a cheap checksum) and say so."""
        checksum = torch.tensor([sum(p.detach().double().sum().item() for p in self.model.parameters())],
                                device=self.device, dtype=torch.float64)
        sums = [torch.zeros_like(checksum) for _ in range(self.world_size)]
        dist.all_gather(sums, checksum)
        values = [s.item() for s in sums]
        if max(values) != min(values):
            raise RuntimeError(f"the ranks' weights differ after training (checksums {values})")
        if self.is_main:
            print(f"all {self.world_size} ranks agree on the weights (checksum {values[0]:.6f})")

    # -------------------------------------------------------------- checkpoints

    def _check_same_run(self, folder: Path, state: dict) -> None:
        """Refuse to resume with settings that would silently change the run (see load_checkpoint)."""
        saved = state["config"]
        differences = [(key, saved[key], getattr(self.config, key)) for key in RESUME_MUST_MATCH
                       if key in saved and _plain(saved[key]) != _plain(getattr(self.config, key))]
        if self.config.warmup_steps is not None and self.config.warmup_steps != _run_warmup(state):
            differences.append(("warmup_steps", _run_warmup(state), self.config.warmup_steps))
        config = getattr(self.model, "config", None)
        if config is not None and (folder / "config.json").is_file():
            run_config = type(config).from_json_file(folder / "config.json").to_dict()
            differences += [(f"model.{k}", v, config.to_dict()[k]) for k, v in run_config.items()
                            if _plain(config.to_dict().get(k)) != _plain(v)]
        run_vocab = folder / "vocab.txt"
        if self.vocab_file and run_vocab.is_file() and Path(self.vocab_file).read_bytes() != run_vocab.read_bytes():
            differences.append(("vocab_file", str(run_vocab), str(self.vocab_file)))
        if differences:
            raise ResumeMismatchError(folder, differences)

    def save_checkpoint(self, folder=None) -> Path:
        """Write checkpoint-<step>/ (or `folder`): the model as a Hugging Face folder + trainer_state.pt.

        Everything goes to a temporary folder first, which is then renamed: a checkpoint is whole or absent.
        Every rank must call this (each sends its random state to rank 0, which writes).
        """
        if folder is None:
            if not self.config.out_dir:
                raise ValueError("save_checkpoint() needs a folder, or config.out_dir")
            folder = Path(self.config.out_dir) / f"checkpoint-{self.step}"
        folder = Path(folder)
        rng = [_rng_state()]
        if _distributed():
            gathered = [None] * self.world_size if self.is_main else None
            dist.gather_object(rng[0], gathered, dst=0)
            rng = gathered
        if self.is_main:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = folder.parent / f".{folder.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            if hasattr(self.model, "save_pretrained"):
                self.model.save_pretrained(tmp, vocab_file=self.vocab_file)
            else:
                tmp.mkdir(parents=True)
                torch.save(self.model.state_dict(), tmp / "model.pt")
            state = {"step": self.step, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch,
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "scaler": self.scaler.state_dict(), "rng": rng, "history": self.history,
                     "world_size": self.world_size, "config": asdict(self.config), "warmup_steps": self.warmup_steps}
            torch.save(state, tmp / STATE_FILE)
            _fsync_folder(tmp)  # on disk before the rename, so that power loss cannot leave a renamed, empty file
            if folder.exists():  # the same step saved twice: swap, never leave a moment with neither
                old = folder.parent / f".{folder.name}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(folder, old)
                os.replace(tmp, folder)
                shutil.rmtree(old)
            else:
                os.replace(tmp, folder)  # atomic: the folder appears complete or not at all
            _fsync_folder(folder.parent, files=False)  # the rename itself
            self._prune_checkpoints(folder)
        if _distributed():
            dist.barrier()
        self.last_checkpoint = folder
        return folder

    def _prune_checkpoints(self, keep: Path) -> None:
        if not self.config.out_dir or self.config.keep_checkpoints < 1:
            return
        folders = sorted((p for p in Path(self.config.out_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                         key=lambda p: int(p.name.split("-")[-1]))
        for old in folders[:-self.config.keep_checkpoints]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, path) -> Path:
        """Restore model, optimizer, scheduler, scaler, step, data position and random state from a checkpoint
        folder, or from the latest checkpoint-<step> in a run folder.

        The run must go on with the settings it started with: a different batch size, learning rate, seed, model or
        vocabulary is a `ResumeMismatchError` naming each difference. A different max_steps is honoured, and said:
        the learning-rate schedule becomes that of a run of the new length (the warm-up stays the run's own).
        """
        path = Path(path)
        folder = path if (path / STATE_FILE).is_file() else latest_checkpoint(path) if path.is_dir() else None
        if folder is None:
            raise FileNotFoundError(f"no checkpoint at {path}: pass a checkpoint-<step> folder or the out_dir of a "
                                    f"run that saved one (it holds {STATE_FILE})")
        state = _read_checkpoint_file(folder / STATE_FILE)
        self._check_same_run(folder, state)
        if (folder / "model.pt").is_file():
            weights = _read_checkpoint_file(folder / "model.pt")
        else:
            weights = type(self.model).from_pretrained(folder).state_dict()
        self.model.load_state_dict(weights)
        if _run_warmup(state) != self.warmup_steps:  # max_steps changed, warm-up not given: the run's own stays
            self.warmup_steps = _run_warmup(state)
            self.scheduler = linear_warmup_decay(self.optimizer, self.warmup_steps, self.config.max_steps)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batches_in_epoch = state["step"], state["epoch"], state["batches_in_epoch"]
        if state["world_size"] != self.world_size:
            # the data order depends on the number of processes: continue with the next epoch instead
            print(f"resuming with {self.world_size} processes instead of {state['world_size']}: the data order "
                  f"restarts at the next epoch")
            self.epoch, self.batches_in_epoch = self.epoch + 1, 0
        self.history = list(state["history"])
        if state["config"]["max_steps"] != self.config.max_steps and self.is_main:
            old = self.scheduler.get_last_lr()[0]
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):  # the new schedule now
                group["lr"] = base * self.scheduler.lr_lambdas[0](self.step)
            self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
            print(f"max_steps {self.config.max_steps} instead of the run's {state['config']['max_steps']}: the "
                  f"learning rate now follows the schedule of a {self.config.max_steps}-step run (warm-up "
                  f"{self.warmup_steps} steps), {self.scheduler.get_last_lr()[0]:.3g} at step {self.step} instead of "
                  f"{old:.3g}, down to 0 at step {self.config.max_steps}")
        rng = state["rng"]
        _set_rng_state(rng[self.rank] if self.rank < len(rng) else rng[0])
        self.last_checkpoint = folder
        if self.is_main:
            print(f"resumed from {folder} at step {self.step}")
        return folder


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
