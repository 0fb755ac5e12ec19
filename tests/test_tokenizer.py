"""minibert.tokenizer is BERT's tokenizer: golden comparisons with `tokenizers` on the course's corpora, hard cases,
every Unicode code point, pairs, truncation, padding, decoding, training, errors and the exercise checkers."""

from __future__ import annotations

import copy
import pickle
import random
import sys
import unicodedata

import pytest
from tokenizers import BertWordPieceTokenizer
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

from minibert import tokenizer as T
from minibert import wordpiece as W
from minibert.checks import CheckFailed
from minibert.checks.wordpiece import check_encode_word, check_pair_score
from minibert.data import DatasetUnavailableError, load_dataset, vocab_file
from minibert.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer, train_wordpiece

FIELDS = ("ids", "tokens", "offsets", "word_ids", "type_ids", "attention_mask")


def _data(name, split, field):
    try:
        records = load_dataset(name, split)
    except DatasetUnavailableError as e:
        pytest.skip(str(e))
    return list(dict.fromkeys(r[field] for r in records))  # SQuAD repeats each context once per question


def _vocab(name):
    try:
        return str(vocab_file(name))
    except DatasetUnavailableError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def uncased():
    path = _vocab("bert-base-uncased")
    return WordPieceTokenizer.from_vocab_file(path), BertWordPieceTokenizer(path, lowercase=True)


@pytest.fixture(scope="module")
def chinese():
    path = _vocab("bert-base-chinese")  # bert-base-chinese has do_lower_case=False
    return WordPieceTokenizer.from_vocab_file(path, lowercase=False), BertWordPieceTokenizer(path, lowercase=False)


def assert_same(mine, ref, what):
    """Every field equal; otherwise say which text and where it first differs."""
    for field in FIELDS:
        a, b = getattr(mine, field), getattr(ref, field)
        if list(a) != list(b):
            i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            raise AssertionError(f"{what}: {field} differ first at token {i}: ours {a[i:i + 3]}, tokenizers "
                                 f"{b[i:i + 3]} (tokens here: {mine.tokens[max(0, i - 2):i + 3]} vs "
                                 f"{ref.tokens[max(0, i - 2):i + 3]})")


def assert_corpus(tok, ref, texts, name):
    expected = ref.encode_batch(texts)
    for i, (text, e) in enumerate(zip(texts, expected)):
        assert_same(tok.encode(text), e, f"{name} line {i} {text[:60]!r}")


# ------------------------------------------------------------------------------------- real corpora, id for id


def test_wikitext2_every_line(uncased):
    tok, ref = uncased
    lines = _data("wikitext-2", "validation", "text") + _data("wikitext-2", "test", "text")
    assert len(lines) > 3000
    assert_corpus(tok, ref, lines, "wikitext-2")


def test_sst2_dev_every_sentence(uncased):
    assert_corpus(*uncased, _data("sst2", "validation", "sentence"), "sst2")


def test_squad_dev_every_context(uncased):
    contexts = _data("squad", "validation", "context")
    assert len(contexts) == 2067
    assert_corpus(*uncased, contexts, "squad")


def test_chinese_samples_with_the_chinese_vocab(chinese):
    tok, ref = chinese
    for name, split, field in [("zh-wiki-sample", "train", "text"), ("chnsenticorp", "train", "sentence"),
                               ("cmrc2018", "validation", "context")]:
        assert_corpus(tok, ref, _data(name, split, field), name)
    assert tok.tokenize("我爱北京天安门") == list("我爱北京天安门")  # CJK characters split, one token each


def test_chinese_text_with_the_uncased_vocab(uncased):
    assert_corpus(*uncased, _data("zh-wiki-sample", "train", "text"), "zh-wiki-sample (uncased)")
    assert_corpus(*uncased, _data("chnsenticorp", "train", "sentence"), "chnsenticorp (uncased)")
    assert_corpus(*uncased, _data("cmrc2018", "validation", "context"), "cmrc2018 (uncased)")


