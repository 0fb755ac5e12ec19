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
