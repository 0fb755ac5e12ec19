"""Checkers for lesson 05's exercises, masking: BERT's 15% of the tokens chosen, then 80% [MASK] / 10% random / 10%
kept. (The next-sentence pairs' checker is in `minibert.checks.nsp_pairs`.)

`check_masking(mask_tokens)` runs the learner's `mask_tokens(input_ids, special_ids, mask_id, vocab_size, generator)`
on about 230,000 tokens of made-up `[CLS] A [SEP] B [SEP] [PAD]...` sequences with BERT's special ids, and on a tiny
vocabulary where a random replacement that may be a special token shows up at once. It checks what the statistics
must be, not one exact draw, so both ways of choosing the 15% pass: a coin per token (15% in expectation, as Hugging
Face's collator does) or exactly round(15%) of each sequence's candidates (as Google's script and `minibert` do).
It raises `CheckFailed` with the first thing that is off, never with the code.
"""

from __future__ import annotations

import torch

from minibert.checks import CheckFailed, passed, reports_stubs

IGNORE_INDEX = -100

# bert-base-uncased's layout: [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, ordinary tokens from 999 on
BERT_VOCAB_SIZE = 30522
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
BERT_SPECIAL = (PAD, UNK, CLS, SEP, MASK)
NAMES = {PAD: "[PAD]", UNK: "[UNK]", CLS: "[CLS]", SEP: "[SEP]", MASK: "[MASK]"}