def test_english_text_with_the_chinese_vocab(chinese):
    """Every English corpus with the cased bert-base-chinese vocab too: no lowercasing, accents kept."""
    lines = _data("wikitext-2", "validation", "text") + _data("wikitext-2", "test", "text")
    assert_corpus(*chinese, lines, "wikitext-2 (chinese)")
    assert_corpus(*chinese, _data("sst2", "validation", "sentence"), "sst2 (chinese)")
    assert_corpus(*chinese, _data("squad", "validation", "context"), "squad (chinese)")


def test_fast_path_is_the_same_tokenizer(uncased, chinese):
    for (tok, ref), texts in [(uncased, _data("wikitext-2", "validation", "text")),
                              (chinese, _data("chnsenticorp", "train", "sentence")[:3000])]:
        for i, (ours, e) in enumerate(zip(tok.encode_batch(texts), ref.encode_batch(texts))):
            assert_same(ours, e, f"encode_batch line {i}")
        raw = tok.fast.encode_batch(texts[:200], add_special_tokens=False)
        assert [e.tokens for e in raw] == [tok.tokenize(t) for t in texts[:200]]


# ----------------------------------------------------------------------------------------------- hard cases

HARD_CASES = [
    "", " ", "   \t\n  ", "\u3000\u00a0\u2028\u2029", "\n\n\n",
    "\x00", "a\x00b", "\ufffd", "x\ufffdy", "ab\u200bcd", "zero\u200dwidth\u200cjoiner\u2060", "\ufeffbom",
    "\x7f\x85\x0b\x0c",
    "ctrl\x01\x02\x1b[0m", "soft\u00adhyphen", "rtl \u202eevil\u202c text", "\ue000private\U000f0000",
    "😀", "I ❤️ NY 🗽🇺🇸", "👩‍👩‍👧‍👦 family", "👍🏽👍🏿", "🥰🧠🫠", "a😀b", "★☆♥♠",
    "café", "cafe\u0301", "naïve Noël", "İstanbul", "ΟΔΟΣ Σ ς", "Straße STRASSE", "Ǆemal ǅ ǆ", "ﬁne ﬃ ligatures",
    "Ångström", "Việt Nam tiếng Việt", "e\u0301\u0301\u0323", "a\u0323\u0301", "\u0301start", "ŉ ǰ ΐ ẞ",
    "ᾼ ῼ ᾳ", "Ⅻ ⅻ", "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３！", "K K Å", "dotless ı and dotted İ i̇",
    "a" * 99, "a" * 100, "a" * 101, "b" * 300, "é" * 100, "é" * 101, "İ" * 60, "中" * 150,
    "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "日本語のテキストと漢字", "한국어 텍스트 漢字", "Привет, мир!", "مرحبا بالعالم", "नमस्ते दुनिया", "สวัสดีชาวโลก",
    "Ελληνικά κείμενα", "עברית", "mixed中文English日本語한국어русский", "\U0002b820\U0002b91f\U0002b920 ext-E",
    "豈 更 車", "\U0002f800 compat", "𠀀𪜀", "〇々〆", "ｶﾀｶﾅ",
    "https://www.example.com/path/to/page.html?query=1&x=y#frag", "user.name+tag@example.co.uk",
    "C:\\Users\\me\\file.txt", "<html><body>tag</body></html>", "@user #hashtag $AAPL",
    "3.14159", "1,000,000.00", "$1.5M", "50%", "10:30pm", "2023-01-01", "+1 (555) 123-4567", "1e-5", "½ ¾ ²³",
    "¿Qué? ¡Sí!", "«quotes» „German“ “curly” ‘single’", "em—dash en–dash ‐hyphen", "…ellipsis", "a.b.c",
    "don't won't y'all", "[CLS] already [SEP] there", "[MASK]", "a[MASK]b", "[mask] [Mask]", "[UNK][PAD][SEP][CLS]",
    "[[MASK]]", "[MAS K]", "##", "##ing", "###", "....", "!!!???", "^_^ :-) <3", "`~!@#$%^&*()_+-={}|[]\\:\";'<>?,./",
    "The quick brown fox jumps over the lazy dog. " * 20,
]

