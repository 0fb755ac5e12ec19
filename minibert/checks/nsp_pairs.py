"""Checker for lesson 05's exercise on next-sentence pairs.

`check_nsp_pairs(make_nsp_pairs)` runs the learner's `make_nsp_pairs(documents, max_length, cls_id, sep_id, rng)` on
a made-up corpus of 40 documents in which every token id is used once, so that each token of an example tells which
document, sentence and position it comes from. It checks each example's `[CLS] A [SEP] B [SEP]`, segment ids, length
and truncation, that an IsNext B is the sentence right after A and a NotNext B comes from another document, the
labels' convention (0 IsNext, 1 NotNext), and over 20 seeds the 50/50 coin and the spread of the NotNext sentences.
It raises `CheckFailed` with the first thing that is off, never with the code.
"""

from __future__ import annotations

import random

import torch

from minibert.checks import CheckFailed, passed, reports_stubs
from minibert.pretraining_data import google_truncated_lengths

IGNORE_INDEX = -100

# bert-base-uncased's layout: [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, ordinary tokens from 999 on
BERT_VOCAB_SIZE = 30522
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
BERT_SPECIAL = (PAD, UNK, CLS, SEP, MASK)
NAMES = {PAD: "[PAD]", UNK: "[UNK]", CLS: "[CLS]", SEP: "[SEP]", MASK: "[MASK]"}


# ------------------------------------------------------------------------------------------ next-sentence pairs

NSP_BUDGET_LENGTH = 40  # the checker's max_length: some pairs must be truncated


def _nsp_corpus(n_docs: int, seed: int) -> list[list[list[int]]]:
    """Documents of sentences of token ids in which every ordinary token id is used once (1000, 1001, ...), so that
    a token tells which document, sentence and position it comes from. Document 1 has a single sentence (it has no
    sentence A, but may give a NotNext B)."""
    rng = random.Random(seed)
    documents, next_id = [], 1000
    for d in range(n_docs):
        n_sentences = 1 if d == 1 else rng.randint(2, 8)
        document = []
        for _ in range(n_sentences):
            length = rng.choice([1, 2]) if rng.random() < 0.1 else rng.randint(3, 30)
            document.append(list(range(next_id, next_id + length)))
            next_id += length
        documents.append(document)
    return documents


def _token_places(documents) -> dict[int, tuple[int, int, int]]:
    """{token id: (document, sentence, position)} for a corpus whose token ids are all different."""
    return {t: (d, s, p) for d, doc in enumerate(documents) for s, sentence in enumerate(doc)
            for p, t in enumerate(sentence)}


def _as_ids(x, what: str) -> list[int]:
    if isinstance(x, torch.Tensor):
        x = x.tolist()
    if not isinstance(x, (list, tuple)):
        raise CheckFailed(f"{what} should be a list of token ids, got {type(x).__name__}.")
    try:
        return [int(t) for t in x]
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should hold token ids (ints), got {x[:5]!r}...") from None


def _nsp_examples(make_nsp_pairs, documents, max_length: int, seed: int) -> list[tuple[list[int], list[int], int]]:
    """Call the learner's function and check the types, and that `documents` was left as it was."""
    before = [[list(s) for s in doc] for doc in documents]
    result = make_nsp_pairs(documents, max_length, CLS, SEP, random.Random(seed))
    if result is None:
        raise CheckFailed("make_nsp_pairs returned None. Did you forget to return the list of examples?")
    if documents != before:
        raise CheckFailed("make_nsp_pairs changed `documents` (a sentence was cut or moved in place): copy a sentence "
                          "before you truncate it (list(sentence)), the corpus is used again for the next pairs.")
    if not isinstance(result, (list, tuple)):
        raise CheckFailed(f"make_nsp_pairs should return a list of examples, got {type(result).__name__}.")
    examples = []
    for k, example in enumerate(result):
        if not isinstance(example, (list, tuple)) or len(example) != 3:
            raise CheckFailed(f"example {k} should be a tuple (input_ids, token_type_ids, nsp_label), got "
                              f"{type(example).__name__}" + (f" of length {len(example)}" if isinstance(
                                  example, (list, tuple)) else "") + ".")
        input_ids = _as_ids(example[0], f"example {k}'s input_ids")
        token_type_ids = _as_ids(example[1], f"example {k}'s token_type_ids")
        label = example[2].item() if isinstance(example[2], torch.Tensor) else example[2]
        if label not in (0, 1) or isinstance(label, float):
            raise CheckFailed(f"example {k}'s nsp_label is {label!r}: use 0 for IsNext and 1 for NotNext.")
        examples.append((input_ids, token_type_ids, int(label)))
    return examples


