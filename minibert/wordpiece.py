"""WordPiece, lesson 01's ideas: normalize the text, cut it into words, and cut each word into vocab pieces.

What it does:
- Normalization as BERT does it, one character at a time: drop NUL, U+FFFD and control characters, turn every
  whitespace into a space, put spaces around CJK ideographs, and (options) strip accents and lowercase.
- Pre-tokenization: split on spaces and isolate every punctuation character.
- The model: greedy longest-match-first with `##` continuation pieces; a word becomes `[UNK]` when some part of it
  matches nothing in the vocab, or when it has more than 100 characters.
- Training, the textbook way (`train_vocab`): start from the characters, then merge, again and again, the adjacent
  pair with the best score freq(ab) / (freq(a) x freq(b)), recounting every pair after every merge; ties go to the
  smallest pair, so the same corpus always gives the same vocab. `minibert.fast_wordpiece.train_vocab_fast` gives
  the same vocab with counts kept up to date, fast enough for real corpora (the tests check that they agree).

The tokenizer object (pairs, offsets, padding, decoding, vocab files) is `minibert.tokenizer.WordPieceTokenizer`.

What it leaves out: other subword algorithms (BPE, unigram). Python's `unicodedata` knows a newer Unicode than the
Rust tables of `tokenizers`, so characters added to Unicode in the last few years (rare marks and punctuation of
historic scripts) can be classed differently; every character that was in Unicode 3.2 is treated the same, except
four that Unicode has re-categorized since (U+166D, U+1734, U+1885, U+1886). The tests check every code point.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from functools import cache

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
PREFIX = "##"  # marks a piece that continues a word
MAX_INPUT_CHARS_PER_WORD = 100  # longer words become [UNK] (the limit of Google's BERT and Hugging Face)

# --------------------------------------------------------------------------- 1. normalization, one character at a time

# Ideographs that get spaces around them, so that each one is a word. These are the bounds `tokenizers` uses; Google's
# BERT starts the sixth range at 0x2B820, `tokenizers` at 0x2B920, and we follow `tokenizers` to give the same ids.
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_whitespace(ch: str) -> bool:
    """Tab, newline, carriage return and the Unicode separators (Zs, Zl, Zp). They all become a plain space."""
    return ch in "\t\n\r" or unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def is_control(ch: str) -> bool:
    """Control, format, private-use and surrogate characters (NUL, zero-width space, ...). They are dropped."""
    return ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def is_punctuation(ch: str) -> bool:
    """Unicode punctuation (P*) and the 32 ASCII symbols such as $ + < = > ^ ` | ~, which BERT also isolates."""
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def is_chinese_char(ch: str) -> bool:
    """A CJK ideograph (Chinese characters, also used in Japanese and Korean); not kana or hangul."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def normalize_char(ch: str, lowercase: bool = True, strip_accents: bool | None = None,
                   tokenize_chinese_chars: bool = True) -> str:
    """What one character becomes: '' (dropped), ' ', ' 中 ', or itself lowercased and without accents.

    `strip_accents=None` means "strip when lowercasing", as in bert-base-uncased.
    """
    if ch == "\ufffd" or is_control(ch):  # U+FFFD is what a decoder writes for broken bytes; NUL is a control
        return ""
    if is_whitespace(ch):
        return " "
    out = f" {ch} " if tokenize_chinese_chars and is_chinese_char(ch) else ch
    if lowercase if strip_accents is None else strip_accents:
        # NFD splits 'é' into 'e' + a combining accent (category Mn), which we then drop
        out = "".join(c for c in unicodedata.normalize("NFD", out) if unicodedata.category(c) != "Mn")
    if lowercase:
        out = "".join(c.lower() for c in out)  # one character at a time: no Greek final-sigma rule, as in BERT
    return out


def normalize(text: str, lowercase: bool = True, strip_accents: bool | None = None,
              tokenize_chinese_chars: bool = True) -> str:
    """BERT's normalization of a whole text: every character through `normalize_char`."""
    return "".join(normalize_char(ch, lowercase, strip_accents, tokenize_chinese_chars) for ch in text)


class _CharTable(dict):
    """A `str.translate` table filled on demand: {code point: fn(character)}."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def __missing__(self, cp: int):
        value = self[cp] = self.fn(chr(cp))
        return value


@cache
def char_tables(lowercase: bool, strip_accents: bool | None, tokenize_chinese_chars: bool):
    """Two translate tables: character -> normalized string, and character -> None if that string has length 1."""
    table = _CharTable(lambda ch: normalize_char(ch, lowercase, strip_accents, tokenize_chinese_chars))
    resizing = _CharTable(lambda ch: None if len(table[ord(ch)]) == 1 else ch)
    return table, resizing


def normalize_with_alignment(text: str, tables) -> tuple[str, list[int] | None]:
    """The normalized text and, for each of its characters, the index of the original character it comes from.

    The alignment is None when every character normalizes to exactly one character (most English text): then the
    indices are the same. `str.translate` does the work in C; the Python loop only runs for texts that need it.
    """
    table, resizing = tables
    normalized = text.translate(table)
    if not text.translate(resizing):
        return normalized, None
    alignment = []
    for i, ch in enumerate(text):
        alignment += [i] * len(table[ord(ch)])
    return normalized, alignment


# ---------------------------------------------------------------------------------------------- 2. pre-tokenization


@cache
def word_regex() -> re.Pattern:
    """A run of characters that are neither space nor punctuation, or one punctuation character."""
    points = [cp for cp in range(sys.maxunicode + 1) if is_punctuation(chr(cp))]
    ranges, start = [], points[0]
    for prev, cp in zip(points, points[1:] + [-1]):
        if cp != prev + 1:
            ranges.append(f"\\U{start:08x}-\\U{prev:08x}")
            start = cp
    punct = "".join(ranges)
    return re.compile(f"[{punct}]|[^ {punct}]+")


def pre_tokenize(normalized: str) -> list[tuple[str, int, int]]:
    """Split normalized text into words: (word, start, end). Spaces separate words; punctuation is a word alone."""
    return [(m.group(), m.start(), m.end()) for m in word_regex().finditer(normalized)]


# ------------------------------------------------------------------------------------------ 3. WordPiece, the model


def pair_score(freq_ab: int, freq_a: int, freq_b: int) -> float:
    """WordPiece's training score for merging pieces a and b: how much more often they appear together than chance."""
    return freq_ab / (freq_a * freq_b)


def greedy_longest_match(word: str, vocab, unk_token: str = UNK,
                         max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD) -> list[str]:
    """Split one normalized word into vocab pieces, always taking the longest piece that matches.

    Pieces after the first carry the `##` prefix. If some position matches no piece at all, or the word is longer
    than `max_input_chars_per_word` characters, the whole word is `[unk_token]`.
    """
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        piece = None
        for end in range(len(word), start, -1):  # longest first
            candidate = word[start:end] if start == 0 else PREFIX + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
        if piece is None:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def check_text(text, name: str) -> None:
    if not isinstance(text, str):
        hint = " To encode several texts at once, use encode_batch(texts)." if isinstance(text, (list, tuple)) else ""
        raise TypeError(f"{name} must be a str, got {type(text).__name__}.{hint}")


# -------------------------------------------------------------------------------------- 4. training


def count_words(texts, lowercase: bool = True, strip_accents: bool | None = None,
                tokenize_chinese_chars: bool = True) -> Counter:
    """How often each word (normalized and pre-tokenized as for encoding) appears in `texts`."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list (or any iterable) of str, not one str: wrap it as [text].")
    tables = char_tables(lowercase, strip_accents, tokenize_chinese_chars)
    special_re = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))
    counts = Counter()
    for i, text in enumerate(texts):
        check_text(text, f"texts[{i}]")
        for part in special_re.split(text):
            counts.update(word_regex().findall(normalize_with_alignment(part, tables)[0]))
    return counts


