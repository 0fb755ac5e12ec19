"""Pre-training data, lesson 05: from raw text to the masked, paired examples that BERT learns from.

What it does:
- The text itself, documents of sentences tokenized once into a `TokenizedCorpus`: `minibert.corpus`.
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

What it leaves out: packing several examples into one row, RoBERTa's FULL-SENTENCES format without NSP, and span
masking (SpanBERT).

Shapes: T sequence length (at most max_length), B batch, V vocabulary size.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from minibert.corpus import TokenizedCorpus, VocabInfo, documents_from_lines, tokenize_documents, vocab_info
from minibert.model import IGNORE_INDEX

IS_NEXT, NOT_NEXT = 0, 1  # NSP labels, as in `transformers` and Google's BERT


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
