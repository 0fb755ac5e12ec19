import sys
import types

import pytest

from minibert import data
from minibert.corpus import corpus_documents

# Record counts as stated in the course data's SOURCES.md (one ChnSentiCorp row has an empty review and is skipped).
EXPECTED = {
    ("sst2", "train"): 67349, ("sst2", "validation"): 872, ("mrpc", "validation"): 408, ("mrpc", "train"): 3667,
    ("rte", "train"): 2490, ("rte", "validation"): 277, ("conll2003", "train"): 14041,
    ("conll2003", "validation"): 3250, ("conll2003", "test"): 3453, ("wnut17", "train"): 3394,
    ("wnut17", "validation"): 1009, ("wnut17", "test"): 1287, ("wikiann-en", "train"): 20000,
    ("weibo-ner", "train"): 1350, ("msra-ner", "test"): 3442, ("peoples-daily-ner", "validation"): 2318,
    ("squad", "validation"): 10570, ("cmrc2018", "validation"): 3219, ("cmrc2018", "trial"): 1002,
    ("chnsenticorp", "train"): 7765,
}


@pytest.mark.parametrize("name, split", sorted(EXPECTED))
def test_local_copies_load_with_the_published_counts(data_dir, name, split):
    assert len(data.load_dataset(name, split)) == EXPECTED[name, split]


def test_records_have_the_documented_fields(data_dir):
    assert data.load_dataset("sst2", "validation")[0] == {
        "sentence": "it 's a charming and often affecting journey .", "label": 1}
    pair = data.load_dataset("rte", "validation")[0]
    assert set(pair) == {"sentence1", "sentence2", "label"} and pair["label"] == 1  # not_entailment
    mrpc = data.load_dataset("mrpc", "validation")[0]
    assert mrpc["label"] == 1 and mrpc["sentence1"].startswith("He said the foodservice")  # BOM stripped
    ner = data.load_dataset("conll2003", "train")[0]
    assert ner["tokens"][:3] == ["EU", "rejects", "German"] and ner["ner_tags"][:3] == ["B-ORG", "O", "B-MISC"]
    assert data.load_dataset("wikiann-en", "validation")[0]["tokens"][0] == "Sioux"  # en: prefix stripped
    assert data.load_dataset("weibo-ner", "train")[0]["tokens"][:2] == ["科", "技"]  # position digit dropped
    qa = data.load_dataset("squad", "validation")[0]
    start = qa["answers"]["answer_start"][0]
    assert qa["context"][start:start + len(qa["answers"]["text"][0])] == qa["answers"]["text"][0]
    assert data.load_dataset("squad", "validation", limit=5) == data.load_dataset("squad", "validation")[:5]


def test_every_ner_tag_is_bio(data_dir):
    for name in ("conll2003", "wnut17", "wikiann-en", "weibo-ner", "msra-ner", "peoples-daily-ner"):
        split = next(iter(data.DATASETS[name].local))
        for sentence in data.load_dataset(name, split):
            assert len(sentence["tokens"]) == len(sentence["ner_tags"])
            assert all(t == "O" or t[:2] in ("B-", "I-") for t in sentence["ner_tags"]), name


def test_unknown_names_and_splits_list_the_choices():
    with pytest.raises(KeyError, match="Known datasets: .*sst2"):
        data.load_dataset("sst-3")
    with pytest.raises(KeyError, match="Splits: train, validation"):
        data.load_dataset("sst2", "dev")


def test_unavailable_dataset_says_which_where_and_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data._load_cached.cache_clear()

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face hub (offline)")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=offline))
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load_dataset("sst2", "validation")
    message = str(info.value)
    assert "'sst2'" in message and "'validation'" in message                      # which dataset
    assert str(tmp_path / "sst-2" / "dev.tsv") in message                          # where it looked
    assert "nyu-mll/glue" in message and "ConnectionError" in message              # what it tried
    assert "set MINIBERT_DATA" in message and "connect to the internet" in message  # how to fix
    data._load_cached.cache_clear()