def train_vocab(texts, vocab_size: int, min_frequency: int = 2, **normalization) -> list[str]:
    """WordPiece training, the textbook algorithm: recount everything at every merge.

    Start from the special tokens and every character of the corpus (as a first piece 'a' and as a continuation
    '##a'); then, until the vocab holds `vocab_size` tokens (or no pair seen `min_frequency` times is left), merge the
    adjacent pair (a, b) with the best `pair_score`. Equal scores go to the smallest pair in string order.
    """
    counts = count_words(texts, **normalization)
    splits = {w: [w[0]] + [PREFIX + c for c in w[1:]] for w in counts}  # every word as its characters
    vocab = list(SPECIAL_TOKENS) + sorted({p for s in splits.values() for p in s})
    while len(vocab) < vocab_size:
        pieces, pairs = Counter(), Counter()
        for w, s in splits.items():
            for p in s:
                pieces[p] += counts[w]
            for pair in zip(s, s[1:]):
                pairs[pair] += counts[w]
        scored = [(-pair_score(f, pieces[a], pieces[b]), a, b) for (a, b), f in pairs.items() if f >= min_frequency]
        if not scored:
            break
        _, a, b = min(scored)
        merged = a + b[len(PREFIX):]
        if merged not in vocab:  # two different pairs can spell the same piece
            vocab.append(merged)
        for w, s in splits.items():
            new, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == (a, b):
                    new.append(merged)
                    i += 2
                else:
                    new.append(s[i])
                    i += 1
            splits[w] = new
    return vocab
