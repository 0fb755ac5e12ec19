"""WordPiece, BERT's tokenizer, from scratch: normalize, pre-tokenize, train, encode and decode.

What it does:
- Normalization as BERT does it, one character at a time: drop NUL, U+FFFD and control characters, turn every
  whitespace into a space, put spaces around CJK ideographs, and (options) strip accents and lowercase.
- Pre-tokenization: split on spaces and isolate every punctuation character.
- Encoding: greedy longest-match-first with `##` continuation pieces. A word becomes `[UNK]` when some part of it
  matches nothing in the vocab, or when it has more than 100 characters.
- `[CLS] A [SEP] B [SEP]` with token type ids, attention mask, truncation (longest first), padding, and for every
  token its character offsets in the original text and the index of the word it came from.
- Training: WordPiece with the likelihood score freq(ab) / (freq(a) * freq(b)), incremental pair counts, ties broken
  by the pair itself so the same corpus always gives the same vocab. Vocabs are saved in BERT's `vocab.txt` format.
- `.fast`: the same tokenizer as a Rust `tokenizers.Tokenizer`, which `encode_batch` uses. It gives the same ids,
  tokens and offsets as the pure-Python encoder (the tests check it on every line of the course's corpora).
  `encode_batch` first replaces lone surrogates, which Rust cannot take, by U+FFFD: normalization drops both.

    tok = WordPieceTokenizer.from_vocab_file(vocab_file("bert-base-uncased"))
    tok.tokenize("Tokenizers are fun!")   # ['token', '##izer', '##s', 'are', 'fun', '!']

What it leaves out: other subword algorithms (BPE, unigram), stride and overflowing tokens, left padding and left
truncation, added tokens other than the five special ones. Python's `unicodedata` knows a newer Unicode than the
Rust tables of `tokenizers`, so characters added to Unicode in the last few years (rare marks and punctuation of
historic scripts) can be classed differently; every character that was in Unicode 3.2 is treated the same, except
four that Unicode has re-categorized since (U+166D, U+1734, U+1885, U+1886). The tests check every code point.
"""

from __future__ import annotations

import heapq
import operator
import re
import string
import sys
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

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
def _tables(lowercase: bool, strip_accents: bool | None, tokenize_chinese_chars: bool):
    """Two translate tables: character -> normalized string, and character -> None if that string has length 1."""
    table = _CharTable(lambda ch: normalize_char(ch, lowercase, strip_accents, tokenize_chinese_chars))
    resizing = _CharTable(lambda ch: None if len(table[ord(ch)]) == 1 else ch)
    return table, resizing


def _normalize_with_alignment(text: str, tables) -> tuple[str, list[int] | None]:
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
def _word_regex() -> re.Pattern:
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
    return [(m.group(), m.start(), m.end()) for m in _word_regex().finditer(normalized)]


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


# ---------------------------------------------------------------------------------------------------- 4. the tokenizer


@dataclass(eq=False, repr=False)
class Encoding:
    """One encoded text (or pair), with the field names of `tokenizers.Encoding`."""

    ids: list[int]
    tokens: list[str]
    type_ids: list[int]  # 0 for [CLS] A [SEP], 1 for B [SEP]: the "segment" of each token
    attention_mask: list[int]  # 1 for real tokens, 0 for padding
    offsets: list[tuple[int, int]]  # (start, end) characters in the original text; (0, 0) for special tokens
    word_ids: list[int | None]  # which word of its text each token comes from; None for special tokens

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Encoding):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in ENCODING_FIELDS)

    def __repr__(self) -> str:
        return "Encoding(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in ENCODING_FIELDS) + ")"

    @classmethod
    def from_fast(cls, encoding) -> Encoding:
        """Wrap a `tokenizers.Encoding`: each field is copied to Python the first time it is read."""
        return _FastEncoding(encoding)


ENCODING_FIELDS = ("ids", "tokens", "type_ids", "attention_mask", "offsets", "word_ids")


