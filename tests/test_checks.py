"""What every checker of `minibert.checks` does with an exercise's stub: one line naming the function, and a failure.

(Each checker's comparisons and hints are tested with its lesson's module: test_attention.py, test_model.py...)
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn as nn

from minibert.checks import CheckFailed, NotWrittenYet, time_limit
from minibert.checks.attention import check_merge_heads, check_scaled_dot_product_attention, check_split_heads
from minibert.checks.classification import check_classification_head, check_probe
from minibert.checks.embeddings import check_embeddings, check_sinusoidal_position_encoding
from minibert.checks.encoder import check_encoder_block
from minibert.checks.ner import check_align_labels, check_entity_scores, check_read_entities
from minibert.checks.nsp_pairs import check_nsp_pairs
from minibert.checks.pretraining import check_pretraining_loss, check_training_step
from minibert.checks.pretraining_data import check_masking
from minibert.checks.question_answering import check_best_answer, check_best_span, check_context_windows
from minibert.checks.sentence_pairs import check_pair_encoding
from minibert.checks.start_here import check_softmax
from minibert.checks.wordpiece import check_encode_word, check_pair_score
from minibert.heads import BertForSequenceClassification
from minibert.model import EncoderLayer

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_CHECKERS = [check_softmax, check_pair_score, check_encode_word, check_sinusoidal_position_encoding,
                     check_embeddings, check_scaled_dot_product_attention, check_split_heads, check_merge_heads,
                     check_encoder_block, check_masking, check_pretraining_loss, check_pair_encoding,
                     check_align_labels, check_best_span, check_nsp_pairs, check_training_step,
                     check_read_entities, check_entity_scores, check_context_windows, check_best_answer,
                     check_probe]
CLASS_CHECKERS = [check_encoder_block, check_classification_head]


def _load_make_exercises():
    spec = importlib.util.spec_from_file_location("make_exercises", ROOT / "scripts" / "make_exercises.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_one_line_naming(error: NotWrittenYet, name: str) -> None:
    assert isinstance(error, CheckFailed) and isinstance(error, NotImplementedError)  # a failure, of a stub
    assert str(error).startswith(f"{name} is not written yet:"), str(error)
    assert "\n" not in str(error)
    rendered = error._render_traceback_()  # what Jupyter shows instead of a traceback
    assert len(rendered) == 1 and name in rendered[0] and "\n" not in rendered[0]
    assert error.__cause__ is None and error.__suppress_context__  # no chained traceback either


@pytest.mark.parametrize("check", FUNCTION_CHECKERS, ids=lambda f: f.__name__)
def test_a_function_that_is_still_a_stub_gets_one_line_naming_it(check, capsys):
    def my_function(*args, **kwargs):
        raise NotImplementedError("write my_function here, then run this cell and the checker below")

    with pytest.raises(NotWrittenYet) as failed:
        check(my_function)
    _assert_one_line_naming(failed.value, "my_function")
    assert "✓" not in capsys.readouterr().out


@pytest.mark.parametrize("check", CLASS_CHECKERS, ids=lambda f: f.__name__)
def test_a_class_whose_init_is_still_a_stub_gets_one_line_naming_it(check, capsys):
    class MyModel(nn.Module):
        def __init__(self, config, *args):
            super().__init__()
            raise NotImplementedError()  # nbgrader's own stub, without a message, is recognised too

    with pytest.raises(NotWrittenYet) as failed:
        check(MyModel)
    _assert_one_line_naming(failed.value, "MyModel.__init__")
    assert "✓" not in capsys.readouterr().out


@pytest.mark.parametrize("check, parts", [(check_encoder_block, EncoderLayer),
                                          (check_classification_head, BertForSequenceClassification)],
                         ids=["check_encoder_block", "check_classification_head"])
def test_a_class_whose_forward_is_still_a_stub_gets_one_line_naming_it(check, parts, capsys):
    class MyModel(parts):  # __init__ written (the package's), forward not yet
        def forward(self, *args, **kwargs):
            raise NotImplementedError("write MyModel.forward here, then run this cell and the checker below")

    with pytest.raises(NotWrittenYet) as failed:
        check(MyModel)
    _assert_one_line_naming(failed.value, "MyModel.forward")
    assert "✓" not in capsys.readouterr().out


def test_a_not_implemented_error_from_elsewhere_keeps_its_traceback():
    """Only the learner's own function raising NotImplementedError is a stub; from code it calls, it is a real error."""
    def helper(x, dim):
        raise NotImplementedError("this operation is not implemented for this dtype")

    def softmax(x, dim=-1):
        return helper(x, dim)

    with pytest.raises(NotImplementedError, match="not implemented for this dtype") as failed:
        check_softmax(softmax)
    assert not isinstance(failed.value, NotWrittenYet)