def _segments(k: int, input_ids: list[int], token_type_ids: list[int], max_length: int) -> tuple[list, list]:
    """Check [CLS] A [SEP] B [SEP], the segment ids and the length of example k; return (A, B)."""
    where = f"example {k}"
    if not input_ids or input_ids[0] != CLS:
        raise CheckFailed(f"{where} does not start with [CLS] (cls_id): every example is [CLS] A [SEP] B [SEP].")
    if CLS in input_ids[1:]:
        raise CheckFailed(f"{where} has a [CLS] at position {input_ids.index(CLS, 1)}: [CLS] is only at position 0.")
    seps = [t for t, i in enumerate(input_ids) if i == SEP]
    if len(seps) != 2 or seps[-1] != len(input_ids) - 1:
        raise CheckFailed(f"{where} has {len(seps)} [SEP] token(s), at positions {seps}: one [SEP] after A and one "
                          f"at the very end, after B.")
    a, b = input_ids[1:seps[0]], input_ids[seps[0] + 1:-1]
    if not a or not b:
        raise CheckFailed(f"{where}: segment {'A' if not a else 'B'} is empty. Both A and B keep at least one token.")
    if len(input_ids) > max_length:
        raise CheckFailed(f"{where} has {len(input_ids)} tokens, more than max_length={max_length}: A and B share "
                          f"max_length - 3 tokens, and the longer one gives up tokens until they fit.")
    if len(token_type_ids) != len(input_ids):
        raise CheckFailed(f"{where} has {len(input_ids)} input ids but {len(token_type_ids)} token type ids: one "
                          f"segment id per token.")
    for t, g in enumerate(token_type_ids):
        e = 0 if t <= seps[0] else 1
        if g != e:
            what = ("[CLS]" if t == 0 else "the [SEP] that closes A" if t == seps[0] else
                    "the last [SEP], which closes B" if t == seps[1] else "a token of A" if e == 0 else "a token of B")
            raise CheckFailed(f"{where}: token {t}, {what}, has segment id {g}; it belongs to segment {e} "
                              f"(0: [CLS] A [SEP], 1: B [SEP]). The segment ids before it are right.")
    return a, b


def _sentence_of(k: int, part: str, tokens: list[int], where: dict) -> tuple[int, int]:
    """(document, sentence) of a segment, which must be the beginning of one sentence."""
    places = [where.get(t) for t in tokens]
    if None in places:
        raise CheckFailed(f"example {k}: segment {part} holds a token that is in no sentence of the corpus "
                          f"({tokens[places.index(None)]}): A and B are made of the corpus's sentences.")
    sentences = {(d, s) for d, s, _ in places}
    if len(sentences) > 1:
        raise CheckFailed(f"example {k}: segment {part} mixes tokens of {len(sentences)} sentences; here {part} is "
                          f"one sentence.")
    if [p for _, _, p in places] != list(range(len(tokens))):
        raise CheckFailed(f"example {k}: segment {part} is not the beginning of its sentence, in order: a sentence "
                          f"only loses tokens from its end, when the pair is too long.")
    return places[0][0], places[0][1]


def _nsp_fail_rate(share: float, n: int) -> str:
    return f"{100 * share:.1f}% of {n:,} pairs"


