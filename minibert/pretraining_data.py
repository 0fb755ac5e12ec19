"""Pre-training data, lesson 05: from raw text to the masked, paired examples that BERT learns from.

What it does:
- `documents_from_lines(lines)`: a corpus (WikiText, or any text file with one sentence or paragraph per line and
  documents separated by blank lines or ` = Title = ` headings) -> documents -> sentences. WikiText's `@-@` style
  escapes are undone and its `<unk>` becomes `[UNK]`; paragraphs are cut into sentences at `. ! ?` (and `。！？`).
- `tokenize_documents(documents, tokenizer)`: every sentence tokenized once, in batches, by the fast (Rust)
  tokenizer, into a `TokenizedCorpus`: one flat tensor of token ids plus the offsets of sentences and documents.
- `create_pairs(corpus, max_length, seed)`: sentence pairs for next-sentence prediction (NSP), built the way Google's
  `create_pretraining_data.py` builds them. Per document, a target length (max_length - 3, or with probability 0.1 a
  random shorter one); sentences are gathered into a chunk until it is that long; segment A is a random prefix of the
  chunk; B is the rest of the chunk (IsNext, label 0) or, half of the time, a run of sentences from a *different*
  document (NotNext, label 1, as in `transformers`), and then the unused sentences of the chunk are put back; the
  longer of A and B is truncated, one token at a time, at random from the front or the back.
- `mask_tokens(input_ids, vocab, generator)`: masked-language-model (MLM) targets: 15% of the non-special tokens are
  chosen; of those 80% become [MASK], 10% a random non-special token, 10% stay as they are. `mlm_labels` holds the
  original id where a token is to be predicted and -100 everywhere else. `whole_word=True` chooses whole words (a
  word and its `##` pieces together).
- `PretrainingDataset`: the examples `[CLS] A [SEP] B [SEP]` as a torch Dataset. Each item is a dict of
  `input_ids`, `token_type_ids` (0 for [CLS] A [SEP], 1 for B [SEP]), `attention_mask`, `mlm_labels`, `nsp_label`.
  Masks are drawn afresh each epoch (`set_epoch`, "dynamic masking", as RoBERTa does) or once (`static_masking`),
  from a generator seeded by (seed, epoch, index): the same seed gives the same examples, whatever the data order,
  the number of DataLoader workers or of GPUs.
- `collate(batch)`: pads only to the longest sequence of the batch, so little compute goes to padding.

Two departures from Google's script, both to keep the labels honest: (1) Google makes every chunk of a single
sentence NotNext and may draw the "random" document 10 times and then give up and use the same one; here the coin
is tossed first (exactly 50% IsNext in expectation), a one-sentence IsNext chunk is cut at a random token, and the
random document is drawn from the *other* documents only. (2) Google picks the target length once per duplicate of
the corpus and masks once per duplicate (`dupe_factor=10`); we draw masks per epoch, and pick the pairs once, or
`dupe_factor` times (each time with other targets, cuts and random sentences, seeds seed + 7919 k) on a small corpus
whose pairs would otherwise repeat every epoch and be memorised by NSP (the course recipe uses 5).

What it leaves out: packing several examples into one row, RoBERTa's FULL-SENTENCES format without NSP, span
masking (SpanBERT), and streaming corpora too large for memory (WikiText-103's 100M tokens take ~400 MB as int32).

Shapes: T sequence length (at most max_length), B batch, V vocabulary size.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from minibert.data import corpus_documents
from minibert.fast_wordpiece import replace_lone_surrogates

IGNORE_INDEX = -100  # the label of every position the MLM loss must skip (PyTorch's cross_entropy default)
IS_NEXT, NOT_NEXT = 0, 1  # NSP labels, as in `transformers` and Google's BERT

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

    Documents end at blank lines or WikiText ` = Title = ` headings (see `minibert.data.corpus_documents`);
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


# ------------------------------------------------------------------------------------------ next-sentence pairs


@dataclass
class Pairs:
    """NSP examples as spans of `corpus.ids`: A is ids[a_start:a_end], B is ids[b_start:b_end].

    Spans instead of copies: a million pairs take 50 MB, not gigabytes. `pairs[i]` gives (A ids, B ids, nsp_label).
    """

    corpus: TokenizedCorpus
    spans: torch.Tensor  # (N, 4) int64: a_start, a_end, b_start, b_end
    nsp_labels: torch.Tensor  # (N,) int64: 0 IsNext, 1 NotNext
    documents: torch.Tensor  # (N, 2) int64: the document of A and the document of B

    def __len__(self) -> int:
        return len(self.spans)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        a0, a1, b0, b1 = self.spans[i].tolist()
        return self.corpus.ids[a0:a1], self.corpus.ids[b0:b1], int(self.nsp_labels[i])


def google_truncated_lengths(la: int, lb: int, max_tokens: int) -> tuple[int, int]:
    """Google's truncate_seq_pair, counted instead of looped: drop a token from the longer side (B on ties)
    until the two fit in max_tokens. Returns the lengths that remain."""
    excess = la + lb - max_tokens
    if excess <= 0:
        return la, lb
    if la > lb:
        cut = min(excess, la - lb)
        la, excess = la - cut, excess - cut
    elif lb > la:
        cut = min(excess, lb - la)
        lb, excess = lb - cut, excess - cut
    return la - excess // 2, lb - (excess + 1) // 2  # equal now: they take turns, B first


def _truncate(start: int, end: int, keep: int, rng: random.Random) -> tuple[int, int]:
    """Drop (end - start - keep) tokens, each one from the front or the back with probability 1/2."""
    drop = end - start - keep
    if drop <= 0:
        return start, end
    front = bin(rng.getrandbits(drop)).count("1")  # Binomial(drop, 1/2): one fair coin per dropped token
    return start + front, end - (drop - front)


def create_pairs(corpus: TokenizedCorpus, max_length: int = 128, seed: int = 0, short_seq_prob: float = 0.1,
                 nsp_probability: float = 0.5) -> Pairs:
    """Sentence pairs (A, B, IsNext/NotNext) from every document, as Google's create_pretraining_data.py makes them.

    max_length counts [CLS] A [SEP] B [SEP], so A and B share max_length - 3 tokens.
    """
    if corpus.num_documents < 2:
        raise ValueError(
            f"next-sentence prediction needs at least 2 documents, and this corpus has {corpus.num_documents}: "
            f"a NotNext pair takes its sentence B from a *different* document, and with one document every such "
            f"pair would be mislabeled. How to fix: separate the documents of your text file with blank lines (or "
            f"WikiText ' = Title = ' headings), or add text.")
    if max_length < 5:
        raise ValueError(f"max_length={max_length} leaves no room for A and B next to [CLS] and two [SEP]")
    rng = random.Random(seed)
    max_tokens = max_length - 3
    starts = corpus.sentence_starts.tolist()  # token offset of every sentence, python ints for speed
    doc_starts = corpus.document_starts.tolist()
    n_docs = corpus.num_documents
    spans, labels, docs = [], [], []
    for d in range(n_docs):
        first, last = doc_starts[d], doc_starts[d + 1]  # sentences first .. last-1
        target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
        chunk_start, i = first, first
        while i < last:
            i += 1  # the chunk is sentences chunk_start .. i-1
            if i < last and starts[i] - starts[chunk_start] < target:
                continue
            n_sentences = i - chunk_start
            a0, end = starts[chunk_start], starts[i]
            if end - a0 < 2:  # a one-token chunk (a last, one-word sentence) cannot give both A and B: skip it
                chunk_start = i
                continue
            not_next = rng.random() < nsp_probability  # the coin first, so that labels are exactly 50/50
            a_end = rng.randint(chunk_start + 1, i - 1) if n_sentences >= 2 else i  # A = sentences up to a_end
            if not_next:
                a1 = starts[a_end]
                other = rng.randint(0, n_docs - 2)
                other += other >= d  # any document but this one
                o_first, o_last = doc_starts[other], doc_starts[other + 1]
                j = rng.randint(o_first, o_last - 1)  # B starts at a random sentence of the other document
                k = j + 1
                while k < o_last and starts[k] - starts[j] < target - (a1 - a0):
                    k += 1
                b0, b1, b_doc = starts[j], starts[k], other
                i = a_end  # put the unused sentences of the chunk back
            elif n_sentences >= 2:
                a1, b0, b1, b_doc = starts[a_end], starts[a_end], end, d
            else:  # IsNext from a single sentence: cut it at a random token
                a1 = b0 = rng.randint(a0 + 1, end - 1)
                b1, b_doc = end, d
            la, lb = google_truncated_lengths(a1 - a0, b1 - b0, max_tokens)
            a0, a1 = _truncate(a0, a1, la, rng)
            b0, b1 = _truncate(b0, b1, lb, rng)
            spans.append((a0, a1, b0, b1))
            labels.append(int(not_next))
            docs.append((d, b_doc))
            chunk_start = i
    return Pairs(corpus, torch.tensor(spans, dtype=torch.int64).view(-1, 4), torch.tensor(labels, dtype=torch.int64),
                 torch.tensor(docs, dtype=torch.int64).view(-1, 2))


def concat_pairs(parts: Sequence[Pairs]) -> Pairs:
    """Several `Pairs` of the same corpus as one (the pairs of each part, one part after the other)."""
    if len(parts) == 1:
        return parts[0]
    if any(p.corpus is not parts[0].corpus for p in parts):
        raise ValueError("concat_pairs joins pairs of one corpus only")
    return Pairs(parts[0].corpus, torch.cat([p.spans for p in parts]), torch.cat([p.nsp_labels for p in parts]),
                 torch.cat([p.documents for p in parts]))


# ------------------------------------------------------------------------------------------ masked language model


def _word_starts(input_ids: torch.Tensor, candidate: torch.Tensor, vocab: VocabInfo) -> torch.Tensor:
    """(T,) bool: candidates that begin a word (not a ## piece, or a ## piece left first by truncation)."""
    previous = torch.cat([torch.zeros(1, dtype=torch.bool), candidate[:-1]])  # (T,) was the token before a candidate
    return candidate & (~vocab.continuation[input_ids] | ~previous)


def _choose(input_ids: torch.Tensor, vocab: VocabInfo, generator, mlm_probability: float,
            whole_word: bool) -> torch.Tensor:
    """(T,) ids -> (T,) bool: the positions to predict, round(15% of the non-special tokens) of them (at least 1)."""
    candidate = ~vocab.is_special[input_ids]  # (T,)
    n_candidates = int(candidate.sum())
    chosen = torch.zeros_like(candidate)
    if n_candidates == 0:
        return chosen
    budget = max(1, round(n_candidates * mlm_probability))
    if not whole_word:
        scores = torch.rand(input_ids.shape, generator=generator).masked_fill(~candidate, 2.0)  # (T,)
        chosen[scores.argsort()[:budget]] = True  # `budget` random candidates
        return chosen
    word = torch.cumsum(_word_starts(input_ids, candidate, vocab).long(), 0) - 1  # (T,) word index of each token
    word = word.masked_fill(~candidate, -1)
    lengths = torch.bincount(word[candidate]).tolist()  # tokens per word
    picked, count = [], 0
    for w in torch.randperm(len(lengths), generator=generator).tolist():  # words in random order, as Google does
        if count >= budget:
            break
        if count + lengths[w] <= budget:  # a word that would overshoot is skipped
            picked.append(w)
            count += lengths[w]
    if picked:
        chosen = torch.isin(word, torch.tensor(picked))
    return chosen


def mask_tokens(input_ids: torch.Tensor, vocab, generator: torch.Generator | None = None,
                mlm_probability: float = 0.15, whole_word: bool = False,
                replace_probabilities: tuple[float, float] = (0.8, 0.1)) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the tokens to predict and corrupt them: (T,) or (B, T) ids -> (masked ids, mlm_labels), same shape.

    `vocab`: a `VocabInfo` (or a tokenizer, turned into one at each call: slower). Special tokens ([CLS], [SEP],
    [PAD], [UNK], ...) are never chosen and never drawn as the random replacement. Of the chosen tokens, 80% become
    [MASK], 10% a random non-special token, 10% stay. mlm_labels holds the original id at the chosen positions and
    -100 (IGNORE_INDEX) elsewhere.
    """
    vocab = vocab_info(vocab)
    if input_ids.dim() == 2:  # one row at a time
        rows = [mask_tokens(row, vocab, generator, mlm_probability, whole_word, replace_probabilities)
                for row in input_ids]
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
    if input_ids.dim() != 1:
        raise ValueError(f"input_ids must be (T,) or (B, T), got shape {tuple(input_ids.shape)}")
    input_ids = input_ids.long()
    chosen = _choose(input_ids, vocab, generator, mlm_probability, whole_word)  # (T,) bool
    labels = input_ids.masked_fill(~chosen, IGNORE_INDEX)  # (T,)
    p_mask, p_random = replace_probabilities
    u = torch.rand(input_ids.shape, generator=generator)  # (T,) one draw decides [MASK] / random / keep
    to_mask = chosen & (u < p_mask)
    to_random = chosen & (u >= p_mask) & (u < p_mask + p_random)
    pool = vocab.replacement_ids
    random_ids = pool[torch.randint(len(pool), input_ids.shape, generator=generator)]  # (T,) non-special ids
    masked = torch.where(to_mask, vocab.mask_id, torch.where(to_random, random_ids, input_ids))
    return masked, labels


# ------------------------------------------------------------------------------------------ dataset and batches


def _item_seed(seed: int, epoch: int, index: int) -> int:
    """One generator seed per (seed, epoch, example): masks do not depend on data order, workers or ranks."""
    return ((seed * 1_000_003 + epoch) * 2_147_483_647 + index) & 0x7FFF_FFFF_FFFF_FFFF


class PretrainingDataset(torch.utils.data.Dataset):
    """[CLS] A [SEP] B [SEP] examples with NSP labels and MLM masks, reproducible from `seed`.

    `documents`: lists of sentences (see `documents_from_lines`) or an already `TokenizedCorpus`.
    Items are dicts of `input_ids` (T,), `token_type_ids` (T,), `attention_mask` (T,), `mlm_labels` (T,) and
    `nsp_label` (); batch them with `dataset.collate`.
    """

    def __init__(self, documents, tokenizer, max_length: int = 128, seed: int = 0, mlm_probability: float = 0.15,
                 short_seq_prob: float = 0.1, whole_word: bool = False, static_masking: bool = False,
                 dupe_factor: int = 1):
        self.vocab = vocab_info(tokenizer)
        corpus = documents if isinstance(documents, TokenizedCorpus) else tokenize_documents(documents, tokenizer)
        if not isinstance(dupe_factor, int) or dupe_factor < 1:
            raise ValueError(f"dupe_factor must be a positive int (how many times the corpus is paired, each time "
                             f"with other pairs), got {dupe_factor!r}")
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be between 0 and 1 (BERT: 0.15), got {mlm_probability!r}")
        # dupe_factor > 1: the corpus is paired that many times, each time with other cuts and other random B
        # sentences (Google's dupe_factor); a small corpus then gives NSP many different pairs to learn from
        self.pairs = concat_pairs([create_pairs(corpus, max_length, seed + 7919 * k, short_seq_prob)
                                   for k in range(dupe_factor)])
        if len(self.pairs) == 0:
            raise ValueError("the corpus gave no sentence pairs: it needs sentences of at least 2 tokens")
        self.max_length, self.seed, self.mlm_probability = max_length, seed, mlm_probability
        self.whole_word, self.static_masking = whole_word, static_masking
        self.epoch = 0

    @classmethod
    def from_lines(cls, lines, tokenizer, **kwargs) -> PretrainingDataset:
        """From the lines of a text file or `load_dataset` records: `PretrainingDataset.from_lines(records, tok)`."""
        return cls(documents_from_lines(lines), tokenizer, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """New masks for a new epoch (dynamic masking); no effect with static_masking=True."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        a, b, nsp_label = self.pairs[index]
        v = self.vocab
        cls_, sep = torch.tensor([v.cls_id]), torch.tensor([v.sep_id])
        input_ids = torch.cat([cls_, a.long(), sep, b.long(), sep])  # (T,) T = len(A) + len(B) + 3
        token_type_ids = torch.zeros_like(input_ids)
        token_type_ids[len(a) + 2:] = 1  # B and its [SEP] are segment 1
        epoch = 0 if self.static_masking else self.epoch
        generator = torch.Generator().manual_seed(_item_seed(self.seed, epoch, index))
        masked, mlm_labels = mask_tokens(input_ids, v, generator, self.mlm_probability, self.whole_word)
        return {"input_ids": masked, "token_type_ids": token_type_ids,
                "attention_mask": torch.ones_like(input_ids), "mlm_labels": mlm_labels,
                "nsp_label": torch.tensor(nsp_label)}

    def collate(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        """`collate_fn` for a DataLoader: pads with this vocabulary's [PAD] id."""
        return collate(batch, self.vocab.pad_id)


def collate(batch: list[dict], pad_id: int = 0, pad_to_multiple_of: int = 1) -> dict[str, torch.Tensor]:
    """Stack items into a batch padded to its longest sequence: input_ids, token_type_ids, attention_mask,
    mlm_labels (B, T) and nsp_labels (B,): the keyword names of `BertForPreTraining.forward`, so `model(**batch)`.

    Padding gets attention_mask 0 and mlm_labels -100, so it is never attended to and never predicted.
    """
    if not batch:
        raise ValueError("collate got an empty batch")
    T = max(len(item["input_ids"]) for item in batch)
    T = -(-T // pad_to_multiple_of) * pad_to_multiple_of  # round up (8 suits tensor cores)
    B = len(batch)
    out = {"input_ids": torch.full((B, T), pad_id, dtype=torch.long),
           "token_type_ids": torch.zeros(B, T, dtype=torch.long),
           "attention_mask": torch.zeros(B, T, dtype=torch.long),
           "mlm_labels": torch.full((B, T), IGNORE_INDEX, dtype=torch.long)}
    for row, item in enumerate(batch):
        n = len(item["input_ids"])
        for key in out:
            out[key][row, :n] = item[key]
    if "nsp_label" in batch[0]:
        out["nsp_labels"] = torch.stack([torch.as_tensor(item["nsp_label"]) for item in batch]).long()  # (B,)
    return out


def padding_fraction(batch: dict[str, torch.Tensor]) -> float:
    """The share of a batch's positions that are padding (compute spent on nothing)."""
    return 1.0 - batch["attention_mask"].float().mean().item()
