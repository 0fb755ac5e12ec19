"""Checkers for the exercise notebooks: one module per lesson, common helpers here.

A checker runs the learner's function on inputs it makes, compares with the package's own implementation, and
either prints a short "looks right" line or raises `CheckFailed` saying what differs first (a shape, the first
mismatching value or token) without printing the expected answer in full. Given an exercise's stub, a function that
still raises NotImplementedError itself, it raises `NotWrittenYet`, which Jupyter shows as one line naming the
function (every checker is decorated with `reports_stubs`).

What it leaves out: grading and scores (teachers can use nbgrader on the same notebooks for that).
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable

import torch


class CheckFailed(AssertionError):
    """The learner's code gives a different result; the message says where it first differs."""


class NotWrittenYet(CheckFailed, NotImplementedError):
    """The learner's function is still the exercise's stub: it raises NotImplementedError itself.

    Still a failure (the cell stops, "Run All" stops there), but shown as one line, not as a traceback through the
    checker's code, which would only hide what to do.
    """

    def _render_traceback_(self) -> list[str]:
        """What IPython and Jupyter show instead of the traceback."""
        return [f"✗ {self}"]


def _stub_name(error: NotImplementedError, learner) -> str | None:
    """The name of the learner's function (or method) that raised `error` itself, or None if it came from elsewhere
    (from torch, say, or from code the learner's function calls): only a stub is reported as not written yet."""
    tb = error.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if isinstance(learner, type):  # the methods the learner's class defines (not those it inherits)
        methods = {name: getattr(value, "__func__", value) for name, value in vars(learner).items()}
        owners = {f.__code__: f"{learner.__name__}.{name}" for name, f in methods.items() if hasattr(f, "__code__")}
        return owners.get(code)
    return getattr(learner, "__name__", "your function") if code is getattr(learner, "__code__", None) else None


def reports_stubs(check: Callable) -> Callable:
    """Decorate a checker `check(learner, ...)`: when `learner`, a function or a class, is still an exercise's stub
    (it raises NotImplementedError itself), raise `NotWrittenYet` with one line naming it, not the stub's traceback."""

    @functools.wraps(check)
    def run(learner, *args, **kwargs):
        try:
            return check(learner, *args, **kwargs)
        except NotImplementedError as error:
            if isinstance(error, NotWrittenYet):
                raise
            name = _stub_name(error, learner)
            if name is None:
                raise
            raise NotWrittenYet(f"{name} is not written yet: it still raises NotImplementedError. Replace that line "
                                f"with your code, run its cell, then run this checker again.") from None

    return run


def passed(what: str) -> None:
    print(f"✓ {what} looks right.")


def compare_tensors(name: str, got, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Raise CheckFailed naming the first difference: type, shape, dtype, or first value off by more than atol."""
    if got is None:
        raise CheckFailed(f"{name}: your function returned None. Did you forget a `return`?")
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{name}: expected a torch.Tensor, got {type(got).__name__}.")
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckFailed(f"{name}: shape is {tuple(got.shape)}, expected {tuple(expected.shape)}.")
    if got.dtype.is_floating_point != expected.dtype.is_floating_point:
        raise CheckFailed(f"{name}: dtype is {got.dtype}, expected a {expected.dtype}-like tensor.")
    got_, exp_ = got.detach().to(torch.float64), expected.detach().to(torch.float64)
    bad = ~torch.isclose(got_, exp_, atol=atol, rtol=rtol, equal_nan=False)
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise CheckFailed(
            f"{name}: {int(bad.sum())} of {bad.numel()} values differ; the first is at index {index}: "
            f"yours is {got_[index].item():.6g}, off by {abs(got_[index] - exp_[index]).item():.3g}.")


def compare_sequences(name: str, got, expected) -> None:
    """Raise CheckFailed at the first differing item of two sequences (tokens, ids...)."""
    if got is None:
        raise CheckFailed(f"{name}: your function returned None. Did you forget a `return`?")
    got = list(got)
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            raise CheckFailed(f"{name}: item {i} differs: yours is {g!r}; the items before it match.")
    if len(got) != len(expected):
        raise CheckFailed(f"{name}: yours has {len(got)} items, expected {len(expected)}; "
                          f"the first {min(len(got), len(expected))} match.")


@contextlib.contextmanager
def time_limit(seconds: float, message: str):
    """Raise CheckFailed(message) when the body runs for more than `seconds`: a learner's loop that never stops gets a
    message instead of a cell that runs forever. Only where a timer signal can interrupt it (on Unix, in the main
    thread, where Jupyter runs cells) and no other timer is running; elsewhere there is no limit."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def stop(signum, frame):
        raise CheckFailed(message)

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