@reports_stubs
def check_nsp_pairs(make_nsp_pairs) -> None:
    """make_nsp_pairs(documents, max_length, cls_id, sep_id, rng) -> [(input_ids, token_type_ids, nsp_label), ...].

    One example per sentence A that has a next sentence in its document: IsNext (0), B is that next sentence;
    NotNext (1), B is a random sentence of a random other document; a fair coin drawn from `rng` decides. The pair
    is [CLS] A [SEP] B [SEP], segment 0 up to the first [SEP], 1 after it, at most max_length tokens (the longer of
    A and B loses its last token until they fit, B on a tie).
    """
    documents = _nsp_corpus(40, seed=0)
    where = _token_places(documents)
    with_next = {(d, s) for d, doc in enumerate(documents) for s in range(len(doc) - 1)}
    max_length = NSP_BUDGET_LENGTH

    first = [_nsp_examples(make_nsp_pairs, documents, max_length, seed) for seed in (1, 1, 2)]
    if first[0] != first[1]:
        raise CheckFailed("two calls with random.Random(1) gave different pairs: draw every random choice (the coin, "
                          "the other document, its sentence) from `rng` (rng.random(), rng.randrange(...)), so that "
                          "the same seed gives the same pairs.")
    labels = {label for _, _, label in first[0] + first[2]}
    if len(labels) == 1:
        kind = "IsNext" if labels == {0} else "NotNext" if labels == {1} else f"labelled {labels.pop()!r}"
        raise CheckFailed(f"every pair is {kind}, with two seeds: toss a fair coin for each A (rng.random() < 0.5).")
    if first[0] == first[2]:
        raise CheckFailed("random.Random(1) and random.Random(2) gave the same pairs: the coin and the NotNext "
                          "sentences must be drawn at random, from `rng`.")
    n_sentences = sum(len(doc) for doc in documents)
    stats = {"n": 0, "not_next": 0, "b_docs": set(), "b_first": 0, "b_last": 0}
    for seed in range(1, 21):
        examples = first[0] if seed == 1 else first[2] if seed == 2 else _nsp_examples(
            make_nsp_pairs, documents, max_length, seed)
        if len(examples) != len(with_next):
            hint = (" The last sentence of a document has no next sentence, so it is never A."
                    if len(examples) == n_sentences else "")
            raise CheckFailed(f"make_nsp_pairs made {len(examples)} examples from a corpus in which {len(with_next)} "
                              f"sentences have a next sentence in their document: make one example for each.{hint}")
        parsed = []
        for k, (input_ids, token_type_ids, label) in enumerate(examples):
            a, b = _segments(k, input_ids, token_type_ids, max_length)
            parsed.append((k, a, b, label, _sentence_of(k, "A", a, where), _sentence_of(k, "B", b, where)))
        swapped = sum(label == 0 and b_at[0] != a_at[0] or label == 1 and b_at == (a_at[0], a_at[1] + 1)
                      for _, _, _, label, a_at, b_at in parsed)
        if swapped == len(parsed):
            raise CheckFailed("the labels are the wrong way round: each B that follows its A is labelled 1 and each B "
                              "of another document 0. Use 0 for IsNext and 1 for NotNext (as transformers and "
                              "Google's BERT do).")
        seen_a = set()
        for k, a, b, label, (a_doc, a_sentence), (b_doc, b_sentence) in parsed:
            if (a_doc, a_sentence) not in with_next:
                raise CheckFailed(f"example {k}: A is the last sentence of its document, which has no next "
                                  f"sentence: only a sentence with a next one in its document is an A.")
            if (a_doc, a_sentence) in seen_a:
                raise CheckFailed(f"example {k}: its sentence A is already the A of an earlier example: one example "
                                  f"per sentence A.")
            seen_a.add((a_doc, a_sentence))
            if label == 0 and (b_doc, b_sentence) != (a_doc, a_sentence + 1):
                where_b = "another document" if b_doc != a_doc else f"sentence {b_sentence} of A's document"
                raise CheckFailed(f"example {k} is labelled 0 (IsNext), but its B is {where_b}, and A is sentence "
                                  f"{a_sentence} of document {a_doc}: an IsNext B is the sentence right after A.")
            if label == 1 and b_doc == a_doc:
                raise CheckFailed(f"example {k} is labelled 1 (NotNext), but its B comes from A's own document: a "
                                  f"NotNext B comes from another document (lesson 05, bug 2: a sentence of the same "
                                  f"document can be A's real next sentence, and shares its topic).")
            full_a, full_b = len(documents[a_doc][a_sentence]), len(documents[b_doc][b_sentence])
            expected = google_truncated_lengths(full_a, full_b, max_length - 3)
            if (len(a), len(b)) != expected:
                raise CheckFailed(
                    f"example {k}: A keeps {len(a)} of its {full_a} tokens and B {len(b)} of its {full_b}. "
                    f"The rule: while A and B together have more than max_length - 3 = {max_length - 3} tokens, the "
                    f"longer of the two (B on a tie) loses its last token; a pair that fits keeps every token.")
            stats["n"] += 1
            if label == 1:
                stats["not_next"] += 1
                stats["b_docs"].add(b_doc)
                stats["b_first"] += b_sentence == 0
                stats["b_last"] += b_sentence == len(documents[b_doc]) - 1 > 0
    n, not_next = stats["n"], stats["not_next"]
    share = not_next / n
    if share in (0.0, 1.0):
        kind = "IsNext" if share == 0.0 else "NotNext"
        raise CheckFailed(f"every one of {n:,} pairs is {kind}: toss a fair coin for each A (rng.random() < 0.5).")
    if abs(share - 0.5) > 0.04:
        raise CheckFailed(f"{_nsp_fail_rate(share, n)} are NotNext, expected 50%: a fair coin for each A decides, "
                          f"nothing else.")
    missing = sorted(set(range(len(documents))) - stats["b_docs"])
    if missing:
        raise CheckFailed(f"in {not_next:,} NotNext pairs, document {missing[0]} never gave B"
                          + (f" (nor {len(missing) - 1} other documents)" if len(missing) > 1 else "")
                          + ": draw B's document at random among all the documents except A's.")
    if stats["b_first"] == not_next:
        raise CheckFailed(f"in {not_next:,} NotNext pairs, B is always the first sentence of its document: draw a "
                          f"random sentence of the other document.")
    if not stats["b_last"]:
        raise CheckFailed(f"in {not_next:,} NotNext pairs, B is never the last sentence of a document of several "
                          f"sentences: any of its sentences can be B (look at the range of your random index).")

    # two documents, one of a single sentence: the other document is the only choice
    tiny = [[[5000, 5001], [5002, 5003, 5004], [5005]], [[5006, 5007, 5008]]]
    where = _token_places(tiny)
    for seed in range(10):
        for k, (input_ids, token_type_ids, label) in enumerate(_nsp_examples(make_nsp_pairs, tiny, 64, seed)):
            a, b = _segments(k, input_ids, token_type_ids, 64)
            if label == 1 and _sentence_of(k, "B", b, where)[0] != 1:
                raise CheckFailed("with two documents, a NotNext B of document 0 must come from document 1, the only "
                                  "other one.")
    passed("make_nsp_pairs")
