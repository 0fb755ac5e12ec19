"""minibert's plotting helpers draw what a learner can read (their titles and labels: test_notebooks.py)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from minibert.pretraining import plot_loss_curve  # noqa: E402


def test_the_loss_curve_has_whole_steps_on_its_axis():
    """A short run (the CLI's loss_curve.png after a few steps) once had ticks at steps 2.5, 3.5..."""
    history = [{"step": s, "loss": 10.0 - s, "mlm_loss": 9.0 - s, "nsp_loss": 0.7} for s in (1, 2, 3, 4, 5)]
    history.append({"step": 5, "eval_loss": 5.5})
    ax = plot_loss_curve(history)
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    plt.close(ax.figure)
