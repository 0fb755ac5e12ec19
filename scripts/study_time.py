"""Each lesson's study time, estimated from what it holds, written into the "study time" row of its header table.

Reading: the words of its prose at 150 a minute (technical text, read to understand it, not skimmed) and the lines of
its code at 10 a minute (read, run, looked at). Exercise: the gaps of exercises/NN (one `raise NotImplementedError`
each) at 15 minutes a gap. Both are rounded to 5 minutes. These are estimates from counts, said as such in the row;
the compute time is the row above it (benchmarks/lesson_times.py measures it).

    python scripts/study_time.py            # rewrite the rows of every lesson
    python scripts/study_time.py --check    # exit 1 if a row is missing or out of date (the tests run this)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS_PER_MINUTE, CODE_LINES_PER_MINUTE, MINUTES_PER_GAP = 150, 10, 15
ROW = "| study time (estimate) |"


def counts(lesson: Path) -> tuple[int, int, int]:
    """(words of prose, lines of code, exercise gaps) of one lesson."""
    cells = json.loads(lesson.read_text(encoding="utf-8"))["cells"]
    prose = ["\n".join(line for line in "".join(c["source"]).split("\n") if not line.startswith(ROW))
             for c in cells if c["cell_type"] == "markdown"]  # without the row itself, which counts words too
    words = sum(len(re.findall(r"[A-Za-z0-9]+", text)) for text in prose)
    code = sum(1 for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()
               if line.strip() and not line.strip().startswith("#"))
    exercise = ROOT / "exercises" / lesson.name
    gaps = exercise.read_text(encoding="utf-8").count("raise NotImplementedError") if exercise.is_file() else 0
    return words, code, gaps


def row(lesson: Path) -> str:
    words, code, gaps = counts(lesson)
    reading = max(5, 5 * round((words / WORDS_PER_MINUTE + code / CODE_LINES_PER_MINUTE) / 5))
    text = f"reading about {reading} min ({words:,} words, {code:,} lines of code)"
    if gaps:
        text += f"; exercise about {max(5, 5 * round(gaps * MINUTES_PER_GAP / 5))} min ({gaps} gaps)"
    return f"{ROW} {text} | the same |"


def update(lesson: Path, check: bool) -> bool:
    """Put the row under the header's "time for this notebook" row; True if it was already right."""
    nb = json.loads(lesson.read_text(encoding="utf-8"))
    header = "".join(nb["cells"][0]["source"])
    lines = header.split("\n")
    wanted = row(lesson)
    if wanted in lines:
        return True
    if check:
        return False
    lines = [line for line in lines if not line.startswith(ROW)]
    anchor = next(i for i, line in enumerate(lines) if line.startswith("| time for this notebook |"))
    lines.insert(anchor + 1, wanted)
    text = "\n".join(lines)
    nb["cells"][0]["source"] = [line + "\n" for line in text.split("\n")[:-1]] + [text.split("\n")[-1]]
    lesson.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a row is missing or stale")
    args = parser.parse_args()
    stale = [p.name for p in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")) if not update(p, args.check)]
    if args.check and stale:
        print("study-time rows missing or out of date (run python scripts/study_time.py): " + ", ".join(stale))
        return 1
    print("updated: " + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
