"""Pre-training data (lesson 05): documents, NSP pairs, MLM masks, batches, and the statistics they must have."""

import pytest
import torch

from minibert import data
from minibert.corpus import documents_from_lines, split_sentences, tokenize_documents, vocab_info
from minibert.model import IGNORE_INDEX
from minibert.pretraining_data import PretrainingDataset, collate, create_pairs, mask_tokens
from minibert.tokenizer import WordPieceTokenizer


@pytest.fixture(scope="module")
def tok(data_dir):
    return WordPieceTokenizer.from_vocab_file(data.vocab_file("bert-base-uncased"))


@pytest.fixture(scope="module")
def corpus(tok):
    """WikiText-2 validation and test: 120 documents, about 480,000 tokens."""
    lines = data.load_dataset("wikitext-2", "validation") + data.load_dataset("wikitext-2", "test")
    return tokenize_documents(documents_from_lines(lines), tok)


@pytest.fixture(scope="module")
def dataset(corpus, tok):
    return PretrainingDataset(corpus, tok, max_length=128, seed=0)


def test_documents_sentences_and_wikitext_escapes():
    lines = ["First doc , one @-@ two . Second sentence <unk> here !", "Another line of it .", "",
             "Second document : 1 @,@ 000 people .", "", "", "Third ."]
    docs = documents_from_lines(lines)
    assert docs == [["First doc , one-two .", "Second sentence [UNK] here !", "Another line of it ."],
                    ["Second document : 1,000 people ."], ["Third ."]]
    wikitext = documents_from_lines(data.load_dataset("wikitext-2", "validation"))
    assert len(wikitext) == 60 and wikitext[0][0].startswith("Homarus gammarus , known as")
    assert split_sentences("J. R. R. Tolkien wrote it . It sold .") == ["J. R. R. Tolkien wrote it .", "It sold ."]
    assert split_sentences("一。二！") == ["一。", "二！"]


def test_tokenized_once_in_batches_with_the_same_ids_as_encode(corpus, tok):
    assert corpus.num_tokens > 400_000 and corpus.ids.dtype == torch.int32
    doc = corpus[3]
    lines = data.load_dataset("wikitext-2", "validation") + data.load_dataset("wikitext-2", "test")
    sentences = documents_from_lines(lines)[3]
    assert len(doc) == len(sentences)
    for ids, sentence in zip(doc[:5], sentences):
        assert ids.tolist() == tok.encode(sentence, add_special_tokens=False).ids


def test_items_are_cls_a_sep_b_sep_with_segments_and_labels(dataset, tok):
    assert len(dataset) > 3000
    for i in range(0, len(dataset), 97):
        item = dataset[i]
        assert set(item) == {"input_ids", "token_type_ids", "attention_mask", "mlm_labels", "nsp_label"}
        a, b, label = dataset.pairs[i]
        original = torch.cat([torch.tensor([tok.cls_id]), a.long(), torch.tensor([tok.sep_id]), b.long(),
                              torch.tensor([tok.sep_id])])
        ids, labels = item["input_ids"], item["mlm_labels"]
        assert len(ids) <= 128 and len(a) >= 1 and len(b) >= 1
        restored = torch.where(labels != IGNORE_INDEX, labels, ids)  # labels hold the originals
        assert torch.equal(restored, original)
        assert item["token_type_ids"].tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        assert item["attention_mask"].tolist() == [1] * len(ids)
        assert item["nsp_label"].item() == label and label in (0, 1)


def test_masking_statistics_over_100k_tokens(dataset, tok):
    items = [dataset[i] for i in range(len(dataset))]
    ids = torch.cat([x["input_ids"] for x in items])
    labels = torch.cat([x["mlm_labels"] for x in items])
    originals = torch.where(labels != IGNORE_INDEX, labels, ids)
    special = torch.isin(originals, torch.tensor(sorted(tok.special_ids)))
    chosen = labels != IGNORE_INDEX
    assert (~special).sum() > 100_000
    assert not (chosen & special).any(), "a special token ([CLS], [SEP], [UNK]...) was chosen for prediction"
    rate = chosen.sum() / (~special).sum()
    assert abs(rate.item() - 0.15) < 0.003, rate
    masked = chosen & (ids == tok.mask_id)
    kept = chosen & (ids == originals)
    replaced = chosen & ~masked & ~kept
    n = chosen.sum().item()
    for part, expected in ((masked, 0.8), (replaced, 0.1), (kept, 0.1)):
        assert abs(part.sum().item() / n - expected) < 0.01, (part.sum().item() / n, expected)
    assert not torch.isin(ids[replaced], torch.tensor(sorted(tok.special_ids))).any()


