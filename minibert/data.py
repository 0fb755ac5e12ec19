"""Datasets and corpora for the lessons, through one function: `load_dataset(name, split)`.

What it does:
- Reads a local copy when the environment variable `MINIBERT_DATA` names a folder laid out like the course's data
  folder (`wikitext-2/valid.txt`, `sst-2/dev.tsv`, `squad-v1.1/dev-v1.1.json`, ...). This is how CI and offline
  classrooms run.
- Otherwise downloads the real dataset from the Hugging Face hub through the `datasets` library, and converts it to
  the same records as the local copy, so a lesson cannot tell the two apart. Where the hub has no copy of the very
  dataset that the local one is, `datasets` reads the local copy's source file from its pinned URL instead
  (ChnSentiCorp's hotel reviews: the hub's `ChnSentiCorp` datasets are another collection, of 12,000 reviews).
- Raises `DatasetUnavailableError` saying which dataset, where it looked and how to fix it when it can do neither.
- `vocab_file(model_name)` finds the real vocab of `bert-base-uncased` or `bert-base-chinese` the same way.

Records are plain Python dicts:
- corpora (`wikitext-2`, `wikitext-103`, `bert-sample-text`, `zh-wiki-sample`): {"text"}, one per line
- `sst2`, `chnsenticorp`: {"sentence", "label"}; `mrpc`, `rte`: {"sentence1", "sentence2", "label"}
- `stsb`: {"sentence1", "sentence2", "score"}, the score a float in [0, 1] (STS-B's 0-5 divided by 5)
- NER sets: {"tokens": [...], "ner_tags": ["B-PER", "O", ...]} (tags as strings, BIO)
- `squad`, `cmrc2018`: {"id", "title", "context", "question", "answers": {"text": [...], "answer_start": [...]}}

What it leaves out: caching to disk (the files are small, and `datasets` caches downloads itself) and streaming.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ENV_VAR = "MINIBERT_DATA"


class DatasetUnavailableError(RuntimeError):
    """A dataset that is neither in MINIBERT_DATA nor downloadable right now."""


def data_dir() -> str | None:
    """The folder named by MINIBERT_DATA, or None when it is not set."""
    value = os.environ.get(ENV_VAR, "").strip()
    return value or None


# ---------------------------------------------------------------------------------------------------- local parsers


def _read_lines(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [{"text": line.rstrip("\n")} for line in f]


def _read_tsv(path: Path) -> list[list[str]]:
    # utf-8-sig drops MRPC's byte order mark; QUOTE_NONE because MRPC and SST-2 hold bare quotes
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:]  # header


def _read_sst2(path: Path) -> list[dict]:
    return [{"sentence": r[0].strip(), "label": int(r[1])} for r in _read_tsv(path)]


def _read_mrpc(path: Path) -> list[dict]:
    return [{"sentence1": r[3], "sentence2": r[4], "label": int(r[0])} for r in _read_tsv(path)]


RTE_LABELS = ["entailment", "not_entailment"]


def _read_rte(path: Path) -> list[dict]:
    return [{"sentence1": r[1], "sentence2": r[2], "label": RTE_LABELS.index(r[3])} for r in _read_tsv(path)]


def _read_stsb(path: Path) -> list[dict]:
    """GLUE's STS-B/train.tsv and dev.tsv: ten columns, the pair in 8 and 9 (from 1), the 0-5 score in the last."""
    return [{"sentence1": r[7], "sentence2": r[8], "score": float(r[9]) / 5} for r in _read_tsv(path)]


def _hub_stsb(row):
    """The hub's GLUE STS-B: `label` is the 0-5 score (-1 in the test split, whose scores are hidden: skipped)."""
    if row["label"] < 0:
        return None
    return {"sentence1": row["sentence1"], "sentence2": row["sentence2"], "score": row["label"] / 5}


def _read_chnsenticorp(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{"sentence": r["review"], "label": int(r["label"])} for r in rows if r["review"]]


def _hub_chnsenticorp(row):
    # the same CSV read by `datasets`: one row's review is empty (None here), and it is skipped, as above
    return {"sentence": row["review"], "label": int(row["label"])} if row["review"] else None


def _read_columns(path: Path, sep: str | None, token: Callable[[str], str] = lambda t: t, tag_col: int = -1):
    """CoNLL-style files: one token per line with its tag in a column, blank lines between sentences."""
    sentences, tokens, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            parts = line.split(sep) if line.strip() else []
            if not parts or parts[0] == "-DOCSTART-":
                if tokens:
                    sentences.append({"tokens": tokens, "ner_tags": tags})
                tokens, tags = [], []
                continue
            tokens.append(token(parts[0]))
            tags.append(parts[tag_col])
    if tokens:
        sentences.append({"tokens": tokens, "ner_tags": tags})
    return sentences


