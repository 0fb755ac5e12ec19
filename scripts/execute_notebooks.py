"""Re-execute notebooks in quick mode and store their outputs: the only way lesson outputs are made.

    python scripts/execute_notebooks.py                       # every lesson and solution
    python scripts/execute_notebooks.py lessons/01_wordpiece.ipynb

Runs each notebook top to bottom in a fresh kernel of the current environment, with MINIBERT_QUICK=1, from the
notebook's own folder (as JupyterLab and nbval do), then writes it back with stable execution counts, no cell ids
churn and no widget state, so that `pytest --nbval lessons/` compares against exactly what this produced.
MINIBERT_DATA must point at the course data (the same as CI), otherwise the lessons would try to download.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, timeout: int = 600) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            allow_errors=False, store_widget_state=True, record_timing=False)
    client.execute()
    elapsed = time.perf_counter() - start
    nb.metadata.pop("widgets", None)  # widget state changes every run and would only churn the diff
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if not os.environ.get("MINIBERT_DATA"):
        default = ROOT.parent / "shared" / "data"
        if default.is_dir():
            os.environ["MINIBERT_DATA"] = str(default)
        else:
            print("Set MINIBERT_DATA to the course data folder first.", file=sys.stderr)
            return 2
    os.environ["MINIBERT_QUICK"] = "1"
    os.environ["MINIBERT_PROGRESS"] = "0"  # progress bars show when a learner runs a lesson, not in stored outputs
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    paths = args.notebooks or sorted((ROOT / "lessons").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
    for path in paths:
        seconds = execute(path.resolve())
        print(f"{path}: executed in {seconds:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
