import random

import numpy as np
import pytest
import torch

from minibert import runtime


def draw():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_makes_python_numpy_and_torch_repeat():
    runtime.seed_everything(123)
    first = draw()
    runtime.seed_everything(123)
    assert draw() == first
    runtime.seed_everything(124)
    assert draw() != first


def test_seed_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="non-negative int"):
        runtime.seed_everything(-1)


@pytest.mark.parametrize("value, quick", [("1", True), ("0", False), ("true", True), ("off", False)])
def test_quick_switch_from_the_environment(monkeypatch, value, quick):
    monkeypatch.setenv("MINIBERT_QUICK", value)
    assert runtime.is_quick() is quick


def test_quick_is_the_default_without_a_gpu(monkeypatch):
    monkeypatch.delenv("MINIBERT_QUICK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.is_quick()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not runtime.is_quick()
    monkeypatch.setenv("MINIBERT_QUICK", "1")  # forces quick even with a GPU
    assert runtime.is_quick()


def test_bad_quick_value_says_what_to_use(monkeypatch):
    monkeypatch.setenv("MINIBERT_QUICK", "maybe")
    with pytest.raises(ValueError, match="use 1"):
        runtime.is_quick()


def test_precision_fits_the_hardware(monkeypatch):
    assert runtime.pick_precision("cpu").name == "fp32"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # T4
    t4 = runtime.pick_precision("cuda")
    assert (t4.name, t4.dtype, t4.use_grad_scaler) == ("fp16", torch.float16, True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # A100
    a100 = runtime.pick_precision("cuda")
    assert (a100.name, a100.dtype, a100.use_grad_scaler) == ("bf16", torch.bfloat16, False)


def test_precision_override_and_errors(monkeypatch):
    assert runtime.pick_precision("cpu", prefer="bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="not supported on the CPU"):
        runtime.pick_precision("cpu", prefer="fp16")
    with pytest.raises(ValueError, match="not one of"):
        runtime.pick_precision("cpu", prefer="fp8")


def test_fp32_autocast_is_a_no_op_and_bf16_autocast_casts_matmuls():
    x = torch.randn(4, 4)
    with runtime.pick_precision("cpu").autocast("cpu"):
        assert (x @ x).dtype == torch.float32
    with runtime.PRECISIONS["bf16"].autocast("cpu"):
        assert (x @ x).dtype == torch.bfloat16
    assert not runtime.PRECISIONS["fp32"].grad_scaler("cpu").is_enabled()


def test_device_choice(monkeypatch):
    monkeypatch.delenv("MINIBERT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.pick_device().type == "cpu"
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        runtime.pick_device("cuda")
    monkeypatch.setenv("MINIBERT_DEVICE", "cpu")
    assert runtime.pick_device().type == "cpu"
    monkeypatch.delenv("MINIBERT_DEVICE")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.pick_device().type == "mps"
    assert runtime.pick_precision("mps").name == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.pick_device().type == "cuda"  # cuda first, then mps


def test_setup_reports_and_picks(capsys, monkeypatch):
    monkeypatch.setenv("MINIBERT_QUICK", "1")
    settings = runtime.setup(seed=7)
    out = capsys.readouterr().out
    assert "mode:      quick" in out and "device:" in out and "precision:" in out
    assert settings.pick(quick=1, full=2) == 1 and settings.seed == 7