def _read_squad(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        articles = json.load(f)["data"]
    examples = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = qa.get("answers", [])
                examples.append({
                    "id": qa["id"],
                    "title": article.get("title", ""),
                    "context": paragraph["context"],
                    "question": qa["question"],
                    "answers": {"text": [a["text"] for a in answers],
                                "answer_start": [a["answer_start"] for a in answers]},
                })
    return examples


# ------------------------------------------------------------------------------------------ converters from the hub


def _hub_text(row):
    return {"text": row["text"].rstrip("\n")}


def _hub_ner(names):
    def convert(row):
        tags = row["ner_tags"]
        return {"tokens": list(row["tokens"]), "ner_tags": [names[t] if isinstance(t, int) else t for t in tags]}
    return convert


def _hub_squad(row):
    return {"id": row["id"], "title": row.get("title", ""), "context": row["context"], "question": row["question"],
            "answers": {"text": list(row["answers"]["text"]), "answer_start": list(row["answers"]["answer_start"])}}


# the hub's weibo_ner numbers its tags in this order (its ClassLabel: B-, then I-, each sorted, then O)
WEIBO_TAGS = [f"{bio}-{kind}.{form}" for bio in "BI" for kind in ("GPE", "LOC", "ORG", "PER") for form in ("NAM", "NOM")
              ] + ["O"]
CONLL_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
WNUT_TAGS = ["O", "B-corporation", "I-corporation", "B-creative-work", "I-creative-work", "B-group", "I-group",
             "B-location", "I-location", "B-person", "I-person", "B-product", "I-product"]
WIKIANN_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives: local files (relative to MINIBERT_DATA) and the hub id, per split."""

    description: str
    local: dict[str, str]                      # split -> file under MINIBERT_DATA
    parse: Callable[[Path], list[dict]] | None  # how to read a local file
    hub: tuple[str, str | None] | None         # (hub id, config) for `datasets.load_dataset`
    hub_splits: dict[str, str] = field(default_factory=dict)  # our split -> hub split
    convert: Callable[[dict], dict | None] | None = None  # hub row -> our record (None: the row is skipped)
    # split -> URL of a file that a generic `datasets` builder (hub id "csv", "json"...) reads, where the hub has no
    # copy of the same dataset: the local copy's own source, pinned to its commit
    hub_files: dict[str, str] = field(default_factory=dict)


def _ner(paths, hub, names, sep=None, token=lambda t: t):
    return dict(local=paths, parse=lambda p: _read_columns(p, sep, token), hub=hub,
                hub_splits={s: s for s in ("train", "validation", "test")}, convert=_hub_ner(names))


GLUE = {"train": "train", "validation": "validation"}
CHNSENTICORP_URL = ("https://raw.githubusercontent.com/SophonPlus/ChineseNlpCorpus/"
                    "a0b781d72158bde242c0626c9e354d2b328865ff/datasets/ChnSentiCorp_htl_all/ChnSentiCorp_htl_all.csv")
SPLITS = {"train": "train", "validation": "validation", "test": "test"}

DATASETS: dict[str, DatasetSpec] = {
    "wikitext-2": DatasetSpec(
        "WikiText-2 (tokenized, one line per paragraph or heading)",
        {"validation": "wikitext-2/valid.txt", "test": "wikitext-2/test.txt"}, _read_lines,
        ("Salesforce/wikitext", "wikitext-2-v1"), SPLITS, _hub_text),
    "wikitext-103": DatasetSpec(
        "WikiText-103 (tokenized), the full-mode pretraining corpus", {}, _read_lines,
        ("Salesforce/wikitext", "wikitext-103-v1"), SPLITS, _hub_text),
    "bert-sample-text": DatasetSpec(
        "Google's BERT sample_text.txt (one sentence per line, blank line between documents)",
        {"train": "bert-sample-text/sample_text.txt"}, _read_lines, None),
    "zh-wiki-sample": DatasetSpec(
        "A Chinese Wikipedia sample (4 long lines)", {"train": "zh-wiki-sample/test_wiki.zh.text"}, _read_lines, None),
    "sst2": DatasetSpec(
        "GLUE SST-2 sentiment (0 negative, 1 positive)", {"train": "sst-2/train.tsv", "validation": "sst-2/dev.tsv"},
        _read_sst2, ("nyu-mll/glue", "sst2"), GLUE, lambda r: {"sentence": r["sentence"], "label": r["label"]}),
    "mrpc": DatasetSpec(
        "GLUE MRPC paraphrase (1 paraphrase)", {"train": "mrpc/train.tsv", "validation": "mrpc/dev.tsv"}, _read_mrpc,
        ("nyu-mll/glue", "mrpc"), GLUE,
        lambda r: {"sentence1": r["sentence1"], "sentence2": r["sentence2"], "label": r["label"]}),
    "rte": DatasetSpec(
        "GLUE RTE entailment (0 entailment, 1 not_entailment)", {"train": "rte/train.tsv", "validation": "rte/dev.tsv"},
        _read_rte, ("nyu-mll/glue", "rte"), GLUE,
        lambda r: {"sentence1": r["sentence1"], "sentence2": r["sentence2"], "label": r["label"]}),
    # STS-B: 8,628 sentence pairs (news, captions, forums) scored 0-5 by annotators for similarity; read as 0-1
    "stsb": DatasetSpec(
        "GLUE STS-B sentence similarity (score 0-1: the annotators' 0-5 divided by 5)",
        {"train": "sts-b/train.tsv", "validation": "sts-b/dev.tsv"}, _read_stsb, ("nyu-mll/glue", "stsb"), GLUE,
        _hub_stsb),
    # ChnSentiCorp_htl_all: Tan Songbo's hotel reviews, 7,766 rows (5,322 positive, 2,444 negative), one file, no
    # dev/test split. The hub's "ChnSentiCorp" (lansinuote/, seamew/: 9,600/1,200/1,200 rows, a `text` column) is
    # another selection, so online the same CSV is read from its GitHub source, at the commit of SOURCES.md.
    "chnsenticorp": DatasetSpec(
        "ChnSentiCorp_htl_all Chinese hotel reviews (0 negative, 1 positive; one split, no dev set)",
        {"train": "chnsenticorp/ChnSentiCorp_htl_all.csv"}, _read_chnsenticorp,
        ("csv", None), {"train": "train"}, _hub_chnsenticorp,
        hub_files={"train": CHNSENTICORP_URL}),
    "conll2003": DatasetSpec(
        "CoNLL-2003 English NER (BIO: PER, ORG, LOC, MISC)",
        **_ner({"train": "conll2003/train.txt", "validation": "conll2003/valid.txt", "test": "conll2003/test.txt"},
               ("eriktks/conll2003", None), CONLL_TAGS)),
    "wnut17": DatasetSpec(
        "WNUT-17 emerging entities (BIO, CC BY 4.0)",
        **_ner({"train": "wnut17/wnut17train.conll", "validation": "wnut17/emerging.dev.conll",
                "test": "wnut17/emerging.test.annotated"}, ("leondz/wnut_17", None), WNUT_TAGS, sep="\t")),
    "wikiann-en": DatasetSpec(
        "WikiANN English NER (BIO: PER, ORG, LOC)",
        **_ner({"train": "wikiann-en/train", "validation": "wikiann-en/dev", "test": "wikiann-en/test"},
               ("unimelb-nlp/wikiann", "en"), WIKIANN_TAGS, sep="\t", token=lambda t: t.removeprefix("en:"))),
    "weibo-ner": DatasetSpec(
        "Weibo NER (Chinese, one character per token, BIO)",
        **_ner({"train": "weibo-ner/weiboNER_2nd_conll.train", "validation": "weibo-ner/weiboNER_2nd_conll.dev",
                "test": "weibo-ner/weiboNER_2nd_conll.test"}, ("hltcoe/weibo_ner", None), WEIBO_TAGS, sep="\t",
               token=lambda t: t[0])),
    "msra-ner": DatasetSpec(
        "MSRA NER (Chinese, one character per token, BIO: PER, ORG, LOC)",
        **_ner({"test": "msra-ner/msra_test_bio.txt"}, ("levow/msra_ner", None),
               ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"], sep="\t")),
    "peoples-daily-ner": DatasetSpec(
        "People's Daily NER (Chinese, one character per token, BIO: PER, ORG, LOC)",
        **_ner({"validation": "peoples-daily-ner/example.dev", "test": "peoples-daily-ner/example.test"},
               ("peoples-daily-ner/peoples_daily_ner", None),
               ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"], sep=" ")),
    "squad": DatasetSpec(
        "SQuAD v1.1 extractive question answering", {"validation": "squad-v1.1/dev-v1.1.json"}, _read_squad,
        ("rajpurkar/squad", None), GLUE, _hub_squad),
    "cmrc2018": DatasetSpec(
        "CMRC 2018 Chinese extractive question answering (SQuAD format)",
        {"validation": "cmrc2018/cmrc2018_dev.json", "trial": "cmrc2018/cmrc2018_trial.json"}, _read_squad,
        ("hfl/cmrc2018", None), {"train": "train", "validation": "validation", "trial": "trial"}, _hub_squad),
}

VOCABS = {"bert-base-uncased": "google-bert/bert-base-uncased", "bert-base-chinese": "google-bert/bert-base-chinese"}


def local_splits(name: str) -> list[str]:
    """The splits of a dataset that the local copy in MINIBERT_DATA holds (none when it is not set)."""
    return [split for split, relative in DATASETS[name].local.items() if _local_file(relative)[0] is not None]


def _how_to_fix(name: str) -> str:
    if name in DATASETS and local_splits(name):  # the local copy is there, without this split: MINIBERT_DATA is fine
        return (f"How to fix: use a split that the local copy holds ({', '.join(local_splits(name))}; on the command "
                f"line --split {local_splits(name)[0]}), or connect to the internet once so that it is downloaded.")
    return (f"How to fix: set {ENV_VAR} to a folder that holds a copy of '{name}' in the course's data layout "
            f"(for example `export {ENV_VAR}=/path/to/shared/data`), or connect to the internet so that it can be "
            f"downloaded from the Hugging Face hub (`pip install datasets huggingface_hub` if they are missing).")


def _local_file(relative: str) -> tuple[Path | None, str]:
    """The local copy of a file, or None with a sentence saying where we looked."""
    root = data_dir()
    if root is None:
        return None, f"{ENV_VAR} is not set, so no local copy was looked for"
    path = Path(root).expanduser() / relative
    if path.is_file():
        return path, ""
    return None, f"looked for a local copy at {path} ({ENV_VAR}={root}): not found"


@lru_cache(maxsize=32)
def _load_cached(name: str, split: str, root: str | None) -> tuple[dict, ...]:
    """`root` is the MINIBERT_DATA in force (which `_local_file` reads); it is an argument so that the cache is keyed
    by it too, and pointing MINIBERT_DATA elsewhere mid-session loads the records from there."""
    spec = DATASETS[name]
    where = []
    if split in spec.local:
        path, looked = _local_file(spec.local[split])
        if path is not None:
            return tuple(spec.parse(path))
        where.append(looked)
    else:
        where.append(f"the course's local data has no '{split}' split of '{name}' "
                     f"(local splits: {', '.join(spec.local) or 'none'})")
    if spec.hub is None or split not in spec.hub_splits:
        where.append("and it has no download on the Hugging Face hub")
        raise DatasetUnavailableError(f"Dataset '{name}' (split '{split}') is not available: "
                                      + "; ".join(where) + ". " + _how_to_fix(name))
    hub_id, config = spec.hub
    try:
        import datasets
    except ImportError:
        where.append("could not download it because the `datasets` package is not installed")
        raise DatasetUnavailableError(f"Dataset '{name}' (split '{split}') is not available: "
                                      + "; ".join(where) + ". " + _how_to_fix(name)) from None
    hub_split = spec.hub_splits[split]
    files = {"data_files": {hub_split: spec.hub_files[split]}} if split in spec.hub_files else {}
    try:
        rows = datasets.load_dataset(hub_id, config, split=hub_split, **files)
    except Exception as e:  # offline, hub down, renamed dataset...
        what = (f"{spec.hub_files[split]} (through `datasets`)" if files
                else f"'{hub_id}'{f' ({config})' if config else ''} from the Hugging Face hub")
        where.append(f"tried to download {what} and failed: "
                     f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        raise DatasetUnavailableError(f"Dataset '{name}' (split '{split}') is not available: "
                                      + "; ".join(where) + ". " + _how_to_fix(name)) from e
    records = (spec.convert(dict(r)) for r in rows)
    return tuple(r for r in records if r is not None)


def load_dataset(name: str, split: str = "train", limit: int | None = None) -> list[dict]:
    """The records of one split of a named dataset: local copy from MINIBERT_DATA, else the hub.

    `limit` keeps the first `limit` records (quick mode uses slices).
    """
    if name not in DATASETS:
        raise KeyError(f"Unknown dataset '{name}'. Known datasets: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[name]
    known = sorted(set(spec.local) | set(spec.hub_splits))
    if split not in known:
        raise KeyError(f"Dataset '{name}' has no split '{split}'. Splits: {', '.join(known)}")
    records = list(_load_cached(name, split, data_dir()))
    return records[:limit] if limit is not None else records


def vocab_file(model_name: str = "bert-base-uncased") -> Path:
    """The real vocab.txt of a published BERT: from MINIBERT_DATA, else downloaded from the hub."""
    if model_name not in VOCABS:
        raise KeyError(f"Unknown model '{model_name}'. Known: {', '.join(VOCABS)}")
    path, looked = _local_file(f"{model_name}/vocab.txt")
    if path is not None:
        return path
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(VOCABS[model_name], "vocab.txt"))
    except Exception as e:
        raise DatasetUnavailableError(
            f"The vocab of '{model_name}' is not available: {looked}; downloading '{VOCABS[model_name]}/vocab.txt' "
            f"from the Hugging Face hub failed ({type(e).__name__}). " + _how_to_fix(model_name)) from e
