"""Long runs that survive interruptions, lesson 06's optional reading: checkpoints, exact resumption and Ctrl-C.

What it does:
- `save_checkpoint(trainer)`: checkpoint-<step>/ is a Hugging Face folder (`config.json`, `model.safetensors`,
  `vocab.txt`) that `transformers.BertForPreTraining.from_pretrained` loads, plus `trainer_state.pt` with the
  optimizer, scheduler, gradient scaler, step, data position and the random number generators of python, numpy and
  torch. It is written to a temporary folder, flushed to the disk, then renamed: neither a crash nor a power cut
  leaves half a checkpoint; older checkpoints beyond `keep_checkpoints` are deleted.
- `load_checkpoint(trainer, path)`: resuming continues exactly where the run stopped (same batches, same masks, same
  dropout, same losses). Another batch size, learning rate, seed, model or vocabulary is a `ResumeMismatchError`
  naming each difference; another max_steps is followed on purpose, and said (the schedule of a run of that length).
  A corrupt file is named in the error, with the earlier checkpoints to use instead.
- `ResumableSampler`: a shuffled epoch (this rank's share of it) that can start in the middle; `DeferredInterrupt`:
  the first Ctrl-C finishes the step and saves, a second one stops at once.

What it leaves out: asynchronous or sharded checkpoints, and cloud storage.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from minibert.distributed import is_distributed

STATE_FILE = "trainer_state.pt"


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


class DeferredInterrupt:
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


def check_same_run(trainer, folder: Path, state: dict) -> None:
    """Refuse to resume with settings that would silently change the run (see load_checkpoint)."""
    saved = state["config"]
    differences = [(key, saved[key], getattr(trainer.config, key)) for key in RESUME_MUST_MATCH
                   if key in saved and _plain(saved[key]) != _plain(getattr(trainer.config, key))]
    if trainer.config.warmup_steps is not None and trainer.config.warmup_steps != _run_warmup(state):
        differences.append(("warmup_steps", _run_warmup(state), trainer.config.warmup_steps))
    config = getattr(trainer.model, "config", None)
    if config is not None and (folder / "config.json").is_file():
        run_config = type(config).from_json_file(folder / "config.json").to_dict()
        differences += [(f"model.{k}", v, config.to_dict()[k]) for k, v in run_config.items()
                        if _plain(config.to_dict().get(k)) != _plain(v)]
    run_vocab = folder / "vocab.txt"
    if trainer.vocab_file and run_vocab.is_file() and Path(trainer.vocab_file).read_bytes() != run_vocab.read_bytes():
        differences.append(("vocab_file", str(run_vocab), str(trainer.vocab_file)))
    if differences:
        raise ResumeMismatchError(folder, differences)

def save_checkpoint(trainer, folder=None) -> Path:
    """Write checkpoint-<step>/ (or `folder`): the model as a Hugging Face folder + trainer_state.pt.

    Everything goes to a temporary folder first, which is then renamed: a checkpoint is whole or absent.
    Every rank must call this (each sends its random state to rank 0, which writes).
    """
    if folder is None:
        if not trainer.config.out_dir:
            raise ValueError("save_checkpoint() needs a folder, or config.out_dir")
        folder = Path(trainer.config.out_dir) / f"checkpoint-{trainer.step}"
    folder = Path(folder)
    rng = [_rng_state()]
    if is_distributed():
        gathered = [None] * trainer.world_size if trainer.is_main else None
        dist.gather_object(rng[0], gathered, dst=0)
        rng = gathered
    if trainer.is_main:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if hasattr(trainer.model, "save_pretrained"):
            trainer.model.save_pretrained(tmp, vocab_file=trainer.vocab_file)
        else:
            tmp.mkdir(parents=True)
            torch.save(trainer.model.state_dict(), tmp / "model.pt")
        state = {"step": trainer.step, "epoch": trainer.epoch, "batches_in_epoch": trainer.batches_in_epoch,
                 "optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(),
                 "scaler": trainer.scaler.state_dict(), "rng": rng, "history": trainer.history,
                 "world_size": trainer.world_size, "config": asdict(trainer.config),
                 "warmup_steps": trainer.warmup_steps}
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
        prune_checkpoints(trainer, folder)
    if is_distributed():
        dist.barrier()
    trainer.last_checkpoint = folder
    return folder

def prune_checkpoints(trainer, keep: Path) -> None:
    if not trainer.config.out_dir or trainer.config.keep_checkpoints < 1:
        return
    folders = sorted((p for p in Path(trainer.config.out_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                     key=lambda p: int(p.name.split("-")[-1]))
    for old in folders[:-trainer.config.keep_checkpoints]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)

def load_checkpoint(trainer, path) -> Path:
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
    check_same_run(trainer, folder, state)
    if (folder / "model.pt").is_file():
        weights = _read_checkpoint_file(folder / "model.pt")
    else:
        weights = type(trainer.model).from_pretrained(folder).state_dict()
    trainer.model.load_state_dict(weights)
    if _run_warmup(state) != trainer.warmup_steps:  # max_steps changed, warm-up not given: the run's own stays
        trainer.warmup_steps = _run_warmup(state)
        trainer.scheduler = trainer.schedule(trainer.warmup_steps)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.scaler.load_state_dict(state["scaler"])
    trainer.step, trainer.epoch, trainer.batches_in_epoch = state["step"], state["epoch"], state["batches_in_epoch"]
    if state["world_size"] != trainer.world_size:
        # the data order depends on the number of processes: continue with the next epoch instead
        print(f"resuming with {trainer.world_size} processes instead of {state['world_size']}: the data order "
              f"restarts at the next epoch")
        trainer.epoch, trainer.batches_in_epoch = trainer.epoch + 1, 0
    trainer.history = list(state["history"])
    if state["config"]["max_steps"] != trainer.config.max_steps and trainer.is_main:
        old = trainer.scheduler.get_last_lr()[0]
        for group, base in zip(trainer.optimizer.param_groups, trainer.scheduler.base_lrs):  # the new schedule now
            group["lr"] = base * trainer.scheduler.lr_lambdas[0](trainer.step)
        trainer.scheduler._last_lr = [group["lr"] for group in trainer.optimizer.param_groups]
        print(f"max_steps {trainer.config.max_steps} instead of the run's {state['config']['max_steps']}: the "
              f"learning rate now follows the schedule of a {trainer.config.max_steps}-step run (warm-up "
              f"{trainer.warmup_steps} steps), {trainer.scheduler.get_last_lr()[0]:.3g} at step {trainer.step} "
              f"instead of {old:.3g}, down to 0 at step {trainer.config.max_steps}")
    rng = state["rng"]
    _set_rng_state(rng[trainer.rank] if trainer.rank < len(rng) else rng[0])
    trainer.last_checkpoint = folder
    if trainer.is_main:
        print(f"resumed from {folder} at step {trainer.step}")
    return folder