OPTIONS = [  # (vocab, lowercase, strip_accents, tokenize_chinese_chars)
    ("bert-base-uncased", True, None, True),
    ("bert-base-uncased", True, False, True),
    ("bert-base-uncased", False, None, True),
    ("bert-base-uncased", False, True, False),
    ("bert-base-chinese", False, None, True),
    ("bert-base-chinese", True, None, False),
]


@pytest.mark.parametrize("vocab,lowercase,strip_accents,chinese_chars", OPTIONS)
def test_hard_cases_and_random_strings(vocab, lowercase, strip_accents, chinese_chars):
    path = _vocab(vocab)
    tok = WordPieceTokenizer.from_vocab_file(path, lowercase=lowercase, strip_accents=strip_accents,
                                             tokenize_chinese_chars=chinese_chars)
    ref = BertWordPieceTokenizer(path, lowercase=lowercase, strip_accents=strip_accents,
                                 handle_chinese_chars=chinese_chars)
    rng = random.Random(0)
    pool = ("abcxyz ABC  019.,!?'-_$@#[]()" + "éèüñçØß" + "\u0301\u0308\u0323" + "İıΣσςЖж" + "中文字日本語한국"
            + "😀👍🏽\u200d" + "\t\n\r\x00\x01\u200b\ufeff\ufffd\u00a0\u3000" + "«»—…・")
    randoms = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(1500)]
    texts = HARD_CASES + randoms
    expected = ref.encode_batch(texts)
    for text, e, fast in zip(texts, expected, tok.encode_batch(texts)):
        assert_same(tok.encode(text), e, repr(text[:80]))
        assert_same(fast, e, f"fast path {text[:80]!r}")
    pairs = list(zip(texts[::2], texts[1::2]))
    for (a, b), e in zip(pairs, ref.encode_batch(pairs)):
        assert_same(tok.encode(a, b), e, f"pair {a[:30]!r} / {b[:30]!r}")


# lone surrogates: between letters, inside a word, alone, around spaces, next to CJK, a special token, accents, an
# emoji and punctuation, and the two halves of an emoji written as separate code points
SURROGATE_CASES = ["a\ud800b", "a \ud800 b", "hello\udfffworld", "\ud800", "\udc00\ud800", "x\ud83d\ude00y",
                   "Héllo\udc80 wörld", "\ud800中b", "[MASK]\udbffx", "a😀\udc00b", "don\udfff't", "\ud800 \ud800"]


@pytest.mark.parametrize("which", ["uncased", "chinese"])
def test_lone_surrogates_fast_path_like_encode(which, request):
    """The Rust tokenizer cannot take a lone surrogate (no UTF-8 form); `encode` drops it like U+FFFD, and
    `encode_batch` must give the same ids and offsets, alone, in a batch with ordinary text, and in pairs."""
    tok, _ = request.getfixturevalue(which)
    for text in SURROGATE_CASES:  # dropped exactly as U+FFFD is, character for character (so offsets match too)
        as_fffd = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
        assert tok.encode(text) == tok.encode(as_fffd), repr(text)
    assert tok.encode("hello\udfffworld").offsets[1:3] == [(0, 5), (6, 11)]  # one word, the surrogate skipped
    for text in SURROGATE_CASES + ["a\ufffdb", "x\ufffd\ufffdy"]:
        assert_same(tok.encode_batch([text])[0], tok.encode(text), f"alone {text!r}")
    mixed = ["The Eiffel Tower, in Paris.", *SURROGATE_CASES, "naïve café", "a\ufffdb", "", "北京"]
    for text, fast in zip(mixed, tok.encode_batch(mixed)):
        assert_same(fast, tok.encode(text), f"in a batch {text!r}")
    for (a, b), fast in zip(zip(mixed, mixed[::-1]), tok.encode_batch(mixed, mixed[::-1], max_length=12,
                                                                         padding="max_length")):
        assert_same(fast, tok.encode(a, b, max_length=12, padding="max_length"), f"pair {a!r} / {b!r}")


