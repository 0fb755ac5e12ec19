"""Generate exercises/ from solutions/: every `### BEGIN SOLUTION ... ### END SOLUTION` region becomes a stub.

The exercise notebooks are never edited by hand: edit the solution, then run

    python scripts/make_exercises.py            # write exercises/
    python scripts/make_exercises.py --check    # fail if exercises/ differs from what solutions/ generates

It uses nbgrader's ClearSolutions preprocessor, whose stub `raise NotImplementedError()` then gets a message naming
the function the gap is in and what to do (`raise NotImplementedError("write split_heads here, then run this cell and
the checker below")`); the checkers recognise such a stub and say so in one line. It then clears outputs and execution
counts, and writes the notebook in a stable JSON form so that the drift check is a plain comparison.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor, ClearOutputPreprocessor
from nbgrader.preprocessors import ClearSolutions

ROOT = Path(__file__).resolve().parents[1]
BANNER = ("> **Exercise notebook, generated from `solutions/{name}` by `scripts/make_exercises.py`. "
          "Do not edit it in the repository: edit the solution and regenerate.**\n"
          "> Replace each `raise NotImplementedError(...)` line with your code, run its cell, then the checker cell "
          "below it.")
MAX_LINE = 120  # ruff's line length, which the exercise notebooks keep too
NBGRADER_STUB = "raise NotImplementedError()"  # what ClearSolutions puts in place of a solution
DEFINITION = re.compile(r"^(?P<indent>[ \t]*)(?:async[ \t]+)?(?P<kind>def|class)[ \t]+(?P<name>\w+)")


def gap_owner(lines: list[str], indent: int) -> str | None:
    """The qualified name (`EncoderBlock.forward`) of the function whose body holds a line indented by `indent`,
    given the lines above it; None outside any function.

    Going up, each line indented less than everything below it opens a block that holds the gap; the `def`s and
    `class`es among those blocks name it.
    """
    names: list[str] = []
    for line in reversed(lines):
        code = line.strip()
        if not code or code.startswith("#") or len(line) - len(line.lstrip()) >= indent:
            continue
        indent = len(line) - len(line.lstrip())
        match = DEFINITION.match(line)
        if match:
            if not names and match["kind"] != "def":
                return None  # directly in a class body, not in a function
            names.insert(0, match["name"])
    return ".".join(names) or None


def stub_with_message(source: str) -> str:
    """Give each of a cell's stubs a message: the function to write, and what to run once it is written."""
    lines = source.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == NBGRADER_STUB:
            indent = len(line) - len(line.lstrip())
            owner = gap_owner(lines[:i], indent)
            what = f"write {owner} here" if owner else "write your code here"
            stub = f'{line[:indent]}raise NotImplementedError("{what}, then run this cell and the checker below")'
            if len(stub) > MAX_LINE:  # a long name: the shorter message keeps the exercise within ruff's limit
                stub = f'{line[:indent]}raise NotImplementedError("{what}, then run the checker below")'
            lines[i] = stub
    return "\n".join(lines)


def exercise_from_solution(solution: Path) -> str:
    """The exercise notebook's JSON text for one solution notebook."""
    nb = nbformat.read(solution, as_version=4)
    resources: dict = {}
    nb, resources = ClearSolutions(enforce_metadata=False).preprocess(nb, resources)
    nb, resources = ClearOutputPreprocessor().preprocess(nb, resources)
    nb, resources = ClearMetadataPreprocessor(preserve_cell_metadata_mask={"tags"},
                                              preserve_nb_metadata_mask={"kernelspec"}
                                              ).preprocess(nb, resources)
    nb.metadata["language_info"] = {"name": "python"}  # not the version that last executed the solution
    for cell in nb.cells:
        if "BEGIN SOLUTION" in cell.source or "END SOLUTION" in cell.source:
            raise RuntimeError(f"{solution}: a solution marker was left in a cell")
        if cell.cell_type == "code":
            cell.source = stub_with_message(cell.source)
        cell.pop("id", None)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(BANNER.format(name=solution.name)))
    for cell in nb.cells:
        cell.pop("id", None)
    nb.nbformat_minor = 4  # no cell ids: stable output
    return nbformat.writes(nb) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that exercises/ is up to date")
    args = parser.parse_args(argv)
    solutions = sorted((ROOT / "solutions").glob("*.ipynb"))
    exercises_dir = ROOT / "exercises"
    stale = []
    expected_names = set()
    for solution in solutions:
        target = exercises_dir / solution.name
        expected_names.add(target.name)
        text = exercise_from_solution(solution)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current != text:
            stale.append(target)
            if not args.check:
                target.write_text(text, encoding="utf-8")
    extra = [p for p in exercises_dir.glob("*.ipynb") if p.name not in expected_names]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} differs from what solutions/{p.name} generates", file=sys.stderr)
        for p in extra:
            print(f"{p.relative_to(ROOT)} has no solution notebook", file=sys.stderr)
        if stale or extra:
            print("Run `python scripts/make_exercises.py` after editing solutions/ (never edit exercises/).",
                  file=sys.stderr)
            return 1
        print(f"exercises/ is up to date ({len(solutions)} notebooks)")
        return 0
    for p in extra:
        p.unlink()
    print(f"wrote {len(stale)} of {len(solutions)} exercise notebooks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
