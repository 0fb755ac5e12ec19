"""`bash course.sh lab` started for real: JupyterLab at the repository's root, lesson 00 open, options passed on.

The server runs in the virtual environment running these tests (MINIBERT_VENV, with MINIBERT_SKIP_INSTALL=1 so that
course.sh calls no pip), on a free port with a token of ours, and with its runtime files in a temporary folder. As
root, which is how containers and many classroom VMs run it, course.sh must say so in one line and start anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "minibert-course-sh-test"
STARTUP_LIMIT_S = 120  # a generous limit for a busy machine; the server usually answers within seconds
ROOT_NOTICE = "course.sh: running as root"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or not hasattr(os, "killpg"),
                                reason="course.sh needs bash and a POSIX system")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = TOKEN):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_usage_names_both_commands():
    result = subprocess.run(["bash", str(ROOT / "course.sh")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "bash course.sh lab" in result.stderr and "bash course.sh test" in result.stderr


@pytest.mark.slow
def test_lab_opens_the_repository_root_with_lesson_00_and_passes_options_on(tmp_path):
    if not (Path(sys.prefix) / "bin" / "activate").exists():
        pytest.skip(f"the tests do not run in a virtual environment that course.sh can use ({sys.prefix})")
    port = _free_port()
    env = dict(os.environ, MINIBERT_VENV=sys.prefix, MINIBERT_SKIP_INSTALL="1",
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    log_path = tmp_path / "course_sh.log"
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            ["bash", str(ROOT / "course.sh"), "lab", "--no-browser", "--port", str(port), "--ip", "127.0.0.1",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        listing = None
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while listing is None:
            if process.poll() is not None:
                pytest.fail(f"course.sh lab exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no answer on port {port} within {STARTUP_LIMIT_S} s:\n{log_path.read_text()[-3000:]}")
            try:
                listing = _get(f"http://127.0.0.1:{port}/api/contents?content=1")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)

        # the file browser starts at the repository's root, where lesson 00 sends the learner next
        names = {item["name"] for item in listing["content"]}
        assert {"lessons", "exercises", "solutions"} <= names, names
        # our token reached JupyterLab: a request without it is refused
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"http://127.0.0.1:{port}/api/contents", token=None)
        assert refused.value.code == 403
        # the page a browser would open is lesson 00, by its path from the root
        opened = list((tmp_path / "runtime").glob("jpserver-file-to-run-*-open.html"))
        assert opened, "JupyterLab was given no notebook to open"
        assert "/lab/tree/lessons/00_start_here.ipynb" in opened[0].read_text(encoding="utf-8")

        notices = [line for line in log_path.read_text().splitlines() if line.startswith(ROOT_NOTICE)]
        if os.geteuid() == 0:  # it started although we are root, and said so once
            assert len(notices) == 1, log_path.read_text()[-3000:]
        else:
            assert not notices
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