def test_what_bert_does_to_words(uncased):
    tok, _ = uncased
    assert tok.tokenize("Hello, World!") == ["hello", ",", "world", "!"]
    assert tok.tokenize("unaffable") == ["una", "##ffa", "##ble"]  # greedy, not "un ##aff ##able"
    assert tok.tokenize("naïve CAFÉ") == ["naive", "cafe"]
    assert tok.tokenize("a" * 101) == ["[UNK]"] and tok.tokenize("☃") == ["[UNK]"]
    assert tok.tokenize("Paris is the [MASK] of France.") == ["paris", "is", "the", "[MASK]", "of", "france", "."]
    e = tok.encode("naïve café", "İstanbul")
    assert e.tokens == ["[CLS]", "naive", "cafe", "[SEP]", "istanbul", "[SEP]"]
    assert e.type_ids == [0, 0, 0, 0, 1, 1] and e.word_ids == [None, 0, 1, None, 0, None]
    assert e.offsets == [(0, 0), (0, 5), (6, 10), (0, 0), (0, 8), (0, 0)]
    text = "The Eiffel Tower, in Paris."
    e = tok.encode(text)
    assert [text[s:t] for s, t in e.offsets[1:-1]] == ["The", "E", "iff", "el", "Tower", ",", "in", "Paris", "."]
    assert e.word_ids[1:-1] == [0, 1, 1, 1, 2, 3, 4, 5, 6]


def test_every_code_point_like_tokenizers():
    """Normalization and punctuation of all 1.1M code points: the only differences are characters that Unicode
    added after 3.2 (Python's and Rust's Unicode tables have different ages) and four that it re-categorized."""
    chars = [chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF and chr(cp) != "|"]
    recategorized = {"\u166d", "\u1734", "\u1885", "\u1886"}

    def assert_only_new_characters(differ, what):
        old = [f"U+{ord(c):04X}" for c in differ
               if unicodedata.ucd_3_2_0.category(c) != "Cn" and c not in recategorized]
        assert not old, f"{what} differs from tokenizers on characters of Unicode 3.2: {old[:20]}"
        assert len(differ) < 1000, f"{what}: {len(differ)} characters differ"

    for lowercase, strip in [(True, None), (False, False)]:
        normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=strip,
                                    lowercase=lowercase)
        expected = normalizer.normalize_str("|".join(chars)).split("|")
        table = W.char_tables(lowercase, strip, True)[0]
        ours = "|".join(chars).translate(table).split("|")
        assert len(ours) == len(expected) == len(chars)
        assert_only_new_characters([c for c, a, b in zip(chars, ours, expected) if a != b], f"lowercase={lowercase}")
    words = BertPreTokenizer().pre_tokenize_str("a" + "a".join(chars) + "a")
    punctuation = {w for w, _ in words if len(w) == 1 and w != "a"}
    ours = {c for c in chars if W.is_punctuation(c)}
    assert_only_new_characters(punctuation ^ ours, "punctuation")


# -------------------------------------------------------------------------------- pairs, truncation, padding