def test_the_generated_stub_of_an_exercise_fails_its_checker_in_one_line():
    make_exercises = _load_make_exercises()
    text = make_exercises.exercise_from_solution(ROOT / "solutions" / "03_attention.ipynb")
    cells = [c.source for c in nbformat.reads(text, as_version=4).cells if c.cell_type == "code"]
    namespace: dict = {}
    exec(next(c for c in cells if c.startswith("import math")), namespace)  # the exercise's imports
    exec(next(c for c in cells if c.startswith("def split_heads(")), namespace)  # the stub, as generated
    with pytest.raises(NotImplementedError, match="write split_heads here"):
        namespace["split_heads"](None, 2)  # called outside a checker, the stub says what to do
    with pytest.raises(NotWrittenYet) as failed:
        check_split_heads(namespace["split_heads"])
    _assert_one_line_naming(failed.value, "split_heads")


# ------------------------------------------------------------------------------------------ what the new checkers say
# Each exercise about an idea (issue 15) has a checker that passes the solution, and on a wrong answer names the first
# mismatch and the usual mistake behind it, without printing the answer.


def _nsp_pairs(documents, max_length, cls_id, sep_id, rng, same_document=False, swap=False, truncate="back",
               every_sentence=False, p_not_next=0.5, first_sentence=False, segment_shift=0):
    """The exercise's make_nsp_pairs, with one of the usual mistakes switched on."""
    examples = []
    for d, document in enumerate(documents):
        for i in range(len(document) - (0 if every_sentence else 1)):
            a = list(document[i])
            if rng.random() < p_not_next or i == len(document) - 1:
                other = d if same_document else rng.randrange(len(documents) - 1)
                other += other >= d and not same_document
                b = list(documents[other][0] if first_sentence else rng.choice(documents[other]))
                label = 0 if swap else 1
            else:
                b, label = list(document[i + 1]), 1 if swap else 0
            while truncate and len(a) + len(b) > max_length - 3:
                longer = a if len(a) > len(b) else b
                longer.pop(0 if truncate == "front" else -1)
            examples.append(([cls_id, *a, sep_id, *b, sep_id],
                             [0] * (len(a) + 2 - segment_shift) + [1] * (len(b) + 1 + segment_shift), label))
    return examples


def test_check_nsp_pairs_passes_the_solution(capsys):
    check_nsp_pairs(_nsp_pairs)
    assert "✓ make_nsp_pairs looks right" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, said", [
    (dict(same_document=True), "B comes from A's own document"),
    (dict(swap=True), "labels are the wrong way round"),
    (dict(truncate=None), "more than max_length=40"),
    (dict(truncate="front"), "not the beginning of its sentence"),
    (dict(every_sentence=True), "The last sentence of a document has no next sentence"),
    (dict(p_not_next=0.4), "are NotNext, expected 50%"),
    (dict(p_not_next=0.0), "every pair is IsNext"),
    (dict(first_sentence=True), "B is always the first sentence of its document"),
    (dict(segment_shift=1), "the [SEP] that closes A, has segment id 1"),
], ids=lambda x: ",".join(x) if isinstance(x, dict) else None)
def test_check_nsp_pairs_names_the_usual_mistakes(mistake, said):
    with pytest.raises(CheckFailed) as failed:
        check_nsp_pairs(lambda *args: _nsp_pairs(*args, **mistake))
    assert said in str(failed.value), str(failed.value)
    assert not isinstance(failed.value, NotWrittenYet)


