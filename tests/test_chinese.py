"""Chinese data and lesson 11: ChnSentiCorp is one dataset online and offline; what lesson 11 relies on."""

import dataclasses
import sys
import types

import pytest

from minibert import data
from minibert.tasks import TASKS, task_records

# SOURCES.md of the course data: the local copy is this file of this commit
CHNSENTICORP_SOURCE = ("SophonPlus/ChineseNlpCorpus/a0b781d72158bde242c0626c9e354d2b328865ff/"
                       "datasets/ChnSentiCorp_htl_all/ChnSentiCorp_htl_all.csv")


def test_chnsenticorp_online_is_the_local_copy_s_own_source():
    """The hub's "ChnSentiCorp" (9,600/1,200/1,200 reviews, a `text` column) is another dataset than the
    local ChnSentiCorp_htl_all (7,766 hotel reviews, `label,review`, one file): online, the same file is read."""
    spec = data.DATASETS["chnsenticorp"]
    assert spec.local == {"train": "chnsenticorp/ChnSentiCorp_htl_all.csv"}
    assert spec.hub == ("csv", None) and spec.hub_files["train"].endswith(CHNSENTICORP_SOURCE)
    assert set(spec.hub_splits) == set(spec.local) == {"train"}  # no validation or test split of another dataset
    assert "lansinuote" not in repr(spec) and "seamew" not in repr(spec)


def test_chnsenticorp_through_datasets_gives_the_local_records(data_dir, tmp_path, monkeypatch):
    """The online path (`datasets`' csv builder, the converter) on the very file of the local copy: same records."""
    datasets = pytest.importorskip("datasets")
    local = data.load_dataset("chnsenticorp", "train")
    spec = data.DATASETS["chnsenticorp"]
    monkeypatch.setitem(data.DATASETS, "chnsenticorp", dataclasses.replace(
        spec, hub_files={"train": str(data_dir / spec.local["train"])}))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path))  # no local copy there: the hub path is taken
    data._load_cached.cache_clear()
    try:
        online = data.load_dataset("chnsenticorp", "train")
    finally:
        data._load_cached.cache_clear()
    assert len(online) == len(local) == 7765 and online == local  # the empty review is skipped both ways
    assert sum(r["label"] for r in local) == 5322


def test_chnsenticorp_download_asks_for_the_pinned_file(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path))
    calls = []

    def fake_load_dataset(hub_id, config, split, **kwargs):
        calls.append((hub_id, config, split, kwargs))
        return [{"label": 1, "review": "很好"}, {"label": 0, "review": None}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load_dataset))
    data._load_cached.cache_clear()
    try:
        assert data.load_dataset("chnsenticorp", "train") == [{"sentence": "很好", "label": 1}]
        with pytest.raises(KeyError, match="has no split 'validation'"):
            data.load_dataset("chnsenticorp", "validation")
    finally:
        data._load_cached.cache_clear()
    assert calls == [("csv", None, "train", {"data_files": {"train": data.CHNSENTICORP_URL}})]


def test_chnsenticorp_offline_error_names_the_url(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path))

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    data._load_cached.cache_clear()
    try:
        with pytest.raises(data.DatasetUnavailableError, match="raw.githubusercontent.com/SophonPlus.*ConnectionError"):
            data.load_dataset("chnsenticorp", "train")
    finally:
        data._load_cached.cache_clear()


def test_chnsenticorp_task_holds_out_a_fifth_of_the_one_file(data_dir):
    said = []
    train, held = task_records(TASKS["chnsenticorp"], say=said.append)
    assert (len(train), len(held)) == (6212, 1553)
    assert said and "only the 'train' split" in said[0] and "not the published dev set" in said[0]
    assert not {r["sentence"] for r in train} & {r["sentence"] for r in held} - {""}


def test_bert_base_chinese_tokenizes_one_character_per_token(data_dir):
    from minibert.tokenizer import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_pretrained("bert-base-chinese")
    assert tokenizer.tokenize("这部电影太精彩了!") == list("这部电影太精彩了!")
    assert tokenizer.tokenize("BERT很强大")[0] == "[UNK]"  # cased, with lowercase Latin pieces only (lesson 11)
    characters = [t for t in tokenizer.vocab if len(t) == 1 and "\u4e00" <= t <= "\u9fff"]
    assert len(characters) == 7321 and all("##" + c in tokenizer.vocab for c in characters)


def test_whole_word_masking_of_chinese_through_the_twins(data_dir):
    """Lesson 11's recipe: the characters that continue a word become their '##' twins, mask_tokens(whole_word=True)
    then hides whole words (character masking and whole_word on plain ids hide parts of words)."""
    import torch

    from minibert.corpus import vocab_info
    from minibert.pretraining_data import mask_tokens
    from minibert.tokenizer import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_pretrained("bert-base-chinese")
    info = vocab_info(tokenizer)
    words = ["使用", "语言", "模型", "来", "预测", "下", "一个", "词", "的", "概率", "。"]
    ids = torch.tensor(tokenizer.encode("".join(words)).ids)
    word_of = [None] + [w for w, word in enumerate(words) for _ in word] + [None]
    marked = ids.clone()
    for i in range(2, len(word_of)):
        if word_of[i] is not None and word_of[i - 1] == word_of[i]:
            marked[i] = tokenizer.vocab["##" + tokenizer.id_to_token[int(ids[i])]]

    def partly_hidden(input_ids, whole_word):
        partly = 0
        for seed in range(300):
            _, labels = mask_tokens(input_ids, info, torch.Generator().manual_seed(seed), whole_word=whole_word)
            chosen = labels != -100
            assert int(chosen.sum()) == 3  # round(17 * 0.15) either way
            for w in {word_of[i] for i in range(len(word_of)) if chosen[i]}:
                hits = [bool(chosen[i]) for i in range(len(word_of)) if word_of[i] == w]
                partly += not all(hits)
        return partly

    assert partly_hidden(marked, whole_word=True) == 0
    assert partly_hidden(ids, whole_word=True) > 100 and partly_hidden(ids, whole_word=False) > 100