def test_random_replacement_never_draws_special_tokens(tok):
    vocab = vocab_info(tok)
    assert not torch.isin(vocab.replacement_ids, torch.tensor(sorted(tok.special_ids))).any()
    assert len(vocab.replacement_ids) == len(tok) - len(tok.special_ids)
    ids = vocab.replacement_ids[torch.randint(len(vocab.replacement_ids), (200_000,))]
    g = torch.Generator().manual_seed(0)
    masked, labels = mask_tokens(ids, vocab, g, mlm_probability=1.0, replace_probabilities=(0.0, 1.0))
    assert (labels != IGNORE_INDEX).all()  # every token chosen, every one replaced at random
    assert not torch.isin(masked, torch.tensor(sorted(tok.special_ids))).any()
    assert masked.unique().numel() > 25_000  # and drawn from the whole rest of the vocabulary


def test_whole_word_masking_masks_every_piece_of_a_word(corpus, tok):
    ds = PretrainingDataset(corpus, tok, max_length=128, seed=1, whole_word=True)
    pieces = torch.tensor([t.startswith("##") for t in tok.id_to_token])
    words_split = 0
    for i in range(0, len(ds), 5):
        item = ds[i]
        original = torch.where(item["mlm_labels"] != IGNORE_INDEX, item["mlm_labels"], item["input_ids"])
        chosen = (item["mlm_labels"] != IGNORE_INDEX).tolist()
        for t in range(1, len(original)):
            if pieces[original[t]] and original[t - 1].item() not in tok.special_ids:
                assert chosen[t] == chosen[t - 1], (i, t)  # a ## piece shares the fate of the piece before it
                words_split += chosen[t]
    assert words_split > 100  # multi-piece words were masked


def test_dynamic_masks_change_per_epoch_and_static_ones_do_not(corpus, tok):
    dynamic = PretrainingDataset(corpus, tok, max_length=64, seed=0)
    static = PretrainingDataset(corpus, tok, max_length=64, seed=0, static_masking=True)
    first = [dynamic[i]["mlm_labels"] for i in range(20)]
    assert all(torch.equal(a, static[i]["mlm_labels"]) for i, a in enumerate(first))
    dynamic.set_epoch(1)
    static.set_epoch(1)
    assert sum(not torch.equal(a, dynamic[i]["mlm_labels"]) for i, a in enumerate(first)) >= 18
    assert all(torch.equal(a, static[i]["mlm_labels"]) for i, a in enumerate(first))


def test_the_same_seed_gives_the_same_examples(corpus, tok):
    a, b = (PretrainingDataset(corpus, tok, max_length=64, seed=7) for _ in range(2))
    c = PretrainingDataset(corpus, tok, max_length=64, seed=8)
    assert torch.equal(a.pairs.spans, b.pairs.spans) and not torch.equal(a.pairs.spans[:100], c.pairs.spans[:100])
    for i in (0, 10, 500):
        assert all(torch.equal(a[i][k], b[i][k]) for k in a[i])


def test_dupe_factor_pairs_the_corpus_again_with_other_pairs(corpus, tok):
    once = PretrainingDataset(corpus, tok, max_length=64, seed=3)
    three = PretrainingDataset(corpus, tok, max_length=64, seed=3, dupe_factor=3)
    n = len(once)
    assert torch.equal(three.pairs.spans[:n], once.pairs.spans)  # the first copy is the plain dataset
    assert 2.8 * n < len(three) < 3.2 * n
    second = three.pairs.spans[n:2 * n]
    assert (second[:, 2] != once.pairs.spans[: len(second), 2]).float().mean() > 0.5  # other B sentences
    assert abs(three.pairs.nsp_labels.float().mean().item() - 0.5) < 0.03
    for bad in (dict(dupe_factor=0), dict(dupe_factor=1.5), dict(mlm_probability=0.0), dict(mlm_probability=1.2)):
        with pytest.raises(ValueError, match="dupe_factor|mlm_probability"):
            PretrainingDataset(corpus, tok, max_length=64, **bad)


