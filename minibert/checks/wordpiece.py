"""Checkers for lesson 01's exercise: WordPiece's pair score and the greedy longest-match encoder of one word.

Each checker runs the learner's function on many inputs, compares with `minibert.tokenizer`, and raises
`CheckFailed` at the first input that differs, naming the input and the first differing piece (never the whole
expected answer). A stub that still raises NotImplementedError fails with `NotWrittenYet`, a one-line message.
"""

from __future__ import annotations

import math
import random

from minibert import wordpiece as reference
from minibert.checks import CheckFailed, compare_sequences, passed, reports_stubs
from minibert.tokenizer import WordPieceTokenizer

# A toy vocab where greedy longest-match has choices to make: "unaffable" is una ##ff ##able (longest first), not
# un ##aff ##able, and "unx" is [UNK] although "un" matches.
TOY_VOCAB = {token: i for i, token in enumerate(
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "u", "un", "una", "hug", "hugs", "h", "##a", "##b",
     "##f", "##ff", "##aff", "##able", "##ab", "##le", "##l", "##e", "##s", "##u", "##g", "##gin", "##ging", "##n"])}
TOY_WORDS = ["unaffable", "una", "un", "hug", "hugs", "hugging", "huggin", "ab", "ba", "a", "aaa", "b", "unable",
             "hubbub", "xyz", "unx", "hugx", "x", "u", "uu", "aable", "a" * 100, "a" * 101, "b" + "a" * 100]


def _number(name: str, value) -> float:
    if value is None:
        raise CheckFailed(f"{name}: your function returned None. Did you forget a `return`?")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"{name}: expected a number, got {type(value).__name__}.") from None


@reports_stubs
def check_pair_score(pair_score) -> None:
    """pair_score(freq_ab, freq_a, freq_b) must be freq_ab / (freq_a * freq_b) on several counts."""
    cases = [(1, 1, 1), (2, 4, 6), (5, 10, 5), (3, 7, 11), (120, 400, 300), (1, 1000, 2000), (7, 7, 9)]
    for ab, a, b in cases:
        name = f"pair_score(freq_ab={ab}, freq_a={a}, freq_b={b})"
        got = _number(name, pair_score(ab, a, b))
        expected = reference.pair_score(ab, a, b)
        if not math.isclose(got, expected, rel_tol=1e-9):
            hint = ""
            if math.isclose(got * expected, 1.0, rel_tol=1e-9):
                hint = " It looks upside down: the count of the pair goes on top."
            elif math.isclose(got, ab / (a + b), rel_tol=1e-9):
                hint = " Divide by the product of the two counts, not by their sum."
            elif math.isclose(got, ab, rel_tol=1e-9):
                hint = " That is the count of the pair alone; divide it by the counts of its two pieces."
            raise CheckFailed(f"{name} gives {got:.6g}, which is off by {abs(got - expected):.3g}.{hint}")
    passed("pair_score")


def _words_from_vocab(vocab: dict, n: int, seed: int = 0) -> list[str]:
    """Words made by gluing 1 to 3 random pieces of a real vocab: greedy matching must find its own split."""
    rng = random.Random(seed)
    pieces = sorted(t.removeprefix("##") for t in vocab if t.removeprefix("##").isalpha())
    words = ["tokenization", "unaffable", "playing", "naive", "hugging", "transformers", "bert", "wordpiece",
             "pneumonoultramicroscopicsilicovolcanoconiosis", "x", "a", "qqqq", "über", "straße", "z" * 101]
    words += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 3))) for _ in range(n)]
    return words


def _compare_word(encode_word, word: str, vocab: dict) -> None:
    name = f"encode_word({word if len(word) <= 30 else word[:12] + '...(' + str(len(word)) + ' characters)'!r})"
    got = encode_word(word, vocab)
    if isinstance(got, str):
        raise CheckFailed(f"{name}: return a list of pieces (list of str), not a single str.")
    expected = reference.greedy_longest_match(word, vocab)
    try:
        compare_sequences(name, got, expected)
    except CheckFailed as e:
        got = list(got)
        hints = []
        if any(isinstance(p, str) and not p.startswith("##") and p != "[UNK]" for p in got[1:]):
            hints.append("Pieces after the first carry the '##' prefix when you look them up.")
        if "[UNK]" in got and len(got) > 1:
            hints.append("When one part of a word matches nothing, the whole word becomes a single '[UNK]'.")
        if len(word) > 100:
            hints.append("A word longer than max_chars characters is '[UNK]' without looking at the vocab.")
        raise CheckFailed(" ".join([str(e)] + hints)) from None


@reports_stubs
def check_encode_word(encode_word, n_random_words: int = 300) -> None:
    """encode_word(word, vocab) must split words exactly as BERT's greedy longest-match-first WordPiece does."""
    for word in TOY_WORDS:
        _compare_word(encode_word, word, TOY_VOCAB)
    try:
        from minibert.data import vocab_file

        vocab = WordPieceTokenizer.from_vocab_file(vocab_file("bert-base-uncased")).vocab
    except Exception as e:  # no data folder and no internet: the toy vocab was checked, say what was skipped
        print(f"(skipped the check with the real bert-base-uncased vocab: {type(e).__name__})")
        passed("encode_word on the toy vocab")
        return
    for word in _words_from_vocab(vocab, n_random_words):
        _compare_word(encode_word, word, vocab)
    passed("encode_word")
