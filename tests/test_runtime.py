import os
import random
import subprocess
import sys

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


def test_environment_report_warns_when_minibert_data_does_not_exist(monkeypatch, tmp_path):
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("MINIBERT_DATA", str(missing))
    warning = runtime.environment_report()["warning"]
    assert warning.startswith(f"MINIBERT_DATA={missing} does not exist: datasets will be downloaded instead")
    assert "unset it, or point it at the folder holding the datasets" in warning


def test_environment_report_warns_when_minibert_data_is_a_file(monkeypatch, tmp_path):
    a_file = tmp_path / "dev.tsv"
    a_file.write_text("sentence\tlabel\n")
    monkeypatch.setenv("MINIBERT_DATA", str(a_file))
    assert "is a file, not a folder" in runtime.environment_report()["warning"]


def test_environment_report_warns_when_minibert_data_holds_no_dataset(monkeypatch, tmp_path):
    """A folder that holds none of the files minibert.data looks for; a copy one level down is pointed out."""
    (tmp_path / "sst2").mkdir()  # not the course's layout (sst-2/dev.tsv)
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path))
    warning = runtime.environment_report()["warning"]
    assert "holds none of the course's datasets" in warning and "did you mean" not in warning
    (tmp_path / "data" / "sst-2").mkdir(parents=True)
    (tmp_path / "data" / "sst-2" / "dev.tsv").write_text("sentence\tlabel\n")
    assert f"did you mean MINIBERT_DATA={tmp_path / 'data'}?" in runtime.environment_report()["warning"]


def test_environment_report_is_quiet_when_minibert_data_is_fine_or_unset(monkeypatch, tmp_path):
    (tmp_path / "sst-2").mkdir()
    (tmp_path / "sst-2" / "dev.tsv").write_text("sentence\tlabel\n")  # one dataset is enough: the rest downloads
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path))
    assert "warning" not in runtime.environment_report()
    monkeypatch.delenv("MINIBERT_DATA")
    assert "warning" not in runtime.environment_report()


def test_minibert_info_prints_the_warning(tmp_path):
    env = {**os.environ, "MINIBERT_DATA": str(tmp_path / "missing"), "MINIBERT_QUICK": "1"}
    out = subprocess.run([sys.executable, "-m", "minibert", "info"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert f"warning:      MINIBERT_DATA={tmp_path / 'missing'} does not exist" in out


def test_environment_report_names_minibert_s_own_version():
    """The README asks for `python -m minibert info` in bug reports: it must say which minibert (issue 14.8)."""
    import minibert

    assert runtime.environment_report()["minibert"] == minibert.__version__
    assert list(runtime.environment_report())[0] == "minibert"


def test_progress_bars_are_on_unless_minibert_progress_is_0(monkeypatch):
    monkeypatch.delenv("MINIBERT_PROGRESS", raising=False)
    assert runtime.setup(verbose=False).progress is True  # a learner sees training move
    monkeypatch.setenv("MINIBERT_PROGRESS", "0")  # the test suite and execute_notebooks.py: no timings stored
    assert runtime.setup(verbose=False).progress is False