def test_nsp_pairs_are_half_is_next_and_not_next_comes_from_another_document(corpus):
    token_doc_starts = corpus.sentence_starts[corpus.document_starts]  # (n_docs + 1,) token offset of each document
    labels = []
    for seed in range(5):
        pairs = create_pairs(corpus, max_length=32, seed=seed)
        spans, nsp = pairs.spans, pairs.nsp_labels
        # the document each span's tokens really lie in
        doc_a = torch.searchsorted(token_doc_starts, spans[:, 0].contiguous(), right=True) - 1
        doc_b = torch.searchsorted(token_doc_starts, spans[:, 2].contiguous(), right=True) - 1
        assert torch.equal(doc_a, pairs.documents[:, 0]) and torch.equal(doc_b, pairs.documents[:, 1])
        assert (doc_a[nsp == 1] != doc_b[nsp == 1]).all(), "a NotNext sentence came from the same document"
        assert (doc_a[nsp == 0] == doc_b[nsp == 0]).all()
        assert (spans[nsp == 0, 1] <= spans[nsp == 0, 2]).all()  # IsNext: B comes after A
        lengths = spans[:, 1] - spans[:, 0] + spans[:, 3] - spans[:, 2]
        assert lengths.max() <= 29 and lengths.min() >= 2
        labels.append(nsp)
    labels = torch.cat(labels)
    assert len(labels) > 50_000
    assert abs((labels == 0).float().mean().item() - 0.5) < 0.01


def test_short_sequences_now_and_then(corpus):
    pairs = create_pairs(corpus, max_length=128, seed=0)
    lengths = pairs.spans[:, 1] - pairs.spans[:, 0] + pairs.spans[:, 3] - pairs.spans[:, 2]
    assert (lengths == 125).float().mean() > 0.5  # most fill the sequence
    assert 0.02 < (lengths < 100).float().mean() < 0.3


def test_a_single_document_is_a_clear_error(tok):
    with pytest.raises(ValueError, match="at least 2 documents.*blank lines"):
        PretrainingDataset([["One sentence here.", "And another one.", "A third."]], tok)


def test_collate_pads_to_the_longest_and_padding_is_never_a_target(dataset, tok):
    items = [dataset[i] for i in range(40)]
    items = sorted(items, key=lambda x: len(x["input_ids"]))[:4]  # the shortest ones: padding guaranteed
    batch = dataset.collate(items)
    longest = max(len(x["input_ids"]) for x in items)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "mlm_labels", "nsp_labels"}
    assert batch["input_ids"].shape == (4, longest) and batch["nsp_labels"].shape == (4,)
    pad = batch["attention_mask"] == 0
    assert pad.any()
    assert (batch["input_ids"][pad] == tok.pad_id).all() and (batch["mlm_labels"][pad] == IGNORE_INDEX).all()
    assert collate(items, pad_to_multiple_of=8)["input_ids"].shape[1] % 8 == 0


def test_works_with_a_tokenizers_library_tokenizer(tok):
    from tokenizers import BertWordPieceTokenizer

    fast = BertWordPieceTokenizer(str(data.vocab_file("bert-base-uncased")), lowercase=True)
    docs = documents_from_lines(data.load_dataset("wikitext-2", "validation", limit=400))
    a = tokenize_documents(docs, fast)
    b = tokenize_documents(docs, tok)
    assert torch.equal(a.ids, b.ids)
    assert vocab_info(fast).special_ids == vocab_info(tok).special_ids


def _google_truncate_seq_pair(la, lb, max_tokens):
    """Google's loop: while too long, drop a token from the longer side (B on ties); returns the lengths left."""
    while la + lb > max_tokens:
        if la > lb:
            la -= 1
        else:
            lb -= 1
    return la, lb


def test_truncation_is_googles_truncate_seq_pair():
    from minibert.pretraining_data import _truncate, google_truncated_lengths

    for max_tokens in (5, 29, 125):
        for la in range(1, 140, 3):
            for lb in range(1, 140, 7):
                assert google_truncated_lengths(la, lb, max_tokens) == _google_truncate_seq_pair(la, lb, max_tokens)
    # each dropped token comes off the front or the back with probability 1/2
    import random

    rng = random.Random(0)
    fronts = 0
    for _ in range(20_000):
        start, end = _truncate(100, 110, keep=9, rng=rng)  # drop one token
        assert (start, end) in ((101, 110), (100, 109))
        fronts += start == 101
    assert abs(fronts / 20_000 - 0.5) < 0.015
    start, end = _truncate(0, 50, keep=20, rng=rng)
    assert end - start == 20 and 0 < start < 30  # 30 dropped, from both ends