class _FastEncoding(Encoding):
    """An Encoding backed by a `tokenizers.Encoding`. Copying all six lists of every encoding of a batch to Python
    would cost more than the Rust encoding itself, so `encode_batch` copies nothing until a field is used."""

    def __init__(self, encoding):
        self._encoding = encoding

    ids = cached_property(lambda self: self._encoding.ids)
    tokens = cached_property(lambda self: self._encoding.tokens)
    type_ids = cached_property(lambda self: self._encoding.type_ids)
    attention_mask = cached_property(lambda self: self._encoding.attention_mask)
    offsets = cached_property(lambda self: self._encoding.offsets)
    word_ids = cached_property(lambda self: self._encoding.word_ids)

    def __len__(self) -> int:
        return len(self._encoding)


# how `tokenizers` tidies each decoded piece (with the space that was put before it)
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


# A lone surrogate (a code point from U+D800 to U+DFFF, e.g. from `bytes.decode(errors="surrogateescape")`, or from
# JSON's "\ud83d" escape without its partner) is allowed in a Python str but has no UTF-8 form, so the Rust
# tokenizer refuses the whole text with a TypeError.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, before it goes to the Rust tokenizer.

    Normalization drops both (a surrogate is a control character, category Cs; U+FFFD marks broken bytes), and each
    surrogate becomes exactly one character, so the fast path gives the same tokens and the same offsets as `encode`.
    """
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def _check_text(text, name: str) -> None:
    if not isinstance(text, str):
        hint = " To encode several texts at once, use encode_batch(texts)." if isinstance(text, (list, tuple)) else ""
        raise TypeError(f"{name} must be a str, got {type(text).__name__}.{hint}")


def _padding_mode(padding, max_length) -> str | None:
    if padding is False or padding is None:
        return None
    mode = "longest" if padding is True else padding
    if mode not in ("longest", "max_length"):
        raise ValueError(f"padding={padding!r} is not understood: use False, True/'longest' or 'max_length'.")
    if mode == "max_length" and max_length is None:
        raise ValueError("padding='max_length' needs a max_length, for example max_length=128.")
    return mode


def truncated_lengths(n1: int, n2: int, budget: int) -> tuple[int, int]:
    """Longest-first truncation of a pair to `budget` tokens, exactly as `tokenizers` does it.

    The shorter sequence keeps at most half the budget (rounded down), the longer one takes the rest; on a tie the
    first sequence counts as the shorter one.
    """
    if n1 + n2 <= budget:
        return n1, n2
    if n1 > n2:
        short = min(n2, budget // 2)
        return budget - short, short
    short = min(n1, budget // 2)
    return short, budget - short


class WordPieceTokenizer:
    """BERT's tokenizer: a vocab {token: id} and the normalization options."""

    def __init__(self, vocab: dict[str, int], lowercase: bool = True, strip_accents: bool | None = None,
                 tokenize_chinese_chars: bool = True, max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD):
        if not isinstance(vocab, dict):
            raise TypeError(f"vocab must be a dict {{token: id}}, got {type(vocab).__name__}. "
                            "To read a vocab.txt file, use WordPieceTokenizer.from_vocab_file(path).")
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"The vocab has no {missing[0]!r} token, which BERT needs (all of {', '.join(missing)} "
                             f"are missing). Add the special tokens {' '.join(SPECIAL_TOKENS)} to the vocab, or "
                             "train one with train_wordpiece(), which puts them first.")
        if len(set(vocab.values())) != len(vocab) or min(vocab.values()) < 0:
            raise ValueError("vocab ids must be distinct non-negative integers (line numbers of vocab.txt).")
        self.vocab = vocab
        self.id_to_token: list[str | None] = [None] * (max(vocab.values()) + 1)
        for token, i in vocab.items():
            self.id_to_token[i] = token
        self.lowercase, self.strip_accents = lowercase, strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.max_input_chars_per_word = max_input_chars_per_word
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (vocab[t] for t in SPECIAL_TOKENS)
        self.special_ids = {self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id}
        self._tables = _tables(lowercase, strip_accents, tokenize_chinese_chars)
        # special tokens written in the text ("Paris is the [MASK] of France") are kept whole, longest first
        self._special_re = re.compile("|".join(re.escape(t) for t in sorted(SPECIAL_TOKENS, key=len, reverse=True)))
        self._cache: dict[str, tuple] = {}  # word -> its pieces, the same words come back all the time
        self._fast = None
        self._fast_variants: dict = {}

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_vocab_file(cls, path, lowercase: bool = True, strip_accents: bool | None = None,
                        tokenize_chinese_chars: bool = True, **kwargs) -> WordPieceTokenizer:
        """Read a `vocab.txt` (one token per line, line number = id), like the real BERT's."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"No vocab file at {path}. For the real BERT vocab use minibert.data.vocab_file('bert-base-uncased') "
                "(or 'bert-base-chinese'); for your own, train_wordpiece(...) then .save_vocab(path).")
        lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines(): it also splits on U+2028
        if lines and lines[-1] == "":
            lines.pop()
        # like `tokenizers`, strip the end of each line (bert-base-chinese has a line that is just U+2028)
        vocab = {line.rstrip(): i for i, line in enumerate(lines)}
        missing = [t for t in SPECIAL_TOKENS if t not in vocab]
        if missing:
            raise ValueError(f"The vocab file {path} has no {missing[0]!r} token, which BERT needs (missing: "
                             f"{', '.join(missing)}). Add each as a line of the file, or train a vocab with "
                             "train_wordpiece(), which puts the special tokens first.")
        return cls(vocab, lowercase, strip_accents, tokenize_chinese_chars, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str = "bert-base-uncased") -> WordPieceTokenizer:
        """The tokenizer of a published BERT, with its casing: 'bert-base-uncased' or 'bert-base-chinese'."""
        from minibert.data import vocab_file

        return cls.from_vocab_file(vocab_file(name), lowercase=name != "bert-base-chinese")

    def save_vocab(self, path) -> Path:
        """Write the vocab as `vocab.txt`: one token per line, line number = id."""
        path = Path(path)
        path.write_text("".join(f"{t if t is not None else ''}\n" for t in self.id_to_token), encoding="utf-8")
        return path

    @classmethod
    def train(cls, texts, vocab_size: int, **options) -> WordPieceTokenizer:
        """Train a vocab on `texts`: see `train_wordpiece`."""
        return train_wordpiece(texts, vocab_size, **options)

    def __len__(self) -> int:
        return len(self.vocab)

    def __getstate__(self) -> dict:  # for pickle (DataLoader workers): the caches are rebuilt, not copied
        return {k: v for k, v in self.__dict__.items() if k not in ("_tables", "_cache", "_fast", "_fast_variants")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tables = _tables(self.lowercase, self.strip_accents, self.tokenize_chinese_chars)
        self._cache, self._fast, self._fast_variants = {}, None, {}

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(vocab_size={len(self)}, lowercase={self.lowercase}, "
                f"strip_accents={self.strip_accents}, tokenize_chinese_chars={self.tokenize_chinese_chars})")

    # ------------------------------------------------------------------ encoding

    def _word_pieces(self, word: str) -> tuple:
        """The pieces of one normalized word as (token, id, start, end), start/end inside the word."""
        pieces = self._cache.get(word)
        if pieces is None:
            tokens = greedy_longest_match(word, self.vocab, UNK, self.max_input_chars_per_word)
            if tokens == [UNK]:
                pieces = ((UNK, self.unk_id, 0, len(word)),)
            else:
                pieces, start = [], 0
                for i, token in enumerate(tokens):
                    end = start + len(token) - (len(PREFIX) if i > 0 else 0)
                    pieces.append((token, self.vocab[token], start, end))
                    start = end
                pieces = tuple(pieces)
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[word] = pieces
        return pieces

    def _encode_text(self, text: str) -> list[tuple]:
        """The tokens of one text without [CLS]/[SEP]: a list of (id, token, (start, end), word index)."""
        rows, word, pos = [], 0, 0
        segments = [(m.start(), m.end()) for m in self._special_re.finditer(text)] + [(len(text), len(text))]
        for special_start, special_end in segments:
            # the ordinary text before a special token: normalize, split into words, split words into pieces
            normalized, alignment = _normalize_with_alignment(text[pos:special_start], self._tables)
            for match in _word_regex().finditer(normalized):
                w = match.start()
                for token, token_id, start, end in self._word_pieces(match.group()):
                    if alignment is None:  # normalized and original characters are the same
                        offset = (pos + w + start, pos + w + end)
                    else:
                        offset = (pos + alignment[w + start], pos + alignment[w + end - 1] + 1)
                    rows.append((token_id, token, offset, word))
                word += 1
            if special_start < special_end:  # the special token itself, kept whole
                token = text[special_start:special_end]
                rows.append((self.vocab[token], token, (special_start, special_end), word))
                word += 1
            pos = special_end
        return rows

    def tokenize(self, text: str) -> list[str]:
        """The token strings of a text, without special tokens: 'Hello!' -> ['hello', '!']."""
        _check_text(text, "text")
        return [row[1] for row in self._encode_text(text)]

    def encode(self, text: str, pair: str | None = None, max_length: int | None = None, padding=False,
               add_special_tokens: bool = True) -> Encoding:
        """Encode a text, or a pair as `[CLS] text [SEP] pair [SEP]`, truncated to `max_length` tokens in all.

        `padding`: False, True/'longest' (no effect on one text) or 'max_length' (pad with [PAD] to max_length).
        """
        _check_text(text, "text")
        if pair is not None:
            _check_text(pair, "pair")
        mode = _padding_mode(padding, max_length)
        self._check_max_length(max_length, pair is not None, add_special_tokens)
        first = self._encode_text(text)
        second = self._encode_text(pair) if pair is not None else []
        if max_length is not None:
            budget = max_length - self._num_special(pair is not None, add_special_tokens)
            if pair is None:
                first = first[:budget]
            else:
                n1, n2 = truncated_lengths(len(first), len(second), budget)
                first, second = first[:n1], second[:n2]
        if add_special_tokens:
            first = [(self.cls_id, CLS, (0, 0), None)] + first + [(self.sep_id, SEP, (0, 0), None)]
            if pair is not None:
                second = second + [(self.sep_id, SEP, (0, 0), None)]
        rows = first + second
        type_ids = [0] * len(first) + [1] * len(second)
        attention_mask = [1] * len(rows)
        if mode == "max_length" and len(rows) < max_length:
            n_pad = max_length - len(rows)
            rows += [(self.pad_id, PAD, (0, 0), None)] * n_pad
            type_ids += [0] * n_pad
            attention_mask += [0] * n_pad
        ids, tokens, offsets, word_ids = (list(column) for column in zip(*rows)) if rows else ([], [], [], [])
        return Encoding(ids, tokens, type_ids, attention_mask, offsets, word_ids)

    @staticmethod
    def _num_special(is_pair: bool, add_special_tokens: bool) -> int:
        return (3 if is_pair else 2) if add_special_tokens else 0

    def _check_max_length(self, max_length, is_pair: bool, add_special_tokens: bool) -> None:
        if max_length is None:
            return
        if not isinstance(max_length, int) or isinstance(max_length, bool):
            raise TypeError(f"max_length must be an int (or None for no truncation), got {max_length!r}.")
        needed = self._num_special(is_pair, add_special_tokens)
        if max_length < max(needed, 1):
            what = "[CLS] A [SEP] B [SEP]" if is_pair else "[CLS] text [SEP]"
            raise ValueError(f"max_length={max_length!r} is too small: {what} needs {needed} special tokens, so use "
                             f"max_length >= {max(needed, 1)} (BERT-base takes up to 512).")

    def encode_batch(self, texts, pairs=None, max_length: int | None = None, padding=False,
                     add_special_tokens: bool = True) -> list[Encoding]:
        """Encode many texts (or pairs) at once with the fast Rust tokenizer: same results as `encode`, faster.

        `padding=True`/'longest' pads every encoding to the longest of the batch, 'max_length' to max_length.
        Lone surrogates are dropped, as `encode` drops them (see `replace_lone_surrogates`).
        """
        if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
            raise TypeError(f"texts must be a list of str, got {type(texts).__name__}. For one text use encode(text).")
        for i, text in enumerate(texts):
            _check_text(text, f"texts[{i}]")
        if pairs is not None:
            if isinstance(pairs, str) or len(pairs) != len(texts):
                raise ValueError(f"pairs must be a list with one str per text ({len(texts)}), got "
                                 f"{len(pairs) if not isinstance(pairs, str) else 'a str'}.")
            for i, text in enumerate(pairs):
                _check_text(text, f"pairs[{i}]")
        mode = _padding_mode(padding, max_length)
        self._check_max_length(max_length, pairs is not None, add_special_tokens)
        fast = self._fast_with(max_length, mode)
        texts = [replace_lone_surrogates(t) for t in texts]
        pairs = None if pairs is None else [replace_lone_surrogates(t) for t in pairs]
        inputs = texts if pairs is None else list(zip(texts, pairs))
        return [_FastEncoding(e) for e in fast.encode_batch(inputs, add_special_tokens=add_special_tokens)]

    # ------------------------------------------------------------------ decoding

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Ids back to text: pieces joined (`##` glued to the previous piece), words separated by spaces.

        Normalization cannot be undone: the text comes back lowercased, without accents, with spaces around
        punctuation (except before . , ! ?, as `tokenizers` does).
        """
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)  # also takes tensors and arrays
        pieces = []
        for i in ids:
            try:
                i = operator.index(i)  # ints, and NumPy integers too
            except TypeError:
                raise TypeError(f"ids must be integers, got {i!r}.") from None
            if not 0 <= i < len(self.id_to_token) or self.id_to_token[i] is None:
                raise ValueError(f"id {i} is not in the vocab (ids go from 0 to {len(self.id_to_token) - 1}).")
            if not (skip_special_tokens and i in self.special_ids):
                pieces.append(self.id_to_token[i])
        out = []
        for n, piece in enumerate(pieces):
            if n > 0:
                piece = piece[len(PREFIX):] if piece.startswith(PREFIX) else " " + piece
            for dirty, clean in _CLEANUP:
                piece = piece.replace(dirty, clean)
            out.append(piece)
        return "".join(out)

    # ------------------------------------------------------------------ the fast path

    def to_fast(self):
        """A new `tokenizers.Tokenizer` with the same vocab and options: BERT's normalizer and pre-tokenizer,
        the WordPiece model (`##`, the 100-character limit), [CLS]/[SEP] templates and the special tokens."""
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

        fast = Tokenizer(models.WordPiece(dict(self.vocab), unk_token=UNK, continuing_subword_prefix=PREFIX,
                                          max_input_chars_per_word=self.max_input_chars_per_word))
        fast.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=self.tokenize_chinese_chars,
                                                     strip_accents=self.strip_accents, lowercase=self.lowercase)
        fast.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        fast.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
            special_tokens=[(CLS, self.cls_id), (SEP, self.sep_id)])
        fast.decoder = decoders.WordPiece(prefix=PREFIX)
        fast.add_special_tokens(list(SPECIAL_TOKENS))
        return fast

    @property
    def fast(self):
        """The fast tokenizer (built once), without truncation or padding: `tok.fast.encode_batch(texts)`."""
        if self._fast is None:
            self._fast = self.to_fast()
        return self._fast

    def _fast_with(self, max_length, padding_mode):
        """A copy of the fast tokenizer with truncation and padding set (`.fast` itself is never changed)."""
        if max_length is None and padding_mode is None:
            return self.fast
        key = (max_length, padding_mode)
        if key not in self._fast_variants:
            fast = self.to_fast()
            if max_length is not None:
                fast.enable_truncation(max_length, strategy="longest_first")
            if padding_mode is not None:
                fast.enable_padding(pad_id=self.pad_id, pad_token=PAD,
                                    length=max_length if padding_mode == "max_length" else None)
            self._fast_variants[key] = fast
        return self._fast_variants[key]