def test_check_nsp_pairs_wants_every_random_choice_from_rng():
    with pytest.raises(CheckFailed, match="draw every random choice"):
        check_nsp_pairs(lambda documents, max_length, cls_id, sep_id, rng: _nsp_pairs(
            documents, max_length, cls_id, sep_id, random.Random()))


def _training_step(order: str):
    """A training step doing its operations in `order`: F forward, B backward, C clip to max_grad_norm, K clip to 1,
    S optimizer step, R scheduler step, Z zero_grad."""
    def training_step(model, batch, optimizer, scheduler, max_grad_norm=1.0):
        for op in order.split():
            if op == "F":
                loss = model(**batch).loss
            elif op == "B":
                loss.backward()
            elif op in "CK":
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm if op == "C" else 1.0)
            elif op == "S":
                optimizer.step()
            elif op == "R":
                scheduler.step()
            elif op == "Z":
                optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return training_step


@pytest.mark.parametrize("order", ["F B C S R Z", "Z F B C S R Z", "F B C S Z R"])
def test_check_training_step_passes_the_right_orders(order, capsys):
    check_training_step(_training_step(order))
    assert "✓ training_step looks right" in capsys.readouterr().out


@pytest.mark.parametrize("order, said", [
    ("F B S C R Z", "optimizer.step() used unclipped gradients"),  # clipping after the step
    ("F B S R Z", "optimizer.step() used unclipped gradients"),  # no clipping
    ("F B K S R Z", "clipped to max_grad_norm=0.05 it would be"),  # clipped to another norm
    ("F B Z C S R", "zero_grad ran after loss.backward() and before optimizer.step()"),
    ("F B C R S Z", "scheduler.step() ran before optimizer.step()"),
    ("Z F B C S R", "zero_grad ran before backward, at the start of the step"),
    ("F B C S R", "the next backward() would add to them"),  # never zeroed: gradients accumulate
    ("F S B C R Z", "optimizer.step() ran before loss.backward()"),
    ("F B C S Z", "scheduler.step() was not called"),
    ("F B C S R R Z", "scheduler.step() ran 2 times"),
    ("F F B C S R Z", "the model ran 2 times"),
])
def test_check_training_step_names_the_operation_out_of_place(order, said):
    with pytest.raises(CheckFailed) as failed:
        check_training_step(_training_step(order))
    assert said in str(failed.value), str(failed.value)


def test_check_training_step_compares_weights_and_learning_rate_with_the_reference():
    def lr_too_high(model, batch, optimizer, scheduler, max_grad_norm=1.0):
        for group in optimizer.param_groups:
            group["lr"] *= 1.5  # the right order, the wrong update
        return _training_step("F B C S R Z")(model, batch, optimizer, scheduler, max_grad_norm)

    with pytest.raises(CheckFailed, match="after your step, .* differs from the reference step's"):
        check_training_step(lr_too_high)

    def returns_the_tensor(model, batch, optimizer, scheduler, max_grad_norm=1.0):
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        return loss

    with pytest.raises(CheckFailed, match="return loss.item"):
        check_training_step(returns_the_tensor)


def _read_entities(tags, strict=False, b_continues=False, end_exclusive=False):
    """The exercise's read_entities, with one of the usual mistakes switched on."""
    entities, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, this = tag.partition("-")
        continues = (prefix == "I" or b_continues and prefix == "B") and this == kind
        if start is not None and not continues:
            entities.append((kind, start, i - 1 + end_exclusive))
            start = None
        if prefix == "B" and start is None or prefix == "B" and not b_continues or prefix == "I" and start is None \
                and not strict:
            start, kind = i, this
    return entities