def test_pairs_truncation_and_padding_like_tokenizers(uncased):
    tok, _ = uncased
    path = _vocab("bert-base-uncased")
    records = load_dataset("squad", "validation", limit=120)
    pairs = [(r["question"], r["context"]) for r in records[::4]] + [("", ""), ("a", ""), ("", "b c d e")]
    short = [("a b c d e f g", "h i"), ("a b", "c d e f g h i"), ("a b c", "d e f"), ("a", "b")]
    for max_length in [3, 4, 5, 6, 7, 8, 9, 16, 64, 384, 512]:
        ref = BertWordPieceTokenizer(path, lowercase=True)
        ref.enable_truncation(max_length)
        ref.enable_padding(length=max_length, pad_id=tok.pad_id, pad_token="[PAD]")
        batch = short + pairs
        expected = ref.encode_batch(batch)
        fast = tok.encode_batch([a for a, _ in batch], [b for _, b in batch], max_length=max_length,
                                padding="max_length")
        for (a, b), e, f in zip(batch, expected, fast):
            ours = tok.encode(a, b, max_length=max_length, padding="max_length")
            assert len(ours) == max_length
            assert_same(ours, e, f"pair max_length={max_length} {a[:30]!r}")
            assert_same(f, e, f"encode_batch pair max_length={max_length} {a[:30]!r}")
        ref.no_padding()
        singles = [b for _, b in batch]
        for text, e in zip(singles, ref.encode_batch(singles)):
            assert_same(tok.encode(text, max_length=max_length), e, f"single max_length={max_length}")


def test_truncated_lengths_rule():
    path = _vocab("bert-base-uncased")
    ref = BertWordPieceTokenizer(path, lowercase=True)
    for budget in range(0, 12):
        ref.enable_truncation(budget + 3)
        for n1 in range(0, 10):
            for n2 in range(0, 10):
                e = ref.encode(" ".join("a" * n1), " ".join("b" * n2))
                assert T.truncated_lengths(n1, n2, budget) == (e.tokens.count("a"), e.tokens.count("b"))


def test_batch_padding_to_the_longest_and_no_specials(uncased):
    tok, _ = uncased
    texts = ["short", "a much longer text with more words in it", ""]
    batch = tok.encode_batch(texts, padding=True)
    assert len({len(e) for e in batch}) == 1 and len(batch[0]) == len(tok.encode(texts[1]))
    for text, e in zip(texts, batch):
        n = len(tok.encode(text))
        assert e.ids[:n] == tok.encode(text).ids and e.attention_mask == [1] * n + [0] * (len(e) - n)
        assert set(e.ids[n:]) <= {tok.pad_id} and set(e.offsets[n:]) <= {(0, 0)} and set(e.word_ids[n:]) <= {None}
    assert tok.encode("one", padding=True).ids == tok.encode("one").ids
    for text, pair in [("hello world", "pair text"), ("x", None)]:
        ours = tok.encode(text, pair, add_special_tokens=False)
        ref = tok.fast.encode(text, pair, add_special_tokens=False)
        assert_same(ours, ref, "add_special_tokens=False")
        assert_same(tok.encode_batch([text], None if pair is None else [pair], add_special_tokens=False)[0], ref, "b")


# -------------------------------------------------------------------------------------------------- decoding


def test_decode_like_tokenizers(uncased, chinese):
    for tok, ref in (uncased, chinese):
        texts = _data("sst2", "validation", "sentence")[:300] + HARD_CASES
        for text in texts:
            ids = tok.encode(text, "and a pair, isn't it?").ids
            for skip in (True, False):
                assert tok.decode(ids, skip_special_tokens=skip) == ref.decode(ids, skip_special_tokens=skip), text
    tok = uncased[0]
    assert tok.decode(tok.encode("Hello, world!").ids) == "hello, world!"
    assert tok.decode(tok.encode("tokenization").ids) == "tokenization"
    import torch

    assert tok.decode(torch.tensor(tok.encode("tensor input").ids)) == "tensor input"


# ------------------------------------------------------------------------------------------------------ API


def test_api_that_other_lessons_rely_on(uncased):
    tok, ref = uncased
    assert len(tok) == 30522 == ref.get_vocab_size()
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
    assert tok.special_ids == {0, 100, 101, 102, 103}
    assert tok.id_to_token[2023] == "this" and tok.vocab["this"] == 2023
    assert isinstance(tok.tokenize("hi there"), list)
    e = tok.encode("hi")
    assert isinstance(e, T.Encoding) and len(e) == 3 and e.attention_mask == [1, 1, 1]
    assert tok.fast is tok.fast and tok.fast.get_vocab_size() == 30522
    assert repr(tok).startswith("WordPieceTokenizer(vocab_size=30522")
    assert WordPieceTokenizer.from_pretrained("bert-base-chinese").lowercase is False


