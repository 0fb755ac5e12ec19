"""Text for pre-training, lesson 05's first step: raw text -> documents -> sentences -> token ids, tokenized once.

What it does:
- `documents_from_lines(lines)`: a corpus (WikiText, or any text file with one sentence or paragraph per line and
  documents separated by blank lines or ` = Title = ` headings) -> documents -> sentences. WikiText's `@-@` style
  escapes are undone and its `<unk>` becomes `[UNK]`; paragraphs are cut into sentences at `. ! ?` (and `。！？`).
- `tokenize_documents(documents, tokenizer)`: every sentence tokenized once, in batches, by the fast (Rust)
  tokenizer, into a `TokenizedCorpus`: one flat tensor of token ids plus the offsets of sentences and documents.
- `vocab_info(tokenizer)`: what masking and pairing need to know about a vocabulary (its size, special ids).

The pairs and masks made from a `TokenizedCorpus` are `minibert.pretraining_data`'s.

What it leaves out: a trained sentence splitter (the rule above is WikiText's), language detection, deduplication,
and streaming corpora too large for memory (WikiText-103's 100M tokens take ~400 MB as int32).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from minibert.fast_wordpiece import replace_lone_surrogates

# ------------------------------------------------------------------------------------------ text -> documents

_WIKITEXT_ESCAPES = [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), ("<unk>", "[UNK]")]
# a sentence ends at . ! ? after a lowercase letter, digit, bracket, quote or a space (WikiText writes " . "), not
# after a capital ("J. R. R. Tolkien"), and is followed by a capital; CJK full stops need no space
_SENTENCE_END = re.compile(r"(?<=[\sa-z0-9)\]\"'][.!?])\s+(?=[\"'(\[]?[A-Z])|(?<=[。！？])")


def clean_line(text: str) -> str:
    """Undo WikiText's escapes ("1 @,@ 000" -> "1,000", "<unk>" -> "[UNK]") and strip the line."""
    for escape, plain in _WIKITEXT_ESCAPES:
        text = text.replace(escape, plain)
    return text.strip()


