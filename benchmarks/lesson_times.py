"""How long each lesson takes in quick mode: the figures of the README's lesson table.

Runs `pytest --nbval` on one lesson at a time (a fresh kernel each, every cell executed and compared with its stored
output, as `bash course.sh test` does) and prints the wall time of each, then the total, as a Markdown table:

    MINIBERT_DATA=../shared/data python benchmarks/lesson_times.py
    python benchmarks/lesson_times.py lessons/08_sentence_pairs.ipynb

A benchmark, not a test: the times depend on the machine and on what else runs on it. The course's promise is that
no lesson takes more than 2 minutes on two CPU cores and the whole of `pytest --nbval lessons/` less than 10.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_lesson(path: Path) -> tuple[float, bool]:
    """(seconds, passed) of `pytest --nbval` on one lesson."""
    command = [sys.executable, "-m", "pytest", "-q", "--nbval-current-env", "--nbval-sanitize-with",
               str(ROOT / "tests" / "nbval_sanitize.cfg"), "--nbval", str(path)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "MINIBERT_QUICK": "1"})
    return time.perf_counter() - start, done.returncode == 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", type=Path, help="default: every lesson")
    args = parser.parse_args(argv)
    if not os.environ.get("MINIBERT_DATA"):
        print("Set MINIBERT_DATA to the course data folder first (the lessons would try to download).",
              file=sys.stderr)
        return 2
    lessons = args.lessons or sorted((ROOT / "lessons").glob("*.ipynb"))
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}\n")
    print("| lesson | seconds | nbval |\n|---|---:|---|")
    total, failed = 0.0, 0
    for path in lessons:
        seconds, passed = time_lesson(path)
        total += seconds
        failed += not passed
        print(f"| {path.stem} | {seconds:.0f} | {'passed' if passed else 'FAILED'} |", flush=True)
    print(f"| all | {total:.0f} | {failed} failed |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