# ------------------------------------------------------------------------------------------------------- 5. training


def count_words(texts, lowercase: bool = True, strip_accents: bool | None = None,
                tokenize_chinese_chars: bool = True) -> Counter:
    """How often each word (normalized and pre-tokenized as for encoding) appears in `texts`."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list (or any iterable) of str, not one str: wrap it as [text].")
    tables = _tables(lowercase, strip_accents, tokenize_chinese_chars)
    special_re = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))
    counts = Counter()
    for i, text in enumerate(texts):
        _check_text(text, f"texts[{i}]")
        for part in special_re.split(text):
            counts.update(_word_regex().findall(_normalize_with_alignment(part, tables)[0]))
    return counts


def train_wordpiece(texts, vocab_size: int, lowercase: bool = True, strip_accents: bool | None = None,
                    tokenize_chinese_chars: bool = True, min_frequency: int = 2) -> WordPieceTokenizer:
    """Train a WordPiece vocab of `vocab_size` tokens on `texts` and return its tokenizer.

    Start from the special tokens and every character of the corpus (as a first piece 'a' and as a continuation
    '##a'), then repeatedly merge the adjacent pair (a, b) with the best `pair_score`, among the pairs seen at least
    `min_frequency` times, until the vocab is full (or no pair is left: then the vocab is smaller). Equal scores go to
    the smallest pair in string order, so the result never depends on the order of the texts.
    """
    if not isinstance(vocab_size, int) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"vocab_size and min_frequency must be integers and min_frequency >= 1, got "
                         f"vocab_size={vocab_size!r}, min_frequency={min_frequency!r}.")
    counts = count_words(texts, lowercase, strip_accents, tokenize_chinese_chars)
    words = sorted(counts)
    splits = [[w[0]] + [PREFIX + c for c in w[1:]] for w in words]  # every word as its characters
    freqs = [counts[w] for w in words]
    vocab = list(SPECIAL_TOKENS) + sorted({piece for split in splits for piece in split})
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is too small: the {len(SPECIAL_TOKENS)} special tokens and the "
                         f"{len(vocab) - len(SPECIAL_TOKENS)} characters of this corpus already make {len(vocab)}. "
                         f"Use vocab_size >= {len(vocab)}.")
    known = set(vocab)

    # counts kept up to date as merges happen: pieces, adjacent pairs, and where each pair occurs
    piece_freq, pair_freq = Counter(), Counter()
    where = defaultdict(set)  # pair -> indices of the words that contain it
    partners = defaultdict(set)  # piece -> the pairs it is part of
    for i, (split, freq) in enumerate(zip(splits, freqs)):
        for piece in split:
            piece_freq[piece] += freq
        for pair in zip(split, split[1:]):
            pair_freq[pair] += freq
            where[pair].add(i)
            partners[pair[0]].add(pair)
            partners[pair[1]].add(pair)

    def score(pair):
        return pair_score(pair_freq[pair], piece_freq[pair[0]], piece_freq[pair[1]])

    # a heap of (-score, a, b); entries whose score is out of date are skipped when they come out
    heap = [(-score(p), *p) for p, f in pair_freq.items() if f >= min_frequency]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg_score, a, b = heapq.heappop(heap)
        if pair_freq.get((a, b), 0) < min_frequency or -neg_score != score((a, b)):
            continue
        merged = a + b[len(PREFIX):]
        if merged not in known:  # two different pairs can spell the same piece
            vocab.append(merged)
            known.add(merged)
        changed = set()
        for i in where.pop((a, b), ()):
            split, freq = splits[i], freqs[i]
            new, j, n = [], 0, 0
            while j < len(split):
                if j + 1 < len(split) and split[j] == a and split[j + 1] == b:
                    new.append(merged)
                    j, n = j + 2, n + 1
                else:
                    new.append(split[j])
                    j += 1
            if n == 0:
                continue
            for pair in zip(split, split[1:]):
                pair_freq[pair] -= freq
                changed.add(pair)
            for pair in zip(new, new[1:]):
                pair_freq[pair] += freq
                changed.add(pair)
                where[pair].add(i)
                partners[pair[0]].add(pair)
                partners[pair[1]].add(pair)
            piece_freq[a] -= n * freq
            piece_freq[b] -= n * freq
            piece_freq[merged] += n * freq
            splits[i] = new
        # pairs whose count changed, and every pair with a or b, whose frequencies went down, get a fresh score
        for pair in changed | partners[a] | partners[b]:
            if pair_freq.get(pair, 0) <= 0:
                pair_freq.pop(pair, None)
                partners[pair[0]].discard(pair)
                partners[pair[1]].discard(pair)
            elif pair_freq[pair] >= min_frequency:
                heapq.heappush(heap, (-score(pair), *pair))
        if len(heap) > 4 * len(pair_freq) + 100_000:  # drop the out-of-date entries now and then
            heap = [(-score(p), *p) for p, f in pair_freq.items() if f >= min_frequency]
            heapq.heapify(heap)
    return WordPieceTokenizer({token: i for i, token in enumerate(vocab)}, lowercase, strip_accents,
                              tokenize_chinese_chars)