def _one_token_sentences(doc_lengths):
    """A corpus whose sentences are one token each and whose token ids are their positions (spans say it all)."""
    from minibert.corpus import TokenizedCorpus

    n = sum(doc_lengths)
    doc_starts = torch.tensor([0, *torch.tensor(doc_lengths).cumsum(0).tolist()])
    return TokenizedCorpus(torch.arange(n, dtype=torch.int32), torch.arange(n + 1), doc_starts)


def test_unused_sentences_are_put_back_and_a_is_a_random_prefix():
    """Google's chunks: A is a random prefix of the chunk; after a NotNext pair, the chunk's sentences that B did not
    use start the next chunk. With one-token sentences and max_length - 3 = 8 nothing is truncated, so the A spans
    and the IsNext B spans of a document must tile it exactly (but for a last one-token chunk, which is skipped)."""
    lengths = [5 + (7 * d) % 40 for d in range(40)]
    corpus = _one_token_sentences(lengths)
    pairs = create_pairs(corpus, max_length=11, seed=3, short_seq_prob=0.0)
    spans, nsp, docs = pairs.spans, pairs.nsp_labels, pairs.documents
    assert ((spans[:, 1] - spans[:, 0]) + (spans[:, 3] - spans[:, 2]) <= 8).all()
    doc_starts = corpus.document_starts.tolist()
    not_next_seen = 0
    for d in range(len(lengths)):
        rows = (docs[:, 0] == d).nonzero().squeeze(1).tolist()
        covered = []
        for r in rows:
            a0, a1, b0, b1 = spans[r].tolist()
            covered += range(a0, a1)
            if nsp[r] == 0:
                assert b0 == a1  # IsNext: B is the rest of the chunk, right after A
                covered += range(b0, b1)
            else:
                not_next_seen += 1
                assert not doc_starts[d] <= b0 < doc_starts[d + 1]
        document = list(range(doc_starts[d], doc_starts[d + 1]))
        assert covered in (document, document[:-1]), d  # nothing lost after NotNext pairs, nothing used twice
    assert not_next_seen > 50
    a_lengths = (spans[nsp == 0, 1] - spans[nsp == 0, 0]).tolist()
    assert set(a_lengths) == set(range(1, 8))  # A: a random prefix of the 8-token chunk, 1 to 7 sentences


def test_short_target_lengths_are_drawn_per_document():
    """With probability short_seq_prob a document gets a random shorter target length, kept for all its chunks."""
    corpus = _one_token_sentences([600] * 200)
    pairs = create_pairs(corpus, max_length=35, seed=0, short_seq_prob=0.1)
    lengths = (pairs.spans[:, 1] - pairs.spans[:, 0]) + (pairs.spans[:, 3] - pairs.spans[:, 2])
    is_next = pairs.nsp_labels == 0
    targets = []
    for d in range(200):
        mine = lengths[is_next & (pairs.documents[:, 0] == d)]  # IsNext pairs: the whole chunk, target tokens
        target = mine.max().item()
        assert (mine == target).float().mean() > 0.8, d  # every chunk but the last has the document's target
        targets.append(target)
    targets = torch.tensor(targets)
    assert 0.04 < (targets < 32).float().mean() < 0.18  # 10% short, minus the few that draw 32
    assert targets.min() >= 2 and targets.max() == 32 and len(targets[targets < 32].unique()) > 5


def test_a_lone_surrogate_in_the_corpus_is_dropped_as_encode_drops_it(data_dir):
    """Tokenizing a corpus goes through the fast path, which raised a TypeError on a lone surrogate (issue 13)."""
    tok = WordPieceTokenizer.from_vocab_file(data.vocab_file("bert-base-uncased"))
    corpus = tokenize_documents([["the cat\ud800 sat .", "a dog ran ."], ["hello\udfffworld ."]], tok)
    expected = [tok.encode(s, add_special_tokens=False).ids for s in ("the cat\ud800 sat .", "a dog ran .",
                                                                       "hello\udfffworld .")]
    assert corpus.ids.tolist() == [i for ids in expected for i in ids]
