import os
import subprocess
import sys

import pytest

from minibert.widgets import build_playground, playground


def test_playground_builds_controls_and_renders(capsys):
    ipywidgets = pytest.importorskip("ipywidgets")
    seen = []
    box = build_playground(lambda text, n, which: seen.append((text, n, which)),
                           text="hi", n=(0, 4, 1, 2), which=["a", "b"])
    text, slider, dropdown = box.children[0].children
    assert isinstance(text, ipywidgets.Text) and isinstance(slider, ipywidgets.IntSlider)
    assert isinstance(dropdown, ipywidgets.Dropdown)
    assert seen[-1] == ("hi", 2, "a")
    slider.value = 4  # moving the slider re-renders
    text.value = "hello"
    assert seen[-1] == ("hello", 4, "a")


def test_playground_without_ipywidgets_renders_the_defaults_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    seen = []
    assert build_playground(lambda text, x: None, text="hi") is None
    playground(lambda text, x: seen.append((text, x)), text="hi", x=(0.0, 1.0, 0.1, 0.5))
    assert seen == [("hi", 0.5)]


def test_bad_controls_say_what_is_accepted():
    with pytest.raises(TypeError, match="text box"):
        playground(print, x=object())
    with pytest.raises(ValueError, match="at least one control"):
        playground(print)


COLAB_IPYWIDGETS = "7.7.1"  # the ipywidgets that Colab ships (7.x; JupyterLab 4 brings 8.x, tested above)

PLAYGROUND_SCRIPT = """
import ipywidgets
from minibert.widgets import build_playground

assert ipywidgets.__version__ == {version!r}, ipywidgets.__version__
seen = []
box = build_playground(lambda text, n, x, which: seen.append((text, n, x, which)),
                       text="hi", n=(0, 4, 1, 2), x=(0.0, 1.0, 0.1, 0.5), which=["a", "b"])
text, slider, float_slider, dropdown = box.children[0].children
assert seen[-1] == ("hi", 2, 0.5, "a"), seen
text.value, slider.value, float_slider.value, dropdown.value = "hello", 4, 0.7, "b"
assert seen[-1] == ("hello", 4, 0.7, "b"), seen
print("ok", ipywidgets.__version__)
"""


@pytest.fixture(scope="session")
def colab_ipywidgets(tmp_path_factory):
    """A folder holding Colab's ipywidgets 7 (from the package registry), to put in front of sys.path."""
    target = tmp_path_factory.mktemp("ipywidgets7")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           f"ipywidgets=={COLAB_IPYWIDGETS}", "ipython_genutils"], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"could not fetch ipywidgets {COLAB_IPYWIDGETS} from the package registry: {done.stderr[-300:]}")
    return target


def test_playground_works_with_colabs_ipywidgets_7(colab_ipywidgets):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(colab_ipywidgets), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", PLAYGROUND_SCRIPT.format(version=COLAB_IPYWIDGETS)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"ok {COLAB_IPYWIDGETS}"  # before it: clear_output's escape codes
