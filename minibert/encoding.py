"""What the tokenizer returns for one text or pair: ids, tokens, segments, attention mask, offsets and word ids.

What it does:
- `Encoding`: the six lists of one encoded text, with the field names of `tokenizers.Encoding`, compared field by
  field (the tests compare the pure-Python encoder with the Rust one this way).
- `FastEncoding`: the same, read lazily from a `tokenizers.Encoding` (what `encode_batch` returns).

What it leaves out: overflowing windows and the other extras of `tokenizers.Encoding`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


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


ENCODING_FIELDS = ("ids", "tokens", "type_ids", "attention_mask", "offsets", "word_ids")


class FastEncoding(Encoding):
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