def split_sentences(text: str) -> list[str]:
    """Cut a paragraph into sentences at . ! ? followed by a capital (and after 。！？). Good enough for NSP."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def documents_from_lines(lines: Iterable[str | dict], sentences: bool = True) -> list[list[str]]:
    """Lines of a corpus (strings, or `load_dataset` records with a "text" field) -> documents of sentences.

    Documents end at blank lines or WikiText ` = Title = ` headings (see `corpus_documents`);
    `sentences=False` keeps each line (paragraph) whole instead of cutting it into sentences.
    """
    lines = [line["text"] if isinstance(line, dict) else line for line in lines]
    documents = []
    for document in corpus_documents(lines):
        pieces = [clean_line(p) for p in document]
        if sentences:
            pieces = [s for p in pieces for s in split_sentences(p)]
        pieces = [p for p in pieces if p]
        if pieces:
            documents.append(pieces)
    return documents


# ------------------------------------------------------------------------------------------ documents -> token ids


@dataclass
class VocabInfo:
    """What masking and pairing need to know about a vocabulary."""

    size: int  # V
    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    special_ids: tuple[int, ...]  # never chosen for prediction, never drawn as a random replacement
    continuation: torch.Tensor  # (V,) bool: True for "##" pieces that continue a word (whole-word masking)

    def __post_init__(self):
        special = torch.zeros(self.size, dtype=torch.bool)
        special[list(self.special_ids)] = True
        self.is_special = special  # (V,) bool
        self.replacement_ids = torch.nonzero(~special).squeeze(1)  # (V - #special,) the random-replacement pool


def _fast(tokenizer):
    """The `tokenizers.Tokenizer` behind a minibert WordPieceTokenizer (`.fast`), or the tokenizer itself."""
    fast = getattr(tokenizer, "fast", tokenizer)
    if not hasattr(fast, "encode_batch"):
        raise TypeError(f"{type(tokenizer).__name__} has no fast path: pass a minibert WordPieceTokenizer (it has "
                        f"`.fast`) or a `tokenizers` tokenizer such as `tokenizers.BertWordPieceTokenizer(vocab.txt)`")
    return fast


def vocab_info(tokenizer) -> VocabInfo:
    """Vocabulary size, special ids and `##` pieces of a minibert WordPieceTokenizer or a `tokenizers` tokenizer."""
    if isinstance(tokenizer, VocabInfo):
        return tokenizer
    if hasattr(tokenizer, "special_ids") and hasattr(tokenizer, "vocab"):  # minibert.tokenizer.WordPieceTokenizer
        vocab = dict(tokenizer.vocab)
        ids = dict(pad_id=tokenizer.pad_id, cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id,
                   mask_id=tokenizer.mask_id)
        special = set(tokenizer.special_ids)
    else:  # a `tokenizers` tokenizer with BERT's special tokens
        fast = _fast(tokenizer)
        vocab = fast.get_vocab()
        names = dict(pad_id="[PAD]", cls_id="[CLS]", sep_id="[SEP]", mask_id="[MASK]", unk_id="[UNK]")
        missing = [tok for tok in names.values() if tok not in vocab]
        if missing:
            raise ValueError(f"the vocabulary has no {missing}: BERT pre-training needs [PAD] [UNK] [CLS] [SEP] "
                             f"[MASK]; use a BERT vocab.txt")
        ids = {key: vocab[tok] for key, tok in names.items()}
        special = set(ids.values())
        ids.pop("unk_id")
    size = max(vocab.values()) + 1
    continuation = torch.zeros(size, dtype=torch.bool)
    continuation[[i for tok, i in vocab.items() if tok.startswith("##")]] = True
    return VocabInfo(size=size, special_ids=tuple(sorted(special)), continuation=continuation, **ids)


@dataclass
class TokenizedCorpus:
    """Every sentence's token ids end to end in one tensor, and where sentences and documents start.

    Sentence s is `ids[sentence_starts[s]:sentence_starts[s + 1]]`; document d holds sentences
    `document_starts[d]` to `document_starts[d + 1] - 1`. `corpus[d]` gives document d as a list of id tensors.
    """

    ids: torch.Tensor  # (n_tokens,) int32
    sentence_starts: torch.Tensor  # (n_sentences + 1,) int64, offsets into ids
    document_starts: torch.Tensor  # (n_documents + 1,) int64, offsets into sentences

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1

    @property
    def num_tokens(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return self.num_documents

    def __getitem__(self, d: int) -> list[torch.Tensor]:
        if not 0 <= d < self.num_documents:
            raise IndexError(f"document {d} out of range (the corpus has {self.num_documents})")
        s0, s1 = self.document_starts[d].item(), self.document_starts[d + 1].item()
        starts = self.sentence_starts[s0:s1 + 1].tolist()
        return [self.ids[a:b] for a, b in zip(starts[:-1], starts[1:])]


def tokenize_documents(documents: Sequence[Sequence[str]], tokenizer, batch_size: int = 2048,
                       progress: bool | None = None) -> TokenizedCorpus:
    """Tokenize every sentence once, `batch_size` at a time, with the fast tokenizer (no [CLS]/[SEP] yet).

    Sentences that tokenize to nothing are dropped, and so are documents left empty. `progress`: a progress bar;
    by default only for corpora of more than 100,000 sentences (WikiText-103 takes minutes, WikiText-2 a second).
    """
    if len(documents) and isinstance(documents[0], str):
        raise TypeError("documents must be lists of sentences (a list of lists of str), got a list of str: for the "
                        "lines of a text file use documents_from_lines(lines) first (or PretrainingDataset.from_lines)")
    fast = _fast(tokenizer)
    sentences = [s for doc in documents for s in doc]
    lengths, pieces = [], []
    show = len(sentences) > 100_000 if progress is None else progress
    for i in tqdm(range(0, len(sentences), batch_size), desc="tokenizing", unit="batch", disable=not show):
        batch = [replace_lone_surrogates(s) for s in sentences[i:i + batch_size]]  # as WordPieceTokenizer.encode
        for encoding in fast.encode_batch(batch, add_special_tokens=False):
            lengths.append(len(encoding.ids))
            if encoding.ids:
                pieces.append(torch.tensor(encoding.ids, dtype=torch.int32))
    ids = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.int32)
    sentence_starts, document_starts, position, s = [0], [0], 0, 0
    for doc in documents:
        kept = 0
        for n in lengths[s:s + len(doc)]:
            if n:
                position += n
                sentence_starts.append(position)
                kept += 1
        s += len(doc)
        if kept:
            document_starts.append(document_starts[-1] + kept)
    return TokenizedCorpus(ids, torch.tensor(sentence_starts), torch.tensor(document_starts))


def corpus_documents(lines: list[str]) -> list[list[str]]:
    """Split a corpus into documents: blank lines or WikiText top-level headings (` = Title = `) start a new one.

    Returns documents as lists of non-empty lines (each a sentence or paragraph).
    """
    documents, current = [], []
    headings_only = _wikitext_style(lines)
    for line in lines:
        text = line.strip()
        is_title = text.startswith("= ") and text.endswith(" =") and not text.startswith("= =")
        if not text or is_title:
            if current and (is_title or not headings_only):
                documents.append(current)
                current = []
            continue
        if text.startswith("= =") and text.endswith("= ="):
            continue  # WikiText section headings are not sentences
        current.append(text)
    if current:
        documents.append(current)
    return documents


def _wikitext_style(lines: list[str]) -> bool:
    """WikiText separates every paragraph by a blank line, so there only headings end a document."""
    return any(line.strip().startswith("= ") and line.strip().endswith(" =") for line in lines[:50])