def test_unavailable_without_minibert_data_and_without_datasets(monkeypatch):
    monkeypatch.delenv("MINIBERT_DATA", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails
    data._load_cached.cache_clear()
    with pytest.raises(data.DatasetUnavailableError, match="MINIBERT_DATA is not set.*not installed"):
        data.load_dataset("sst2", "train")
    data._load_cached.cache_clear()


def test_real_datasets_library_offline_gives_our_error(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path))
    data._load_cached.cache_clear()
    with pytest.raises(data.DatasetUnavailableError, match="wikitext-103.*How to fix"):
        data.load_dataset("wikitext-103", "validation")
    data._load_cached.cache_clear()


def test_hub_rows_are_converted_to_the_local_records(fake_hub):
    calls = []

    def fake_load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        if hub_id == "eriktks/conll2003":
            return [{"id": "0", "tokens": ["EU", "rejects"], "pos_tags": [1, 2], "ner_tags": [3, 0]}]
        return [{"id": "a", "title": "T", "context": "abc def", "question": "q?",
                 "answers": {"text": ["def"], "answer_start": [4]}}]

    fake_hub(fake_load_dataset)  # no local copy: the hub path is taken
    assert data.load_dataset("conll2003", "validation") == [{"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}]
    assert data.load_dataset("squad", "train")[0]["answers"] == {"text": ["def"], "answer_start": [4]}
    assert calls == [("eriktks/conll2003", None, "validation"), ("rajpurkar/squad", None, "train")]


def test_weibo_ner_from_the_hub_has_the_local_copys_tags(fake_hub, data_dir):
    """The hub numbers Weibo's 17 tags; each number must name the tag the local file writes (it once named none)."""
    local = data.load_dataset("weibo-ner", "train")
    local_tags = sorted({t for r in local for t in r["ner_tags"]})
    assert data.WEIBO_TAGS[0] == "B-GPE.NAM" and data.WEIBO_TAGS[-1] == "O" and len(data.WEIBO_TAGS) == 17
    assert set(local_tags) <= set(data.WEIBO_TAGS)
    numbered = [[data.WEIBO_TAGS.index(t) for t in r["ner_tags"]] for r in local[:50]]

    def fake_load_dataset(hub_id, config, split):
        assert hub_id == "hltcoe/weibo_ner"
        return [{"id": str(i), "tokens": r["tokens"], "ner_tags": n} for i, (r, n) in enumerate(zip(local, numbered))]

    fake_hub(fake_load_dataset)  # no local copy: the hub path is taken
    assert data.load_dataset("weibo-ner", "train") == local[:50]


def test_vocab_files(data_dir):
    assert sum(1 for _ in open(data.vocab_file("bert-base-uncased"), encoding="utf-8")) == 30522
    assert sum(1 for _ in open(data.vocab_file("bert-base-chinese"), encoding="utf-8")) == 21128
    with pytest.raises(KeyError, match="Known"):
        data.vocab_file("gpt2")


def test_unavailable_vocab_says_which_where_and_how_to_fix(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.vocab_file("bert-base-chinese")
    message = str(info.value)
    assert "'bert-base-chinese'" in message and str(tmp_path / "bert-base-chinese" / "vocab.txt") in message
    assert "set MINIBERT_DATA" in message and "connect to the internet" in message


def test_corpus_documents_split_on_blank_lines_or_wikitext_titles(data_dir):
    sample = [r["text"] for r in data.load_dataset("bert-sample-text")]
    docs = corpus_documents(sample)
    assert len(docs) == 3 and all(docs)
    wiki = corpus_documents([r["text"] for r in data.load_dataset("wikitext-2", "validation")])
    assert len(wiki) == 60  # WikiText-2 validation holds 60 articles
    assert not any(line.startswith("=") for doc in wiki for line in doc)


def test_pointing_minibert_data_elsewhere_mid_session_is_seen(tmp_path, monkeypatch):
    for name, sentence in (("a", "first copy"), ("b", "second copy")):
        (tmp_path / name / "sst-2").mkdir(parents=True)
        (tmp_path / name / "sst-2" / "dev.tsv").write_text(f"sentence\tlabel\n{sentence}\t1\n", encoding="utf-8")
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path / "a"))
    assert data.load_dataset("sst2", "validation") == [{"sentence": "first copy", "label": 1}]
    monkeypatch.setenv("MINIBERT_DATA", str(tmp_path / "b"))  # not served from the cache of the first folder
    assert data.load_dataset("sst2", "validation") == [{"sentence": "second copy", "label": 1}]
