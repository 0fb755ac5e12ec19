"""The tokenizer object of lesson 01: text in, BERT's inputs out (and back), with a vocab file it reads and writes.

What it does:
- `WordPieceTokenizer.encode(text, pair=None)`: `[CLS] A [SEP] B [SEP]` with token type ids, attention mask,
  truncation (longest first), padding, and for every token its character offsets in the original text and the
  index of the word it came from; `decode` goes back. The pieces come from `minibert.wordpiece` (normalization,
  pre-tokenization, greedy longest match).
- `encode_batch`: the same encodings from the Rust twin built by `minibert.fast_wordpiece` (tested equal).
- `from_vocab_file` / `save_vocab`: BERT's `vocab.txt`; `from_pretrained("bert-base-uncased")`; `train_wordpiece`:
  a vocab trained on your texts (`minibert.fast_wordpiece.train_vocab_fast`, the same vocab as the textbook
  `minibert.wordpiece.train_vocab`).

    tok = WordPieceTokenizer.from_vocab_file(vocab_file("bert-base-uncased"))
    tok.tokenize("Tokenizers are fun!")   # ['token', '##izer', '##s', 'are', 'fun', '!']

What it leaves out: stride and overflowing tokens, left padding and left truncation, added tokens other than the five
special ones.
"""

from __future__ import annotations

import operator
import re
from pathlib import Path

from minibert.encoding import Encoding, FastEncoding
from minibert.fast_wordpiece import build_fast_tokenizer, replace_lone_surrogates, train_vocab_fast
from minibert.wordpiece import (
    CLS,
    MAX_INPUT_CHARS_PER_WORD,
    PAD,
    PREFIX,
    SEP,
    SPECIAL_TOKENS,
    UNK,
    char_tables,
    check_text,
    greedy_longest_match,
    normalize_with_alignment,
    word_regex,
)

# ---------------------------------------------------------------------------------------------------- 4. the tokenizer


# how `tokenizers` tidies each decoded piece (with the space that was put before it)
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


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
        self._tables = char_tables(lowercase, strip_accents, tokenize_chinese_chars)
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

    def __len__(self) -> int:
        return len(self.vocab)

    def __getstate__(self) -> dict:  # for pickle (DataLoader workers): the caches are rebuilt, not copied
        return {k: v for k, v in self.__dict__.items() if k not in ("_tables", "_cache", "_fast", "_fast_variants")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tables = char_tables(self.lowercase, self.strip_accents, self.tokenize_chinese_chars)
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
            normalized, alignment = normalize_with_alignment(text[pos:special_start], self._tables)
            for match in word_regex().finditer(normalized):
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
        check_text(text, "text")
        return [row[1] for row in self._encode_text(text)]

    def encode(self, text: str, pair: str | None = None, max_length: int | None = None, padding=False,
               add_special_tokens: bool = True) -> Encoding:
        """Encode a text, or a pair as `[CLS] text [SEP] pair [SEP]`, truncated to `max_length` tokens in all.

        `padding`: False, True/'longest' (no effect on one text) or 'max_length' (pad with [PAD] to max_length).
        """
        check_text(text, "text")
        if pair is not None:
            check_text(pair, "pair")
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
            check_text(text, f"texts[{i}]")
        if pairs is not None:
            if isinstance(pairs, str) or len(pairs) != len(texts):
                raise ValueError(f"pairs must be a list with one str per text ({len(texts)}), got "
                                 f"{len(pairs) if not isinstance(pairs, str) else 'a str'}.")
            for i, text in enumerate(pairs):
                check_text(text, f"pairs[{i}]")
        mode = _padding_mode(padding, max_length)
        self._check_max_length(max_length, pairs is not None, add_special_tokens)
        fast = self._fast_with(max_length, mode)
        texts = [replace_lone_surrogates(t) for t in texts]
        pairs = None if pairs is None else [replace_lone_surrogates(t) for t in pairs]
        inputs = texts if pairs is None else list(zip(texts, pairs))
        return [FastEncoding(e) for e in fast.encode_batch(inputs, add_special_tokens=add_special_tokens)]

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
        """A new `tokenizers.Tokenizer` with the same vocab and options (minibert.fast_wordpiece)."""
        return build_fast_tokenizer(self)

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


def train_wordpiece(texts, vocab_size: int, lowercase: bool = True, strip_accents: bool | None = None,
                    tokenize_chinese_chars: bool = True, min_frequency: int = 2) -> WordPieceTokenizer:
    """Train a WordPiece vocab of `vocab_size` tokens on `texts` and return its tokenizer (see
    `minibert.wordpiece.train_vocab` for the algorithm; this is its fast twin, with the same result)."""
    vocab = train_vocab_fast(texts, vocab_size, lowercase, strip_accents, tokenize_chinese_chars, min_frequency)
    return WordPieceTokenizer({token: i for i, token in enumerate(vocab)}, lowercase, strip_accents,
                              tokenize_chinese_chars)
