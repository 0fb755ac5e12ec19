"""Runtime helpers that every lesson uses: seeding, device, precision and the quick/full switch.

What it does:
- `seed_everything(seed)` seeds Python's `random`, NumPy and PyTorch (CPU and CUDA) in one call.
- `pick_device()` chooses cuda, then mps, then cpu (override with `MINIBERT_DEVICE`).
- `pick_precision(device)` chooses the training precision that fits the hardware: bf16 on GPUs that support it
  (Ampere and newer), fp16 with a gradient scaler on older GPUs such as the Colab T4, fp32 on CPU and Apple MPS.
- `is_quick()` is the one switch for scale: quick mode (tiny sizes, seconds on a laptop CPU) is the default without a
  GPU and whenever `MINIBERT_QUICK=1`; `MINIBERT_QUICK=0` forces full mode.
- `setup(seed)` does all of the above for a lesson's settings cell and returns a `Settings` record; its `progress`
  says whether training shows progress bars (yes, unless `MINIBERT_PROGRESS=0`, which the test suite and the script
  that stores the lessons' outputs set: a bar's timings differ on every run).
- `environment_report()`: versions and hardware (`python -m minibert info`), with a warning when `MINIBERT_DATA` is
  set but is not a folder holding the course's datasets (`data_dir_problem()`).

What it leaves out: multi-GPU setup (see `minibert.distributed` for DistributedDataParallel) and TPUs.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
from dataclasses import dataclass

import numpy as np
import torch


def seed_everything(seed: int = 0) -> None:
    """Seed python, numpy and torch (all devices) so that a lesson prints the same numbers every run."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses (dataloader workers, torchrun children)


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} is not understood: use 1 (on) or 0 (off)")


def is_quick() -> bool:
    """Quick mode (tiny sizes, CPU seconds) unless a GPU is present; MINIBERT_QUICK=1/0 forces it on/off."""
    forced = _env_flag("MINIBERT_QUICK")
    if forced is not None:
        return forced
    return not torch.cuda.is_available()


def pick_device(prefer: str | None = None) -> torch.device:
    """The best device here: cuda, then Apple mps, then cpu. `prefer` or MINIBERT_DEVICE overrides."""
    choice = prefer or os.environ.get("MINIBERT_DEVICE")
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {choice!r} was asked for but CUDA is not available here; use 'cpu'")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"device {choice!r} was asked for but MPS is not available here; use 'cpu'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class Precision:
    """How to train on a device: the autocast dtype and whether fp16 needs a gradient scaler."""

    name: str  # "bf16", "fp16" or "fp32"
    dtype: torch.dtype
    use_grad_scaler: bool

    def autocast(self, device: torch.device | str):
        """A context manager for the forward pass: autocast for bf16/fp16, nothing for fp32."""
        device_type = torch.device(device).type
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=self.dtype)

    def grad_scaler(self, device: torch.device | str):
        """A `torch.amp.GradScaler` that is active only for fp16."""
        return torch.amp.GradScaler(torch.device(device).type, enabled=self.use_grad_scaler)


PRECISIONS = {
    "bf16": Precision("bf16", torch.bfloat16, False),
    "fp16": Precision("fp16", torch.float16, True),
    "fp32": Precision("fp32", torch.float32, False),
}


def pick_precision(device: torch.device | str | None = None, prefer: str | None = None) -> Precision:
    """bf16 on GPUs that support it, fp16 + grad scaler on older GPUs (T4), fp32 on CPU and MPS.

    `prefer` (or MINIBERT_PRECISION) forces one of "bf16", "fp16", "fp32".
    """
    device = torch.device(device) if device is not None else pick_device()
    choice = prefer or os.environ.get("MINIBERT_PRECISION")
    if choice:
        if choice not in PRECISIONS:
            raise ValueError(f"precision {choice!r} is not one of {sorted(PRECISIONS)}")
        if choice == "fp16" and device.type == "cpu":
            raise ValueError("fp16 training is not supported on the CPU: use 'bf16' or 'fp32'")
        return PRECISIONS[choice]
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return PRECISIONS["bf16"] if major >= 8 else PRECISIONS["fp16"]
    return PRECISIONS["fp32"]