def test_pickle_and_copies(uncased):
    tok, _ = uncased
    tok.encode("warm the caches"), tok.fast
    again = pickle.loads(pickle.dumps(tok))
    assert again.encode("Héllo, [MASK]!") == tok.encode("Héllo, [MASK]!")
    assert again.encode_batch(["a b"], ["c"]) == tok.encode_batch(["a b"], ["c"])
    encoding = tok.encode_batch(["pickled encodings"])[0]
    assert pickle.loads(pickle.dumps(encoding)) == encoding == tok.encode("pickled encodings")
    assert copy.deepcopy(tok).tokenize("copied") == ["copied"]
    import numpy as np

    assert tok.decode(np.array(encoding.ids)) == tok.decode([np.int64(i) for i in encoding.ids]) == "pickled encodings"


def test_chinese_vocab_quirks(chinese):
    tok, ref = chinese
    assert len(tok) == ref.get_vocab_size() == 21128
    for i in range(len(tok)):  # line 343 is U+2028, stripped as tokenizers does
        assert tok.id_to_token[i] == ref.id_to_token(i)


# ------------------------------------------------------------------------------------------------- training

TOY = ["hug " * 10 + "pug " * 5 + "pun " * 12 + "bun " * 4 + "hugs " * 5]


def test_training_matches_the_textbook_algorithm():
    tok = train_wordpiece(TOY, 30)
    assert tok.id_to_token == W.train_vocab(TOY, 30)
    assert tok.id_to_token[:5] == list(SPECIAL_TOKENS)
    lines = [t for t in _data("wikitext-2", "validation", "text")[:200] if t.strip()]
    for size, min_frequency in [(300, 2), (250, 1)]:
        assert train_wordpiece(lines, size, min_frequency=min_frequency).id_to_token == W.train_vocab(lines, size,
                                                                                                   min_frequency)


def test_training_is_deterministic_and_round_trips(tmp_path):
    lines = _data("wikitext-2", "test", "text")[:1500]
    tok = train_wordpiece(lines, 1500)
    assert len(tok) == 1500 and tok.id_to_token[:5] == list(SPECIAL_TOKENS)
    shuffled = lines[:]
    random.Random(1).shuffle(shuffled)
    assert train_wordpiece(shuffled, 1500).id_to_token == tok.id_to_token
    path = tok.save_vocab(tmp_path / "vocab.txt")
    assert path.read_text(encoding="utf-8").split("\n")[:5] == list(SPECIAL_TOKENS)
    loaded = WordPieceTokenizer.from_vocab_file(path)
    assert loaded.vocab == tok.vocab and loaded.id_to_token == tok.id_to_token
    ref = BertWordPieceTokenizer(str(path), lowercase=True)
    for text, e in zip(lines[:300], ref.encode_batch(lines[:300])):
        assert_same(loaded.encode(text), e, "trained vocab")
    assert [e.ids for e in tok.encode_batch(lines[:300])] == [tok.encode(t).ids for t in lines[:300]]
    cased = train_wordpiece(["Hello World hello world"] * 3, 40, lowercase=False)
    assert "H" in cased.vocab and cased.lowercase is False


# --------------------------------------------------------------------------------------------------- errors


