"""Checkers for the exercises of lesson 10 (question answering): the best span in one window, the windows over a
long context, and the best answer over all of them.

Each checker runs the learner's code on inputs it makes, compares with minibert's own, and raises `CheckFailed` at the
first difference, with a hint for the usual mistakes, without printing the expected answer.
"""

from __future__ import annotations

import random

import torch

from minibert.checks import CheckFailed, passed, reports_stubs, time_limit
from minibert.finetuning_data import best_span

# ------------------------------------------------------------------------------------------ best span


def _span_cases():
    gen = torch.Generator().manual_seed(3)
    T = 16
    context = [None] * 5 + [(i, i + 1) for i in range(10)] + [None]  # [CLS] q q q [SEP] ctx x 10 [SEP]
    cases = []
    for name in ("end before start", "start in the question", "too long", "plain"):
        s, e = torch.randn(T, generator=gen), torch.randn(T, generator=gen)
        if name == "end before start":
            s[10], e[7] = 9.0, 9.0
        elif name == "start in the question":
            s[2], e[8] = 9.0, 9.0
        elif name == "too long":
            s[5], e[14] = 9.0, 9.0
        cases.append((name, s, e, context, 4))
    cases.append(("no context at all", torch.randn(T, generator=gen), torch.randn(T, generator=gen),
                  [None] * T, 30))
    return cases


@reports_stubs
def check_best_span(fn) -> None:
    """Check `fn(start_logits, end_logits, offsets, max_answer_length=30)`.

    start_logits, end_logits: (T,) tensors; offsets: a list of T items, a (start, end) character span for a token of
    the context and None for every other token ([CLS], the question, [SEP]). Return (start, end) token indices, or
    (start, end, score), of the legal span with the highest start_logits[start] + end_logits[end]: start <= end, both
    in the context, and end - start + 1 <= max_answer_length. Return None when no span is legal.
    """
    for name, s, e, offsets, max_len in _span_cases():
        expected = best_span(s, e, offsets, max_len)
        try:
            got = fn(s.clone(), e.clone(), list(offsets), max_answer_length=max_len)
        except NotImplementedError:  # a stub: reports_stubs says so in one line
            raise
        except Exception as ex:
            raise CheckFailed(f"case '{name}': your function raised {type(ex).__name__}: {ex}") from ex
        if expected is None:
            if got is not None:
                raise CheckFailed(f"case '{name}': no token is in the context, so no span is legal; return None "
                                  f"(yours returned {got!r}).")
            continue
        if got is None:
            raise CheckFailed(f"case '{name}': you returned None, but a legal span exists.")
        try:
            start, end = int(got[0]), int(got[1])
        except (TypeError, IndexError, ValueError):
            raise CheckFailed(f"case '{name}': return (start, end) token indices, got {got!r}") from None
        if (start, end) == expected[:2]:
            continue
        if end < start:
            raise CheckFailed(f"case '{name}': your span ({start}, {end}) ends before it starts.")
        if not (0 <= start < len(offsets) and 0 <= end < len(offsets)) or offsets[start] is None \
                or offsets[end] is None:
            raise CheckFailed(f"case '{name}': your span ({start}, {end}) uses a token outside the context "
                              "(offsets None: [CLS], the question or [SEP]).")
        if end - start + 1 > max_len:
            raise CheckFailed(f"case '{name}': your span ({start}, {end}) has {end - start + 1} tokens, more than "
                              f"max_answer_length={max_len}.")
        raise CheckFailed(f"case '{name}': your span ({start}, {end}) is legal but not the best: its score is "
                          f"{float(s[start] + e[end]):.4f}, and a legal span scores higher.")
    passed("best span")


# ------------------------------------------------------------------------------------------ windows over a long context


def _reference_windows(n_context: int, n_question: int, max_length: int, stride: int) -> list[tuple[int, int]]:
    """What prepare_qa_features cuts: (first, last + 1) context token of each window."""
    budget = max_length - n_question - 3
    windows, start = [], 0
    while True:
        end = min(start + budget, n_context)
        windows.append((start, end))
        if end >= n_context:
            return windows
        start += budget - stride


_WINDOW_CASES = [  # (what it tests, n_context, n_question, max_length, stride)
    ("a context that fits in one window", 50, 10, 128, 32),
    ("a context of exactly one window", 115, 10, 128, 32),
    ("one token more than a window", 116, 10, 128, 32),
    ("a long context", 300, 10, 128, 32),
    ("BERT's SQuAD windows: 384 tokens sharing 128", 1000, 14, 384, 128),
    ("no overlap (stride 0)", 200, 5, 64, 0),
    ("a large overlap", 120, 8, 48, 30),
]