def _sequences(n: int, length: int, seed: int) -> list[torch.Tensor]:
    """[CLS] A [SEP] B [SEP] then [PAD]s up to `length`, ordinary ids in A and B and now and then an [UNK]."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        n_real = int(torch.randint(length // 2, length + 1, (1,), generator=g))
        n_a = int(torch.randint(1, n_real - 4, (1,), generator=g))
        n_b = n_real - 3 - n_a
        words = torch.randint(999, BERT_VOCAB_SIZE, (n_a + n_b,), generator=g)
        words[torch.rand(n_a + n_b, generator=g) < 0.01] = UNK
        seq = torch.cat([torch.tensor([CLS]), words[:n_a], torch.tensor([SEP]), words[n_a:], torch.tensor([SEP]),
                         torch.full((length - n_real,), PAD)])
        out.append(seq.long())
    return out


def _call(mask_tokens, input_ids, special_ids, mask_id, vocab_size, generator, what="") -> tuple:
    before = input_ids.clone()
    result = mask_tokens(input_ids, special_ids, mask_id, vocab_size, generator)
    if result is None:
        raise CheckFailed("mask_tokens returned None. Did you forget `return masked_ids, labels`?")
    if not isinstance(result, tuple) or len(result) != 2:
        raise CheckFailed(f"mask_tokens must return a tuple (masked_ids, labels), got {type(result).__name__}"
                          + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "") + ".")
    if not torch.equal(input_ids, before):
        raise CheckFailed("mask_tokens changed input_ids in place: work on a copy (torch.where or .clone()), the "
                          "caller still needs the original ids.")
    for name, t in zip(("masked_ids", "labels"), result):
        if not isinstance(t, torch.Tensor):
            raise CheckFailed(f"{name} must be a torch.Tensor, got {type(t).__name__}.")
        if tuple(t.shape) != tuple(input_ids.shape):
            raise CheckFailed(f"{name} has shape {tuple(t.shape)}{what}, expected the shape of input_ids, "
                              f"{tuple(input_ids.shape)}.")
        if t.dtype != input_ids.dtype:
            raise CheckFailed(f"{name} has dtype {t.dtype}, expected the dtype of input_ids, {input_ids.dtype} "
                              f"(embedding lookups and cross_entropy need integer ids).")
    return result


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


@reports_stubs
def check_masking(mask_tokens) -> None:
    """mask_tokens(input_ids (T,), special_ids, mask_id, vocab_size, generator) -> (masked_ids (T,), labels (T,))."""
    special_ids = torch.tensor(BERT_SPECIAL)
    sequences = _sequences(800, 384, seed=0)

    # one small call first: types, shapes, dtypes, no change in place, and every random number from `generator`
    first = [_call(mask_tokens, sequences[0], special_ids, MASK, BERT_VOCAB_SIZE,
                   torch.Generator().manual_seed(seed)) for seed in (1, 1, 2)]
    if not all(torch.equal(a, b) for a, b in zip(first[0], first[1])):
        raise CheckFailed("two calls with generators seeded the same gave different results: draw every random "
                          "number from `generator` (torch.rand(..., generator=generator), torch.randint(..., "
                          "generator=generator)) so that the same seed gives the same masks.")
    if all(torch.equal(a, b) for a, b in zip(first[0], first[2])):
        raise CheckFailed("generators seeded 1 and 2 gave the same masks: the choice must be random, drawn from "
                          "`generator`.")

    # statistics over about 230,000 tokens with BERT's special ids
    generator = torch.Generator().manual_seed(0)
    outputs = [_call(mask_tokens, seq, special_ids, MASK, BERT_VOCAB_SIZE, generator) for seq in sequences]
    ids = torch.cat(sequences)
    masked = torch.cat([o[0] for o in outputs])
    labels = torch.cat([o[1] for o in outputs])
    special = torch.isin(ids, special_ids)
    chosen = labels != IGNORE_INDEX

    if chosen.float().mean().item() > 0.5:
        raise CheckFailed(f"{_percent(chosen.float().mean().item())} of the labels are not -100: labels are -100 "
                          f"at every position that is not selected for prediction (so the loss skips it).")
    not_chosen_changed = (~chosen & (masked != ids)).sum().item()
    if not_chosen_changed:
        raise CheckFailed(f"{not_chosen_changed} tokens were changed although their label is -100 (not to be "
                          f"predicted): only the selected tokens are replaced, and each selected token keeps its "
                          f"original id in labels.")
    for sid in BERT_SPECIAL:
        n = (chosen & (ids == sid)).sum().item()
        if n:
            raise CheckFailed(f"{NAMES[sid]} was selected for prediction {n} times: special tokens ([PAD], [UNK], "
                              f"[CLS], [SEP], [MASK]) are never selected, so their label stays -100.")
    wrong_labels = (chosen & (labels != ids)).sum().item()
    if wrong_labels:
        raise CheckFailed(f"{wrong_labels} selected positions have a label that is not the original token id: "
                          f"labels hold what the model must recover (the token before masking), -100 elsewhere.")

    rate = chosen.sum().item() / (~special).sum().item()
    if abs(rate - 0.15) > 0.003:
        raise CheckFailed(f"{_percent(rate)} of the (non-special) tokens were selected, expected 15%.")
    n = chosen.sum().item()
    parts = {"replaced by [MASK]": (chosen & (masked == MASK)).sum().item() / n,
             "replaced by a random token": (chosen & (masked != MASK) & (masked != ids)).sum().item() / n,
             "left unchanged": (chosen & (masked == ids)).sum().item() / n}
    for (what, share), expected in zip(parts.items(), (0.8, 0.1, 0.1)):
        if abs(share - expected) > 0.01:
            raise CheckFailed(f"{_percent(share)} of the selected tokens were {what}, expected "
                              f"{_percent(expected)}. (The split is 80% [MASK], 10% random, 10% unchanged; all "
                              f"shares now: " + ", ".join(f"{k} {_percent(v)}" for k, v in parts.items()) + ")")

    # a tiny vocabulary: 40 ids, 5 of them special, so a replacement drawn from all 40 hits a special one time in 8
    tiny_special = torch.tensor([0, 10, 11, 12, 13])
    ordinary = torch.tensor([i for i in range(40) if i not in tiny_special.tolist()])
    g = torch.Generator().manual_seed(1)
    replaced = []
    for _ in range(300):
        seq = ordinary[torch.randint(len(ordinary), (256,), generator=g)]
        m, lab = _call(mask_tokens, seq, tiny_special, 13, 40, g, " (with a 40-token vocabulary)")
        replaced.append(m[(lab != IGNORE_INDEX) & (m != 13) & (m != seq)])
    replaced = torch.cat(replaced)
    bad = torch.isin(replaced, tiny_special)
    if bad.any():
        raise CheckFailed(f"with a 40-token vocabulary whose special ids are {tiny_special.tolist()}, "
                          f"{bad.sum().item()} of {len(replaced)} random replacements were special tokens: draw the "
                          f"random token from the ordinary (non-special) ids only.")
    if (replaced >= 40).any() or (replaced < 0).any():
        raise CheckFailed("a random replacement fell outside the vocabulary (ids 0 to vocab_size - 1).")
    if replaced.unique().numel() < len(ordinary) // 2:
        raise CheckFailed(f"the random replacements used only {replaced.unique().numel()} different ids of the "
                          f"{len(ordinary)} ordinary ones: draw them uniformly from the whole non-special vocabulary.")
    passed("mask_tokens")
