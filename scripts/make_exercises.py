"""Generate exercises/ from solutions/: every `### BEGIN SOLUTION ... ### END SOLUTION` region becomes a stub.

The exercise notebooks are never edited by hand: edit the solution, then run

    python scripts/make_exercises.py            # write exercises/
    python scripts/make_exercises.py --check    # fail if exercises/ differs from what solutions/ generates

It uses nbgrader's ClearSolutions preprocessor (the stub is `raise NotImplementedError()`), then clears outputs and
execution counts, and writes the notebook in a stable JSON form so that the drift check is a plain comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor, ClearOutputPreprocessor
from nbgrader.preprocessors import ClearSolutions

ROOT = Path(__file__).resolve().parents[1]
BANNER = ("> **Exercise notebook, generated from `solutions/{name}` by `scripts/make_exercises.py`. "
          "Do not edit it in the repository: edit the solution and regenerate.**\n"
          "> Replace each `raise NotImplementedError()` with your code, then run the checker cell below it.")


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
