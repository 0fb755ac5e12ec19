"""Shared test setup: the course data folder and quiet, offline Hugging Face libraries."""

import os
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
