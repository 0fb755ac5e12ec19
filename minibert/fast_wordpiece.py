"""The fast paths of WordPiece, tested equal to the textbook versions: a trainer for real corpora, and the Rust twin.

What it does:
- `train_vocab_fast`: the same vocab as `minibert.wordpiece.train_vocab`, with the pair counts kept up to date as
  merges happen (only the words that contain the merged pair are recounted) and a heap of scores, so that training
  on WikiText takes seconds instead of hours.
- `build_fast_tokenizer(tokenizer)`: the same tokenizer as a Rust `tokenizers.Tokenizer` (BERT's normalizer and
  pre-tokenizer, the WordPiece model, the [CLS]/[SEP] templates), which `WordPieceTokenizer.encode_batch` uses: the
  same ids, tokens and offsets as the pure-Python encoder (the tests check it on every line of the course's corpora).
- `replace_lone_surrogates`: the one text the Rust tokenizer refuses (a lone surrogate has no UTF-8 form) becomes one
  it takes, with the same tokens and offsets.

What it leaves out: parallel training, and the Rust trainer of `tokenizers` (its WordPiece trainer is BPE's).
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict

from minibert.wordpiece import CLS, PREFIX, SEP, SPECIAL_TOKENS, UNK, count_words, pair_score

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


def build_fast_tokenizer(tokenizer):
    """A new `tokenizers.Tokenizer` with the same vocab and options: BERT's normalizer and pre-tokenizer,
    the WordPiece model (`##`, the 100-character limit), [CLS]/[SEP] templates and the special tokens."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    fast = Tokenizer(models.WordPiece(dict(tokenizer.vocab), unk_token=UNK, continuing_subword_prefix=PREFIX,
                                      max_input_chars_per_word=tokenizer.max_input_chars_per_word))
    fast.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=tokenizer.tokenize_chinese_chars,
                                                 strip_accents=tokenizer.strip_accents, lowercase=tokenizer.lowercase)
    fast.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fast.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, tokenizer.cls_id), (SEP, tokenizer.sep_id)])
    fast.decoder = decoders.WordPiece(prefix=PREFIX)
    fast.add_special_tokens(list(SPECIAL_TOKENS))
    return fast


def train_vocab_fast(texts, vocab_size: int, lowercase: bool = True, strip_accents: bool | None = None,
                     tokenize_chinese_chars: bool = True, min_frequency: int = 2) -> list[str]:
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
    return vocab