@dataclass(frozen=True)
class Settings:
    """What a lesson's settings cell decides: seed, mode, device, precision and where data comes from."""

    seed: int
    quick: bool
    device: torch.device
    precision: Precision
    data_dir: str | None
    progress: bool = True  # progress bars while training (tqdm.auto: a widget in a notebook); MINIBERT_PROGRESS=0: none

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"

    def pick(self, quick, full):
        """`quick` in quick mode, `full` in full mode: `S.pick(quick=200, full=20_000)`."""
        return quick if self.quick else full

    def describe(self) -> str:
        data = self.data_dir or "not set (datasets are downloaded from the Hugging Face hub)"
        return (
            f"mode:      {self.mode}  (set MINIBERT_QUICK=1 for quick, 0 for full)\n"
            f"device:    {self.device}\n"
            f"precision: {self.precision.name}\n"
            f"seed:      {self.seed}\n"
            f"data:      {data}"
        )


def progress_enabled() -> bool:
    """Progress bars while training: yes, unless MINIBERT_PROGRESS=0 (the tests and the scripts that store outputs
    set it: in a notebook each bar is a widget, and a long cell sends the kernel's channel thousands of updates)."""
    return _env_flag("MINIBERT_PROGRESS") is not False


def setup(seed: int = 0, verbose: bool = True) -> Settings:
    """The settings cell of every lesson: seed everything, pick mode, device and precision, and say so."""
    from minibert.data import data_dir

    seed_everything(seed)
    device = pick_device()
    settings = Settings(seed, is_quick(), device, pick_precision(device), data_dir(), progress_enabled())
    if verbose:
        print(settings.describe())
    return settings


def _expected_data_files() -> list[str]:
    """The files that `minibert.data` looks for under MINIBERT_DATA: every dataset's local files and the vocabs."""
    from minibert.data import DATASETS, VOCABS

    return [f for spec in DATASETS.values() for f in spec.local.values()] + [f"{m}/vocab.txt" for m in VOCABS]


def _holds_any(folder, files) -> bool:
    """Is at least one of `files` (paths relative to `folder`) a file there? Unreadable folders hold nothing."""
    try:
        return any((folder / f).is_file() for f in files)
    except OSError:
        return False


def data_dir_problem() -> str | None:
    """What is wrong with MINIBERT_DATA, in a sentence, or None when it is unset or holds some of the datasets.

    `minibert.data` reads a dataset from MINIBERT_DATA only if its file is there (`sst-2/dev.tsv`, ...) and quietly
    downloads it otherwise, so a mistyped folder would go unnoticed until a download fails or takes minutes.
    """
    from pathlib import Path

    from minibert.data import ENV_VAR, data_dir

    root = data_dir()
    if root is None:
        return None
    path = Path(root).expanduser()
    expected = _expected_data_files()
    fix = "datasets will be downloaded instead (unset it, or point it at the folder holding the datasets)"
    if not os.path.exists(path):  # os.path never raises, Path.exists can (a folder we may not enter)
        return f"{ENV_VAR}={root} does not exist: {fix}"
    if not os.path.isdir(path):
        return f"{ENV_VAR}={root} is a file, not a folder: {fix}"
    if _holds_any(path, expected):
        return None
    try:
        inside = [p for p in sorted(path.iterdir()) if _holds_any(p, expected)]
    except OSError:  # a folder we may not list
        inside = []
    hint = f"; did you mean {ENV_VAR}={inside[0]}?" if inside else ""
    return (f"{ENV_VAR}={root} holds none of the course's datasets (such as {expected[0]} or {expected[-1]}): "
            f"{fix}{hint}")


def environment_report() -> dict[str, str]:
    """Versions and hardware, for lesson 00 and for bug reports; a "warning" when MINIBERT_DATA is not usable."""
    import importlib.metadata as md

    from minibert import __version__

    report = {"minibert": __version__, "python": platform.python_version(), "platform": platform.platform(terse=True)}
    for pkg in ("torch", "tokenizers", "safetensors", "numpy", "tqdm", "matplotlib", "ipywidgets", "datasets",
                "transformers"):
        try:
            report[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            report[pkg] = "not installed"
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    problem = data_dir_problem()
    if problem is not None:
        report["warning"] = problem
    return report
