"""Checkers for the exercises of lesson 08 (sentence pairs): [CLS] A [SEP] B [SEP] with its segment ids.

Each checker runs the learner's code on inputs it makes, compares with minibert's own, and raises `CheckFailed` at the
first difference, with a hint for the usual mistakes, without printing the expected answer.
"""

from __future__ import annotations

from minibert.checks import CheckFailed, passed, reports_stubs

# ------------------------------------------------------------------------------------------ sentence-pair encoding

_PAIR_LONG_A = ("The committee said on Tuesday that the unexpected increase in quarterly earnings was driven mostly "
                "by stronger international sales of its networking equipment.")
_PAIR_LONG_B = ("Analysts had expected weaker results because the company warned in March that demand for networking "
                "equipment was slowing in several important markets.")
_PAIR_SHORT_A = "The cat sat on the mat."
_PAIR_SHORT_B = "A cat was sitting on the mat."

# (name, sentence A, sentence B, max_length)
_PAIR_CASES = [
    ("a short pair that fits", _PAIR_SHORT_A, _PAIR_SHORT_B, 64),
    ("a long A and a short B", _PAIR_LONG_A, _PAIR_SHORT_B, 24),
    ("a short A and a long B", _PAIR_SHORT_A, _PAIR_LONG_B, 24),
    ("both long, an even budget", _PAIR_LONG_A, _PAIR_LONG_B, 21),
    ("both long, A the shorter, an odd budget", _PAIR_LONG_B, _PAIR_LONG_A, 20),
    ("both long and of the same length, an odd budget", _PAIR_LONG_A, " ".join(reversed(_PAIR_LONG_A.split())), 20),
    ("max_length=3: room for the special tokens only", _PAIR_SHORT_A, _PAIR_SHORT_B, 3),
]


def _pair_tokenizer():
    """A small WordPiece tokenizer for the checker's sentences, in which some words become several pieces."""
    from minibert.tokenizer import WordPieceTokenizer
    from minibert.wordpiece import SPECIAL_TOKENS, count_words

    split = {"networking": ("network", "##ing"), "unexpected": ("un", "##expected"), "stronger": ("strong", "##er"),
             "international": ("inter", "##national"), "quarterly": ("quarter", "##ly"), "weaker": ("weak", "##er"),
             "slowing": ("slow", "##ing"), "analysts": ("analyst", "##s"), "sitting": ("sit", "##ting")}
    words = count_words([_PAIR_LONG_A, _PAIR_LONG_B, _PAIR_SHORT_A, _PAIR_SHORT_B])
    pieces = sorted({p for w in words for p in split.get(w, (w,))})
    return WordPieceTokenizer({t: i for i, t in enumerate([*SPECIAL_TOKENS, *pieces])})


def _ids_and_type_ids(result, what: str):
    """Accept (ids, type_ids), a dict with input_ids/ids and token_type_ids/type_ids, or an Encoding-like object."""
    if result is None:
        raise CheckFailed(f"{what} returned None. Did you forget a `return`?")
    if isinstance(result, dict):
        ids = result.get("input_ids", result.get("ids"))
        type_ids = result.get("token_type_ids", result.get("type_ids"))
    elif hasattr(result, "ids") and hasattr(result, "type_ids"):
        ids, type_ids = result.ids, result.type_ids
    elif isinstance(result, (tuple, list)) and len(result) == 2:
        ids, type_ids = result
    else:
        raise CheckFailed(f"{what} should return (ids, type_ids): two lists of ints; got {type(result).__name__}.")
    if ids is None or type_ids is None:
        raise CheckFailed(f"{what} should return (ids, type_ids); one of them is missing.")
    as_list = [x.tolist() if hasattr(x, "tolist") else list(x) for x in (ids, type_ids)]
    return as_list[0], as_list[1]