def test_errors_say_what_is_wrong(uncased, tmp_path):
    tok, _ = uncased
    with pytest.raises(TypeError, match="text must be a str, got NoneType"):
        tok.encode(None)
    with pytest.raises(TypeError, match="encode_batch"):
        tok.encode(["a", "b"])
    with pytest.raises(TypeError, match="pair must be a str, got int"):
        tok.encode("a", 3)
    with pytest.raises(TypeError, match="text must be a str"):
        tok.tokenize(b"bytes")
    with pytest.raises(TypeError, match="For one text use encode"):
        tok.encode_batch("one string")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        tok.encode_batch(["ok", 5])
    missing = tmp_path / "nowhere" / "vocab.txt"
    with pytest.raises(FileNotFoundError, match=str(missing).replace("\\", "\\\\")):
        WordPieceTokenizer.from_vocab_file(missing)
    bad = tmp_path / "vocab.txt"
    bad.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no '\[MASK\]' token"):
        WordPieceTokenizer.from_vocab_file(bad)
    with pytest.raises(ValueError, match=r"no '\[PAD\]' token"):
        WordPieceTokenizer({"hello": 0})
    with pytest.raises(ValueError, match="max_length=1 is too small.*use max_length >= 2"):
        tok.encode("hello", max_length=1)
    with pytest.raises(ValueError, match="max_length=2 is too small.*use max_length >= 3"):
        tok.encode("hello", "world", max_length=2)
    with pytest.raises(ValueError, match="max_length=2 is too small"):
        tok.encode_batch(["a"], ["b"], max_length=2)
    with pytest.raises(ValueError, match="padding='max_length' needs a max_length"):
        tok.encode("hello", padding="max_length")
    with pytest.raises(ValueError, match="padding='left' is not understood"):
        tok.encode("hello", padding="left")
    with pytest.raises(ValueError, match="id 99999 is not in the vocab"):
        tok.decode([101, 99999])
    with pytest.raises(ValueError, match="vocab_size=10 is too small.*Use vocab_size >= "):
        train_wordpiece(["hello world"], 10)
    with pytest.raises(TypeError, match="not one str"):
        train_wordpiece("hello world", 100)
    with pytest.raises(TypeError, match="max_length must be an int"):
        tok.encode("hello", max_length="16")
    with pytest.raises(TypeError, match="ids must be integers"):
        tok.decode(["hello"])
    assert tok.encode("hello", max_length=2).tokens == ["[CLS]", "[SEP]"]


# ---------------------------------------------------------------------------- the exercise and the slow reference


def test_exercise_checkers():
    check_pair_score(W.pair_score)
    check_encode_word(W.greedy_longest_match, n_random_words=100)
    with pytest.raises(CheckFailed, match="upside down"):
        check_pair_score(lambda ab, a, b: a * b / ab)
    with pytest.raises(CheckFailed, match="sum"):
        check_pair_score(lambda ab, a, b: ab / (a + b))

    def shortest_first(word, vocab):
        pieces, start = [], 0
        while start < len(word):
            for end in range(start + 1, len(word) + 1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    break
            else:
                return ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces

    with pytest.raises(CheckFailed, match=r"encode_word\('unaffable'\): item 0 differs: yours is 'u';") as info:
        check_encode_word(shortest_first)
    assert "'una'" not in str(info.value)  # says where it differs, not what the answer is

    def no_limit(word, vocab):
        return W.greedy_longest_match(word, vocab, max_input_chars_per_word=10**6)

    with pytest.raises(CheckFailed, match="longer than max_chars"):
        check_encode_word(no_limit)

    def stub(word, vocab):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check_encode_word(stub)
    with pytest.raises(NotImplementedError):
        check_pair_score(lambda ab, a, b: stub(ab, a))


def test_agrees_with_the_slow_transformers_tokenizer(uncased):
    try:
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as SlowBertTokenizer
    except ImportError:  # transformers 4: BertTokenizer is the pure-Python one
        from transformers import BertTokenizer as SlowBertTokenizer
    tok, _ = uncased
    slow = SlowBertTokenizer(_vocab("bert-base-uncased"), do_lower_case=True)
    sentences = _data("sst2", "validation", "sentence")[:200] + _data("wikitext-2", "validation", "text")[:100]
    for text in sentences:
        assert tok.tokenize(text) == slow.tokenize(text), text
    assert tok.encode("a pair", "of texts").ids == slow("a pair", "of texts")["input_ids"]