def _window_message(windows, n_context: int, n_question: int, max_length: int, stride: int) -> str | None:
    """The first thing wrong with the learner's windows, or None when they are right."""
    budget = max_length - n_question - 3
    if not windows:
        return "you return no window: even a short context is read in one window."
    if windows[0][0] != 0:
        return f"the first window starts at context token {windows[0][0]}: it starts at the first, 0."
    for k, (start, end) in enumerate(windows):
        if end <= start:
            return f"window {k} is ({start}, {end}): a window is (first token, last token + 1) and holds tokens."
        if end - start > budget:
            if end - start == budget + 3:
                return (f"window {k} holds {end - start} context tokens: the window's max_length also holds [CLS], the "
                        f"question and two [SEP], so {budget} are left for the context.")
            return (f"window {k} holds {end - start} context tokens, more than the {budget} that max_length leaves "
                    f"next to [CLS], the {n_question} question tokens and two [SEP].")
        if end > n_context:
            return f"window {k} ends at {end}, past the context's {n_context} tokens."
        last = end == n_context
        if last and k < len(windows) - 1:
            return (f"window {k} already reaches the end of the context, yet window {k + 1} follows: stop at the "
                    f"window that reaches the end.")
        if not last and end - start < budget:
            return (f"window {k} holds {end - start} context tokens although the context goes on: every window but "
                    f"the last takes as many as fit, {budget}.")
        if k + 1 < len(windows):
            shared = end - windows[k + 1][0]
            if shared != stride:
                step = windows[k + 1][0] - start
                hint = (" Here stride is the overlap (the Hugging Face meaning), not the step between window starts "
                        "(Google's doc_stride)." if step == stride else "")
                return (f"windows {k} and {k + 1} share {shared} tokens; neighbouring windows share stride = "
                        f"{stride}.{hint}")
    if windows[-1][1] != n_context:
        return (f"the last window ends at context token {windows[-1][1]}, but the context has {n_context}: its end is "
                f"never read. Go on until a window reaches the end.")
    return None


@reports_stubs
def check_context_windows(context_windows) -> None:
    """Check `context_windows(n_context, n_question, max_length, stride) -> [(start, end), ...]`.

    The windows over a context of n_context tokens for [CLS] question [SEP] window [SEP] of at most max_length tokens:
    each window (first token, last token + 1) takes as many context tokens as fit, max_length - n_question - 3 (the
    last window fewer), neighbouring windows share `stride` tokens, and the last one ends at n_context. Compared
    with what `prepare_qa_features` cuts on the cases of `_WINDOW_CASES` and 300 random ones.
    """
    rng = random.Random(0)
    cases = list(_WINDOW_CASES)
    for k in range(300):
        max_length = rng.randint(16, 200)
        n_question = rng.randint(1, max_length // 3)
        budget = max_length - n_question - 3
        n_context, stride = rng.randint(1, 6 * budget), rng.randint(0, budget - 1)
        cases.append((f"random case {k}", n_context, n_question, max_length, stride))
    for name, n_context, n_question, max_length, stride in cases:
        what = (f"case '{name}' (n_context={n_context}, n_question={n_question}, max_length={max_length}, "
                f"stride={stride})")
        with time_limit(10, f"{what}: context_windows ran for more than 10 seconds. Does its loop stop?"):
            result = context_windows(n_context, n_question, max_length, stride)
        if result is None:
            raise CheckFailed("context_windows returned None. Did you forget a `return`?")
        try:
            windows = [(int(a), int(b)) for a, b in result]
        except (TypeError, ValueError):
            raise CheckFailed(f"{what}: return a list of (start, end) pairs, got {list(result)[:3]!r}.") from None
        message = _window_message(windows, n_context, n_question, max_length, stride)
        if message is None and windows != _reference_windows(n_context, n_question, max_length, stride):
            message = "your windows differ from what prepare_qa_features cuts."
        if message:
            raise CheckFailed(f"{what}: {message}")
    passed("context_windows")


# ------------------------------------------------------------------------------------------ the answer over all windows


def _qa_example(rng, n_words: int, n_question: int, max_length: int, stride: int):
    """A context of made-up words, and its windows as features: offsets (None outside the context), and logits."""
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 6))) for _ in range(n_words)]
    context, offsets = "", []
    for w in words:
        context += ("" if not context else " ")
        offsets.append((len(context), len(context) + len(w)))
        context += w
    lead = n_question + 2
    features = []
    for a, b in _reference_windows(n_words, n_question, max_length, stride):
        T = lead + (b - a) + 1
        s = torch.tensor([rng.gauss(0, 1) for _ in range(T)])
        e = torch.tensor([rng.gauss(0, 1) for _ in range(T)])
        features.append({"offsets": [None] * lead + offsets[a:b] + [None], "start_logits": s, "end_logits": e})
    return context, features