@reports_stubs
def check_pair_encoding(fn) -> None:
    """Check `fn(tokenizer, a, b, max_length) -> (ids, type_ids)`, the encoding of a sentence pair.

    `[CLS] A [SEP] B [SEP]` as token ids (with `tokenizer.tokenize`, `tokenizer.vocab`, `tokenizer.cls_id` and
    `tokenizer.sep_id`), segment id 0 for `[CLS]`, A and the first `[SEP]`, 1 for B and the last `[SEP]`; at most
    `max_length` tokens in all, truncated longest first: when the pair does not fit in the max_length - 3 tokens left
    by the special tokens, the shorter sentence keeps min(its length, half of that budget rounded down) tokens and the
    longer one the rest (on equal lengths, A counts as the shorter); tokens are cut from the end. A max_length below
    3 raises ValueError. The checker compares with `tokenizer.encode(a, pair=b, max_length=max_length)`.
    """
    tokenizer = _pair_tokenizer()
    for name, a, b, max_length in _PAIR_CASES:
        expected = tokenizer.encode(a, pair=b, max_length=max_length)
        what = f"case '{name}' (max_length={max_length})"
        try:
            result = fn(tokenizer, a, b, max_length)
        except NotImplementedError:  # a stub: reports_stubs says so in one line
            raise
        except Exception as e:
            raise CheckFailed(f"{what}: your function raised {type(e).__name__}: {e}") from e
        ids, type_ids = _ids_and_type_ids(result, f"{what}: your function")
        tokens = [tokenizer.id_to_token[i] if isinstance(i, int) and 0 <= i < len(tokenizer.id_to_token) else repr(i)
                  for i in ids]
        if ids != expected.ids:
            raise CheckFailed(f"{what}: {_pair_ids_hint(tokenizer, a, b, max_length, ids, tokens, expected)}")
        if len(type_ids) != len(ids):
            raise CheckFailed(f"{what}: {len(ids)} ids but {len(type_ids)} segment ids: give one segment id per "
                              "token.")
        for t, (g, e) in enumerate(zip(type_ids, expected.type_ids)):
            if g != e:
                where = ("the first [SEP] closes sentence A" if tokens[t] == "[SEP]" and t < len(tokens) - 1
                         else "the last [SEP] closes sentence B" if tokens[t] == "[SEP]"
                         else "[CLS] starts the input" if t == 0
                         else "it belongs to sentence B" if e else "it belongs to sentence A")
                raise CheckFailed(f"{what}: the segment id of token {t} ({tokens[t]}) is {g!r} in yours, but {where}; "
                                  "the segment ids before it are right.")
    try:
        result = fn(tokenizer, _PAIR_SHORT_A, _PAIR_SHORT_B, 2)
    except ValueError:
        pass
    except NotImplementedError:  # a stub: reports_stubs says so in one line
        raise
    except Exception as e:
        raise CheckFailed(f"max_length=2: raise a ValueError (too small for [CLS] A [SEP] B [SEP]), not "
                          f"{type(e).__name__}: {e}") from e
    else:
        raise CheckFailed("max_length=2 leaves no room for the three special tokens of [CLS] A [SEP] B [SEP]: "
                          "raise a ValueError instead of returning an encoding.")
    passed("pair encoding")


def _pair_ids_hint(tokenizer, a, b, max_length, ids, tokens, expected) -> str:
    """What differs first in the ids, and why, without giving the expected ids."""
    from minibert.pretraining_data import google_truncated_lengths
    from minibert.wordpiece import CLS, SEP

    if not ids or tokens[0] != CLS:
        return "the encoding should start with [CLS] (tokenizer.cls_id)."
    if len(ids) > max_length:
        return f"yours has {len(ids)} tokens, more than max_length={max_length}: truncate the two sentences."
    seps = [t for t, token in enumerate(tokens) if token == SEP]
    if len(seps) != 2 or seps[-1] != len(tokens) - 1:
        return (f"yours has {len(seps)} [SEP] token(s), at positions {seps}: one [SEP] after A and one at the very "
                "end, after B (tokenizer.sep_id).")
    n1, n2 = seps[0] - 1, seps[1] - seps[0] - 1
    la, lb = len(tokenizer.tokenize(a)), len(tokenizer.tokenize(b))
    e1 = expected.type_ids.count(0) - 2
    e2 = len(expected.ids) - e1 - 3
    if (n1, n2) != (e1, e2):
        budget = max_length - 3
        if (e1, e2) == (la, lb):
            return (f"this pair fits in max_length, so every token is kept: A has {la} WordPiece tokens "
                    f"(tokenizer.tokenize) and B {lb}; yours keeps {n1} and {n2}.")
        if (n1, n2) == google_truncated_lengths(la, lb, budget):  # Google's run_classifier.py rule
            return (f"you kept {n1} tokens of A and {n2} of B by removing one token at a time from the longer "
                    "sentence and from B on a tie (Google's original run_classifier.py). The tokenizers of minibert "
                    "and Hugging Face split the budget instead: the shorter sentence keeps at most half of it "
                    "(rounded down), the longer the rest, and on equal lengths A counts as the shorter.")
        if n1 + n2 < min(budget, la + lb):
            return (f"you kept {n1} tokens of A and {n2} of B, {n1 + n2} in all: the budget is max_length - 3 = "
                    f"{budget} tokens, and the pair should use all of it (or all its tokens if it has fewer).")
        return (f"you kept {n1} tokens of A (of {la}) and {n2} of B (of {lb}): truncate longest first. The shorter "
                "sentence keeps min(its length, budget // 2) tokens, the longer one the rest of the budget; on equal "
                "lengths A counts as the shorter.")
    for t, (g, e) in enumerate(zip(ids, expected.ids)):
        if g != e:
            return (f"token {t} is {tokens[t]!r} in yours; the tokens before it match. Use tokenizer.tokenize (the "
                    "WordPiece pieces) and keep the first tokens of each sentence, cutting from the end.")
    return f"yours has {len(ids)} tokens, expected {len(expected.ids)}."
