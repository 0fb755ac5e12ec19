"""Every lesson as a learner meets it: JupyterLab in headless Chromium, run all cells, look at what appears.

For each lesson this starts from a fresh copy of the notebook with its outputs cleared, runs all cells through
JupyterLab's own "Run All Cells" command, and checks that
- no cell shows an error,
- every figure the notebook makes appears as an image,
- every ipywidgets control renders, and responds: typing in a text box or moving a slider changes its output.
Screenshots go to `test-artifacts/browser/` (kept by CI as artifacts).

Needs Debian's `chromium` (no browser download) and the `playwright` package. Skipped when either is missing,
unless MINIBERT_BROWSER_TESTS=1 (set by .ci/run), which turns a missing browser into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted((ROOT / "lessons").glob("*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("MINIBERT_BROWSER_TESTS") == "1"
TOKEN = "minibert-browser-test"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def _missing() -> str | None:
    if CHROMIUM is None:
        return "Debian's chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; no browser download is needed)"
    return None


if _missing():
    if REQUIRED:
        raise RuntimeError(f"MINIBERT_BROWSER_TESTS=1 but {_missing()}")
    pytest.skip(_missing(), allow_module_level=True)

from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Fresh copies of the lessons with their outputs cleared, so what we see is what this run produced."""
    folder = tmp_path_factory.mktemp("course") / "lessons"
    folder.mkdir()
    for lesson in LESSONS:
        nb = nbformat.read(lesson, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, folder / lesson.name)
    return folder.parent


@pytest.fixture(scope="module")
def lab(workdir):
    port = _free_port()
    settings = workdir / ".lab-settings"
    # every cell in the DOM (no virtual scrolling, so all outputs can be checked); no news pop-up
    for plugin, values in {"notebook-extension/tracker": '{"windowingMode": "none"}',
                           "apputils-extension/notification": '{"fetchNews": "false"}'}.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(values, encoding="utf-8")
    env = dict(os.environ, MINIBERT_QUICK="1", JUPYTER_CONFIG_DIR=str(workdir / ".jupyter"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={workdir}", "--ServerApp.open_browser=False",
         "--allow-root", "--LabApp.news_url=None", f"--LabApp.user_settings_dir={settings}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start within 90 s")
    yield url
    server.terminate()
    server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _run_all(page) -> None:
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=60_000)
    # the status bar says "Python 3 (ipykernel) | Idle" once the kernel is up
    page.locator(".jp-StatusBar-Widget", has_text="| Idle").first.wait_for(timeout=120_000)
    done = """() => { const PANEL = '.jp-NotebookPanel:not(.lm-mod-hidden)';
        const prompts = [...document.querySelectorAll(PANEL + ' .jp-CodeCell .jp-InputPrompt')]
            .map(e => e.textContent);
        return prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
    }"""
    started = """() => { const PANEL = '.jp-NotebookPanel:not(.lm-mod-hidden)';
        return [...document.querySelectorAll(PANEL + ' .jp-CodeCell .jp-InputPrompt')]
            .some(e => /\\[(\\d+|\\*)\\]/.test(e.textContent));
    }"""
    for _attempt in range(3):  # a click that lands before the kernel is really ready runs nothing: click again
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()  # the menu a learner uses
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(started, timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    else:
        raise AssertionError("Run All Cells did not start the notebook")
    # a running cell shows "[*]:", a finished one "[n]:"; wait until every code cell has run
    try:
        page.wait_for_function(done, timeout=int(os.environ.get("MINIBERT_BROWSER_TIMEOUT", "600")) * 1000)
    except PlaywrightTimeout:
        prompts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt").all_inner_texts()
        raise AssertionError(f"not every cell ran: prompts {prompts}") from None


def _expected_figures(lesson: Path) -> int:
    nb = nbformat.read(lesson, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == "code" and "plt.show()" in c.source)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_in_jupyterlab(lab, browser, lesson):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # a workspace of its own, reset: no tab of an earlier lesson is restored next to this one
    page.goto(f"{lab}/lab/workspaces/{lesson.stem}/tree/lessons/{lesson.name}?reset&token={TOKEN}")
    try:
        _run_all(page)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t.split("\n")[0]]
        assert not tracebacks, f"{lesson.name}: a cell shows an error:\n{tracebacks[0][:2000]}"

        figures = page.locator(".jp-OutputArea-output img").count()
        assert figures >= _expected_figures(lesson), f"{lesson.name}: {figures} figures appeared"

        _check_widgets(page, lesson)
    finally:
        page.screenshot(path=str(ARTIFACTS / f"{lesson.stem}.png"), full_page=False)
        page.close()


def _output_after(widget) -> str:
    """The text of the output area holding a widget (where interactive_output renders)."""
    return widget.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea')][1]").inner_text()


def _check_widgets(page, lesson: Path) -> None:
    nb = nbformat.read(lesson, as_version=4)
    markers = ("import ipywidgets", "from ipywidgets", "minibert.widgets")
    uses_widgets = any(m in c.source for c in nb.cells if c.cell_type == "code" for m in markers)
    controls = page.locator(".jupyter-widgets.widget-text input, .jupyter-widgets .widget-slider, "
                            ".jupyter-widgets.widget-dropdown select")
    if uses_widgets:
        assert controls.count() > 0, f"{lesson.name} uses ipywidgets but no control rendered"
    for i in range(controls.count()):
        control = controls.nth(i)
        control.scroll_into_view_if_needed()
        before = _output_after(control)
        tag = control.evaluate("e => e.tagName")
        if tag == "INPUT":
            control.fill("Playing with minibert in a browser.")
            control.press("Enter")
        elif tag == "SELECT":
            options = control.locator("option").all_inner_texts()
            control.select_option(index=len(options) - 1)
        else:
            control.locator(".noUi-handle, .ui-slider-handle").first.focus()
            page.keyboard.press("End")
        page.wait_for_timeout(1500)
        assert _output_after(control) != before, f"{lesson.name}: control {i} ({tag}) did not change its output"
