"""Shared test setup: the course data folder and quiet, offline Hugging Face libraries."""

import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ["MINIBERT_PROGRESS"] = "0"  # the lessons' progress bars (timings) stay out of what nbval compares
if not os.environ.get("MINIBERT_DATA") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["MINIBERT_DATA"] = str(ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("MINIBERT_DATA")
    if not value or not Path(value).is_dir():
        pytest.fail("These tests read the course data: set MINIBERT_DATA to its folder (CI uses ../shared/data).")
    return Path(value)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """`fake_hub(load_dataset)`: no local copy in MINIBERT_DATA and a stand-in for `datasets.load_dataset`, so that
    minibert.data takes its hub path offline; its record cache is emptied before and after."""
    from minibert import data

    def install(load_dataset):
        (tmp_path / "no-local-copy").mkdir(exist_ok=True)
        monkeypatch.setenv("MINIBERT_DATA", str(tmp_path / "no-local-copy"))
        monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
        data._load_cached.cache_clear()

    yield install
    data._load_cached.cache_clear()
