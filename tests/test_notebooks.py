"""The notebooks' own rules: exercises generated from solutions, stored outputs checked, lesson conventions."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_exercises = load_script("make_exercises")


def test_there_are_lessons_and_solutions():
    assert LESSONS and LESSONS[0].name == "00_start_here.ipynb"
    assert SOLUTIONS


def test_exercises_are_generated_from_solutions():
    assert make_exercises.main(["--check"]) == 0, "run `python scripts/make_exercises.py`"


def test_editing_an_exercise_by_hand_is_caught(tmp_path, monkeypatch, capsys):
    for folder in ("solutions", "exercises"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    monkeypatch.setattr(make_exercises, "ROOT", tmp_path)
    assert make_exercises.main(["--check"]) == 0
    exercise = tmp_path / "exercises" / "00_start_here.ipynb"
    nb = json.loads(exercise.read_text(encoding="utf-8"))
    stub = next(c for c in nb["cells"] if "NotImplementedError" in "".join(c["source"]))
    stub["source"] = re.sub(r"raise NotImplementedError\(.*\)", "return x.softmax(dim)", "".join(stub["source"]))
    assert "return x.softmax(dim)" in stub["source"]
    exercise.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    assert make_exercises.main(["--check"]) == 1
    assert "00_start_here.ipynb differs" in capsys.readouterr().err


def test_exercises_hold_stubs_and_no_solution(tmp_path):
    for solution in SOLUTIONS:
        text = make_exercises.exercise_from_solution(solution)
        assert "raise NotImplementedError(" in text, f"{solution.name} has no BEGIN/END SOLUTION region"
        assert "raise NotImplementedError()" not in text, f"{solution.name}: a stub says nothing about what to do"
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text


def test_a_stub_names_its_function_and_says_what_to_do():
    nb = nbformat.reads(make_exercises.exercise_from_solution(ROOT / "solutions" / "03_attention.ipynb"), as_version=4)
    cell = next(c.source for c in nb.cells if c.source.startswith("def split_heads("))
    assert 'raise NotImplementedError("write split_heads here, then run this cell and the checker below")' in cell
    nb = nbformat.reads(make_exercises.exercise_from_solution(ROOT / "solutions" / "04_encoder.ipynb"), as_version=4)
    cell = next(c.source for c in nb.cells if c.source.startswith("class EncoderBlock("))
    assert 'NotImplementedError("write EncoderBlock.__init__ here,' in cell
    assert 'NotImplementedError("write EncoderBlock.forward here,' in cell


def test_a_stub_is_named_after_the_function_that_encloses_it():
    source = "\n".join([
        "def outer(x):",
        "    def helper():",
        "        return 1",
        "    if x:",
        "        # YOUR CODE HERE",
        "        raise NotImplementedError()",
        "class Model:",
        "    @staticmethod",
        "    def step(x):",
        "        for _ in x:",
        "            raise NotImplementedError()",
        "raise NotImplementedError()",
    ])
    stubs = [line.strip() for line in make_exercises.stub_with_message(source).split("\n") if "raise" in line]
    assert stubs == [
        'raise NotImplementedError("write outer here, then run this cell and the checker below")',
        'raise NotImplementedError("write Model.step here, then run this cell and the checker below")',
        'raise NotImplementedError("write your code here, then run this cell and the checker below")',
    ]
    name = "a" * 45  # too long for the whole message within ruff's line length, not for the shorter one
    stub = make_exercises.stub_with_message(f"def {name}():\n    raise NotImplementedError()").split("\n")[1]
    assert stub == f'    raise NotImplementedError("write {name} here, then run the checker below")'
    assert len(stub) <= make_exercises.MAX_LINE


@pytest.mark.parametrize("path", LESSONS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_conventions(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].source
    assert first.startswith("# "), "the first cell is the lesson's title"
    # a learner opens the exercise on Colab, not its solution
    opens = "lessons" if path.parent.name == "lessons" else "exercises"
    assert "colab.research.google.com/github/" in first and f"/{opens}/{path.name}" in first, \
        "the first cell carries the Open in Colab badge for this notebook"
    assert any('"google.colab" in sys.modules' in c.source for c in nb.cells[:4]), "the Colab install cell"
    if path.parent.name == "lessons":
        assert "setup(seed=" in "".join(c.source for c in nb.cells[:6]), "the settings cell seeds everything"
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.source.strip():
                assert cell.execution_count is not None, f"unexecuted cell: {cell.source[:60]!r}"
                assert not any(o.get("output_type") == "error" for o in cell.outputs), cell.source[:60]


# minibert's own plotting functions: each sets a title and axis labels
PLOT_HELPERS = {"plot_loss_curve", "plot_crossover"}


def _functions(nb) -> dict[str, str]:
    """The source of each top-level function a notebook defines, by name."""
    found = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for part in re.split(r"^(?=def )", cell.source, flags=re.M)[1:]:
            name = part[4:part.index("(")]
            header, _, body = part.partition("\n")
            found[name] = header + "\n" + re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]  # to the next top level
    return found


def _figure_cells(nb, widgets: bool = False):
    """(cell, its code followed by the notebook functions it calls, and theirs) for each cell with a stored figure,
    and with `widgets` also each cell that makes a widget (whose figures, if any, are drawn as the learner plays)."""
    functions = _functions(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        figure = any("image/png" in o.get("data", {}) for o in cell.outputs)
        if not (figure or widgets and "playground(" in cell.source):
            continue
        code = cell.source
        for _ in range(2):  # the notebook functions it calls, and theirs
            code += "".join(body for name, body in functions.items() if re.search(rf"\b{name}\(", code))
        yield cell, code


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_figure_has_a_title_and_axis_labels(path):
    nb = nbformat.read(path, as_version=4)
    figures = 0
    for cell, code in _figure_cells(nb):
        figures += 1
        helper = any(f"{h}(" in code for h in PLOT_HELPERS)
        assert helper or "title" in code, f"a figure without a title: {cell.source[:80]!r}"
        assert helper or "xlabel" in code or "set_yticks" in code, f"unlabelled axes: {cell.source[:80]!r}"
    if "matplotlib" in "".join(c.source for c in nb.cells):
        assert figures, "the lesson imports matplotlib but its stored outputs hold no figure"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_heat_map_has_a_colour_bar(path):
    """An attention map (or any imshow) without a colour bar shows shades of blue that mean nothing."""
    nb = nbformat.read(path, as_version=4)
    for cell, code in _figure_cells(nb, widgets=True):
        if "imshow(" in code:
            assert "colorbar(" in code, f"a heat map without a colour bar: {cell.source[:80]!r}"


def run_notebook(path: Path, allow_errors: bool = False):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def is_checker_cell(cell) -> bool:
    return cell.cell_type == "code" and "check_" in cell.source and "import" not in cell.source


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_pass_their_checkers_and_exercises_fail_them(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIBERT_QUICK", "1")
    nb = run_notebook(path)
    checks = [c for c in nb.cells if is_checker_cell(c)]
    assert checks, "a solution notebook calls at least one checker"
    for cell in checks:
        assert "✓" in "".join(o.get("text", "") for o in cell.outputs), f"checker did not pass: {cell.source!r}"
    # the exercise, up to its last checker: every checker fails on its stub, in one line that names the function
    exercise = nbformat.reads(make_exercises.exercise_from_solution(path), as_version=4)
    last_check = max(i for i, c in enumerate(exercise.cells) if is_checker_cell(c))
    exercise.cells = exercise.cells[:last_check + 1]
    nbformat.write(exercise, tmp_path / path.name)
    with pytest.raises(CellExecutionError, match="NotImplementedError"):
        run_notebook(tmp_path / path.name)
    exercise = run_notebook(tmp_path / path.name, allow_errors=True)
    for cell in (c for c in exercise.cells if is_checker_cell(c)):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert len(errors) == 1 and errors[0].ename == "NotWrittenYet", f"{cell.source!r}: {cell.outputs}"
        assert len(errors[0].traceback) == 1, f"{cell.source!r} shows a traceback: {errors[0].traceback}"
        assert "is not written yet" in errors[0].traceback[0], errors[0].traceback
        assert "✓" not in "".join(o.get("text", "") for o in cell.outputs)


def test_changing_a_stored_output_makes_nbval_fail(tmp_path):
    """`pytest --nbval` re-executes every cell and compares it with the stored output: a hand edit is caught."""
    lesson = ROOT / "lessons" / "00_start_here.ipynb"
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    shutil.copy(lesson, good / lesson.name)
    nb = json.loads(lesson.read_text(encoding="utf-8"))
    def text(output):
        return "".join(output.get("text", ""))

    cell = next(c for c in nb["cells"] if any("872" in text(o) for o in c.get("outputs", [])))
    out = next(o for o in cell["outputs"] if "872" in text(o))
    out["text"] = text(out).replace("872", "873")
    (bad / lesson.name).write_text(json.dumps(nb, indent=1), encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
               "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg")]
    env = dict(os.environ, MINIBERT_QUICK="1")
    passed = subprocess.run([*command, str(good)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert passed.returncode == 0, passed.stdout[-2000:]
    failed = subprocess.run([*command, str(bad)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert failed.returncode == 1 and "1 failed" in failed.stdout, failed.stdout[-2000:]
    assert "873" in failed.stdout and "872" in failed.stdout


FINETUNING_LESSONS = [p for p in LESSONS if p.name[:2] in {"07", "08", "09", "10", "11"}]
# what minibert.tasks.RunSettings defines for each task: records, held-out records, max_length, stride, epochs
RUN_SETTINGS_NAMES = ("train", "held", "eval", "max_length", "stride", "epoch")


def _call_arguments(code: str, name: str) -> list[str]:
    """The argument text of every call `name(...)` in `code` (parentheses balanced, so calls may span lines)."""
    found = []
    for match in re.finditer(rf"\b{re.escape(name)}\(", code):
        depth, start = 1, match.end()
        for at in range(start, len(code)):
            depth += {"(": 1, ")": -1}.get(code[at], 0)
            if depth == 0:
                found.append(code[start:at])
                break
    return found


@pytest.mark.parametrize("path", FINETUNING_LESSONS, ids=lambda p: p.name)
def test_finetuning_lessons_read_their_sizes_from_run_settings(path):
    """One place defines each task's quick and full sizes (minibert.tasks.QUICK and FULL, read by the command line
    and the course BERT's comparisons): lessons 07-10 read them with run_settings(task, S.quick) in their settings
    cell, and pick no training or held-out records, max_length, stride or epochs of their own."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    settings = next(source for source in code if "setup(seed=" in source)
    assert re.search(r"\brun_settings\([^()]*S\.quick\)", settings), "the settings cell: run_settings(task, S.quick)"
    for source in code:
        for names, value in re.findall(r"^\s*([A-Za-z_][\w, ]*?)\s*=(?!=)\s*(.+)$", source, flags=re.M):
            if not any(key in names for key in RUN_SETTINGS_NAMES):
                continue
            assert "S.pick(" not in value and not re.match(r"[\d_.]+\s*(#|$)", value), \
                f"{names} = {value}: read it from run_settings(task, S.quick) instead"
    for arguments in _call_arguments("\n".join(code), "random_vs_course"):
        assert not re.search(r"\b(epochs|max_length|stride)\s*=", arguments), \
            f"random_vs_course({arguments}) overrides what run_settings defines"


@pytest.mark.parametrize("path", FINETUNING_LESSONS, ids=lambda p: p.name)
def test_finetuning_lessons_show_progress_bars_as_the_settings_say(path):
    """Progress bars show for a learner and stay out of stored outputs: the trainings of lessons 07-10 pass
    progress=S.progress (setup() reads MINIBERT_PROGRESS), never progress=False."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"\bprogress\s*=\s*False", code), "pass progress=S.progress, not progress=False"
    calls = _call_arguments(code, "TrainingConfig") + _call_arguments(code, "compare_starts")
    assert calls, "the lesson trains with TrainingConfig or compare_starts"
    for arguments in calls:
        assert re.search(r"\bprogress\s*=\s*S\.progress\b", arguments), f"progress=S.progress missing in ({arguments})"


def _code_cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_lessons_05_and_06_explain_the_exercises_without_printing_their_answers():
    """Issue 15: an exercise asks for the idea, not for retyping code printed just above it. Lesson 05 gives the NSP
    recipe in pseudo-code (no Python that builds pairs from documents), lesson 06 lists the operations of a training
    step in no particular order (no code cell does the backward pass, clipping, the optimizer step and zero_grad)."""
    for source in _code_cells(ROOT / "lessons" / "05_pretraining_data.ipynb"):
        assert not re.search(r"^def \w*(pairs?|truncate\w*)\(", source, flags=re.M), \
            f"lesson 05 writes out the pairs recipe that exercise 05 asks for: {source[:80]!r}"
    for source in _code_cells(ROOT / "lessons" / "06_pretraining.ipynb"):
        step = all(s in source for s in (".backward()", "clip_grad_norm_(", ".step()", "zero_grad("))
        assert not step, f"lesson 06 writes out the training step that exercise 06 asks for: {source[:80]!r}"


def test_every_lesson_header_states_its_study_time():
    """Issue 15: each header gives the study time (reading and exercise, estimated from the lesson's words, lines of
    code and exercise gaps by scripts/study_time.py) beside the compute time; the row follows the lesson's content."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "study_time.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