def _entity_scores(gold, predicted, per_sentence=False, untyped=False, swapped=False, read=_read_entities):
    if per_sentence:
        rows = [_entity_scores([g], [p]) for g, p in zip(gold, predicted) if read(g) or read(p)]
        return tuple(sum(r[k] for r in rows) / max(1, len(rows)) for k in range(3))
    key = (lambda n, e: (n, e[1], e[2])) if untyped else (lambda n, e: (n, *e))
    g = {key(n, e) for n, tags in enumerate(gold) for e in read(tags)}
    f = {key(n, e) for n, tags in enumerate(predicted) for e in read(tags)}
    p, r = (len(g & f) / len(f) if f else 0.0), (len(g & f) / len(g) if g else 0.0)
    return (r, p, 2 * p * r / (p + r) if p + r else 0.0) if swapped else (p, r, 2 * p * r / (p + r) if p + r else 0.0)


def test_the_entity_checkers_pass_the_solution(capsys):
    check_read_entities(_read_entities)
    check_entity_scores(_entity_scores)
    out = capsys.readouterr().out
    assert "✓ read_entities looks right" in out and "✓ entity_scores looks right" in out


@pytest.mark.parametrize("mistake, said", [
    (dict(strict=True), "an I- tag with nothing of its type to continue"),
    (dict(b_continues=True), "a B- tag always starts a new entity"),
    (dict(end_exclusive=True), "index of its last word itself (inclusive)"),
], ids=["I- after O ignored", "B- continues", "end exclusive"])
def test_check_read_entities_names_the_usual_mistakes(mistake, said):
    with pytest.raises(CheckFailed) as failed:
        check_read_entities(lambda tags: _read_entities(tags, **mistake))
    assert said in str(failed.value), str(failed.value)


@pytest.mark.parametrize("mistake, said", [
    (dict(per_sentence=True), "averaged over sentences"),
    (dict(untyped=True), "the wrong type counts as correct"),
    (dict(swapped=True), "precision and recall are swapped"),
], ids=["per sentence", "type ignored", "swapped"])
def test_check_entity_scores_names_the_usual_mistakes(mistake, said):
    with pytest.raises(CheckFailed) as failed:
        check_entity_scores(lambda gold, predicted: _entity_scores(gold, predicted, **mistake))
    assert said in str(failed.value), str(failed.value)


def test_check_entity_scores_wants_zero_not_a_division_by_zero():
    def unguarded(gold, predicted):
        g = {(n, *e) for n, tags in enumerate(gold) for e in _read_entities(tags)}
        f = {(n, *e) for n, tags in enumerate(predicted) for e in _read_entities(tags)}
        p, r = len(g & f) / len(f), len(g & f) / len(g)
        return p, r, 2 * p * r / (p + r)

    with pytest.raises(CheckFailed, match="divided by zero"):
        check_entity_scores(unguarded)


def _context_windows(n_context, n_question, max_length, stride, budget_gap=3, step=None):
    """The exercise's context_windows; `budget_gap` and `step` give the usual mistakes."""
    budget = max_length - n_question - budget_gap
    windows, start = [], 0
    while True:
        end = min(start + budget, n_context)
        windows.append((start, end))
        if end == n_context:
            return windows
        start += budget - stride if step is None else step(budget, stride)


def _best_answer(context, features, max_answer_length=30, first_only=False, token_positions=False):
    from minibert.finetuning_data import best_span

    best_score, answer = None, ""
    for f in features[:1] if first_only else features:
        span = best_span(f["start_logits"], f["end_logits"], f["offsets"], max_answer_length)
        if span is not None and (best_score is None or span[2] > best_score):
            start, end, best_score = span
            answer = context[start:end + 1] if token_positions else context[f["offsets"][start][0]:f["offsets"][end][1]]
    return answer


def test_the_question_answering_checkers_pass_the_solution(capsys):
    check_context_windows(_context_windows)
    check_best_answer(_best_answer)
    out = capsys.readouterr().out
    assert "✓ context_windows looks right" in out and "✓ best_answer looks right" in out