def _answer(context, features, max_answer_length, pick="best", normalise=False, cut="offsets"):
    """The reference answer, or one of the usual mistakes."""
    best = None
    for f in (features[:1] if pick == "first" else features):
        s, e = f["start_logits"], f["end_logits"]
        if normalise:
            s, e = s.log_softmax(-1), e.log_softmax(-1)
        span = best_span(s, e, f["offsets"], max_answer_length)
        if span is None or not (best is None or span[2] > best[0] or pick == "last"):
            continue
        i, j = span[0], span[1]
        o = f["offsets"]
        text = {"offsets": context[o[i][0]:o[j][1]], "end start": context[o[i][0]:o[j][0]],
                "tokens": context[i:j + 1]}[cut]
        best = (span[2], text)
    return best[1] if best else ""


@reports_stubs
def check_best_answer(best_answer) -> None:
    """Check `best_answer(context, features, max_answer_length=30) -> str`, one question's answer over its windows.

    features: one dict per window, with "offsets" (a (start, end) character span per token of the context, None for
    [CLS], the question and [SEP]), and "start_logits", "end_logits" ((T,) tensors). The answer is the legal span with
    the highest start_logits[i] + end_logits[j] over all windows (start <= end, both in the context, at most
    max_answer_length tokens), cut out of the context from the first character of its start token to the last of its
    end token; '' when no window has a legal span.
    """
    rng = random.Random(2)
    cases = []
    for k in range(200):
        n_question = rng.randint(1, 8)
        max_length = rng.randint(n_question + 8, n_question + 40)
        budget = max_length - n_question - 3
        context, features = _qa_example(rng, rng.randint(1, 4 * budget), n_question, max_length,
                                        rng.randint(0, budget - 1))
        cases.append((f"random question {k} ({len(features)} windows)", context, features, rng.choice([3, 5, 30])))
    context, features = _qa_example(random.Random(3), 12, 3, 12, 2)
    for f in features:
        f["offsets"] = [None] * len(f["offsets"])
    cases.append(("no window holds a context token", context, features, 30))
    for name, context, features, max_answer_length in cases:
        expected = _answer(context, features, max_answer_length)
        given = [{key: (v.clone() if isinstance(v, torch.Tensor) else list(v)) for key, v in f.items()}
                 for f in features]
        got = best_answer(context, given, max_answer_length=max_answer_length)
        if got == expected:
            continue
        if got is None:
            raise CheckFailed(f"case '{name}': you returned None; return the answer text, or '' when no window has a "
                              f"legal span.")
        if not isinstance(got, str):
            raise CheckFailed(f"case '{name}': return the answer as a string, got {type(got).__name__}.")
        wrong = {
            "first": "this is the best span of the first window only: every window proposes its best span, and the "
                     "best-scoring one over all windows wins",
            "last": "this is the span of the last window that has one: compare each window's best score with the "
                    "best so far, and keep the higher",
            "normalise": "the scores were normalised in each window (a softmax) before comparing: compare the raw "
                         "start_logits[i] + end_logits[j] across windows, as BERT's script does",
            "end start": "the answer stops at the first character of its end token: it runs to the last one, "
                         "offsets[end][1]",
            "tokens": "the answer is cut from the context with token positions: token positions index the window, "
                      "the offsets give the characters in the context",
            "30": "max_answer_length was not passed on to the span search",
        }
        for mistake, why in wrong.items():
            variant = (_answer(context, features, 30) if mistake == "30" else
                       _answer(context, features, max_answer_length, pick=mistake) if mistake in ("first", "last") else
                       _answer(context, features, max_answer_length, normalise=True) if mistake == "normalise" else
                       _answer(context, features, max_answer_length, cut=mistake))
            if variant == got and variant != expected:
                raise CheckFailed(f"case '{name}' (max_answer_length={max_answer_length}): your answer {got!r} is not "
                                  f"the best: {why}.")
        if expected == "":
            raise CheckFailed(f"case '{name}': no window has a legal span (no token is in the context), so the "
                              f"answer is '' (yours is {got!r}).")
        raise CheckFailed(f"case '{name}' (max_answer_length={max_answer_length}): your answer {got!r} is not the "
                          f"text of the best legal span over all windows.")
    passed("best_answer")
