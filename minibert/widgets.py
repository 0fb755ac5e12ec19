"""Interactive playgrounds for the lessons, that also work where widgets cannot run.

`playground(render, **controls)` shows one control per keyword argument and re-runs `render(**values)` whenever a
control changes. It works with ipywidgets 7 (Colab) and 8 (JupyterLab 4). Where ipywidgets is missing it calls
`render` once with the defaults, so the lesson still shows a static picture.

Controls are described by plain values:
- a string: a text box (`text="Hello BERT"`)
- a tuple `(low, high, step, default)` of ints or floats: a slider (`layer=(0, 3, 1, 0)`)
- a list: a dropdown whose first item is the default (`head=[0, 1, 2, 3]`)

The widget's own output cannot be compared by nbval (its model id changes every run), so a lesson tags the
playground cell `nbval-ignore-output` and, in the next cell, calls `render` with fixed values: that static call is
what nbval checks and what a notebook viewer without a kernel (GitHub, nbviewer) shows.

What it leaves out: layouts beyond a row of controls above the output.
"""

from __future__ import annotations

from collections.abc import Callable


def _default(spec):
    if isinstance(spec, tuple):
        return spec[3] if len(spec) > 3 else spec[0]
    if isinstance(spec, list):
        return spec[0]
    return spec


def _control(name: str, spec, widgets):
    style = {"description_width": "initial"}
    if isinstance(spec, str):
        return widgets.Text(value=spec, description=name, continuous_update=False, style=style,
                            layout=widgets.Layout(width="60%"))
    if isinstance(spec, tuple) and len(spec) in (3, 4):
        low, high, step = spec[:3]
        kind = widgets.IntSlider if all(isinstance(v, int) for v in spec) else widgets.FloatSlider
        return kind(value=_default(spec), min=low, max=high, step=step, description=name, continuous_update=False,
                    style=style)
    if isinstance(spec, list) and spec:
        return widgets.Dropdown(options=spec, value=spec[0], description=name, style=style)
    raise TypeError(f"control {name!r}: use a string (text box), a (low, high, step[, default]) tuple (slider) or "
                    f"a non-empty list (dropdown), not {spec!r}")


def build_playground(render: Callable[..., None], **controls):
    """The widget box (controls above `render`'s output) without showing it; None without ipywidgets."""
    if not controls:
        raise ValueError("playground needs at least one control, e.g. playground(show, text='Hello')")
    try:
        import ipywidgets as widgets
    except ImportError:
        return None
    built = {name: _control(name, spec, widgets) for name, spec in controls.items()}
    output = widgets.interactive_output(render, built)
    return widgets.VBox([widgets.HBox(list(built.values())), output])


def playground(render: Callable[..., None], **controls) -> None:
    """Show controls and `render(**values)` below them (returns nothing, so the box is not shown twice)."""
    box = build_playground(render, **controls)
    if box is None:  # no ipywidgets here: a static picture with the defaults
        render(**{name: _default(spec) for name, spec in controls.items()})
        return
    from IPython.display import display

    display(box)