@pytest.mark.parametrize("mistake, said", [
    (dict(budget_gap=0), "more than the 115 that max_length leaves next to [CLS]"),
    (dict(step=lambda budget, stride: stride or budget), "not the step between window starts"),
    (dict(step=lambda budget, stride: budget), "neighbouring windows share stride"),
], ids=["special tokens forgotten", "stride as the step", "no overlap"])
def test_check_context_windows_names_the_usual_mistakes(mistake, said):
    with pytest.raises(CheckFailed) as failed:
        check_context_windows(lambda *args: _context_windows(*args, **mistake))
    assert said in str(failed.value), str(failed.value)


def test_check_context_windows_stops_a_loop_that_never_ends(monkeypatch):
    import minibert.checks.question_answering as qa_checks

    real = qa_checks.time_limit
    monkeypatch.setattr(qa_checks, "time_limit", lambda seconds, message: real(0.5, message))

    def never_stops(n_context, n_question, max_length, stride):
        budget, windows, start = max_length - n_question - 3, [], 0
        while True:
            windows.append((start, start + budget))
            if start + budget == n_context:  # never true when the windows overshoot the end
                return windows
            start += budget - stride

    with pytest.raises(CheckFailed, match="Does its loop stop"):
        check_context_windows(never_stops)


def test_time_limit_leaves_a_quick_body_alone_and_stops_a_slow_one():
    with time_limit(5, "too slow"):
        total = sum(range(1000))
    assert total == 499500
    with pytest.raises(CheckFailed, match="too slow"):
        with time_limit(0.2, "too slow"):
            while True:
                pass


@pytest.mark.parametrize("mistake, said", [
    (dict(first_only=True), "the best span of the first window only"),
    (dict(token_positions=True), "cut from the context with token positions"),
], ids=["first window", "token positions"])
def test_check_best_answer_names_the_usual_mistakes(mistake, said):
    with pytest.raises(CheckFailed) as failed:
        check_best_answer(lambda *args, **kwargs: _best_answer(*args, **kwargs, **mistake))
    assert said in str(failed.value), str(failed.value)


def _train_probe(encoder, head, train, held_out, mistake=None):
    """The exercise's train_probe; `mistake` switches one of the usual ones on."""
    import torch.nn.functional as F

    if mistake != "no eval":
        encoder.eval()

    def vectors(dataset):
        batch = dataset.collate([dataset[j] for j in range(len(dataset))])
        with torch.set_grad_enabled(mistake in ("gradients into the encoder", "encoder trains")):
            out = encoder(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        return out.last_hidden_state[:, 0], batch["labels"]

    x, y = vectors(train)
    x_held, y_held = vectors(held_out)
    params = [*head.parameters(), *encoder.parameters()] if mistake == "encoder trains" else head.parameters()
    optimizer = torch.optim.Adam(params, lr=1e-2)
    for _ in range(1 if mistake in ("gradients into the encoder", "encoder trains") else 300):
        loss = F.cross_entropy(head(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (head(x if mistake == "training accuracy" else x_held).argmax(-1)
                    == (y if mistake == "training accuracy" else y_held)).float().mean().item()
    return accuracy, (y_held == torch.bincount(y).argmax()).float().mean().item()


def test_check_probe_passes_the_solution(capsys):
    check_probe(_train_probe)
    assert "✓ train_probe looks right" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, said", [
    ("encoder trains", "the encoder's weights changed"),
    ("gradients into the encoder", "the backward pass went through the frozen encoder"),
    ("no eval", "the encoder is still in training mode"),
    ("training accuracy", "the head's accuracy on the training sentences"),
])
def test_check_probe_sees_an_encoder_that_is_not_frozen_and_a_dishonest_score(mistake, said, monkeypatch):
    import minibert.checks.classification as classification_checks

    monkeypatch.setattr(classification_checks, "PROBE_SIZES", (400, 100))  # each of these fails before any score
    with pytest.raises(CheckFailed) as failed:
        check_probe(lambda *args: _train_probe(*args, mistake=mistake))
    assert said in str(failed.value), str(failed.value)
