"""The tasks of lessons 07-10 by name: their datasets, their quick and full settings, and several starts compared.

What it does:
- `TASKS`: every task of the course (SST-2, MRPC, RTE, ChnSentiCorp; STS-B similarity; CoNLL-2003, WNUT-17, WikiANN
  and the Chinese NER sets; SQuAD v1.1 and CMRC 2018), each with its kind, dataset, vocabulary and metric.
- `run_settings(task, quick)`: the one definition of quick mode (slices that train in seconds on a laptop CPU) and
  full mode (whole datasets), read by the command line, the lessons and the course BERT's comparisons.
- `task_records`: a task's train and held-out records, with a held-out split carved out (and said so) when the real
  one is not available offline; `task_labels`, `encode_task`.
- `model_for_task(task, source, tokenizer)`: the task's head on an encoder from a checkpoint folder, a hub name,
  "course" (the course's own small BERT) or random weights ("random:tiny", "random:course").
- `compare_starts`: one task fine-tuned from several starting encoders alike, the comparison of every lesson.

What it leaves out: GLUE's other tasks, and the test splits (their labels are not public).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from minibert.finetuning import finetune
from minibert.finetuning_data import (
    TaskDataset,
    encode_classification,
    encode_ner,
    encode_similarity,
    prepare_qa_features,
)
from minibert.heads import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from minibert.model import BertConfig
from minibert.runtime import seed_everything

# ---------------------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """A fine-tuning task of the course: which dataset, which head, which vocab, which metric decides."""

    name: str
    kind: str  # "classification", "similarity" (a score per pair, regression), "ner" or "qa"
    dataset: str
    vocab: str = "bert-base-uncased"
    text_keys: tuple[str, ...] = ("sentence",)
    label_names: tuple[str, ...] = ("negative", "positive")  # sentence tasks; NER takes its tags from the data
    metric: str = "accuracy"

    @property
    def chinese(self) -> bool:
        return self.vocab == "bert-base-chinese"


TASKS = {t.name: t for t in [
    Task("sst2", "classification", "sst2"),
    Task("mrpc", "classification", "mrpc", text_keys=("sentence1", "sentence2"),
         label_names=("not_equivalent", "equivalent"), metric="f1"),
    Task("rte", "classification", "rte", text_keys=("sentence1", "sentence2"),
         label_names=("entailment", "not_entailment")),
    Task("stsb", "similarity", "stsb", text_keys=("sentence1", "sentence2"), label_names=("similarity",),
         metric="spearman"),
    Task("chnsenticorp", "classification", "chnsenticorp", vocab="bert-base-chinese"),
    *[Task(n, "ner", n, metric="f1") for n in ("conll2003", "wnut17", "wikiann-en")],
    *[Task(n, "ner", n, vocab="bert-base-chinese", metric="f1")
      for n in ("weibo-ner", "msra-ner", "peoples-daily-ner")],
    Task("squad", "qa", "squad", metric="f1"),
    Task("cmrc2018", "qa", "cmrc2018", vocab="bert-base-chinese", metric="f1"),
]}


@dataclass(frozen=True)
class RunSettings:
    """How much of a task a run uses and how long it trains, in quick or full mode. One place for each number: the
    command line, lessons 07-10 and the course BERT's comparisons all read `run_settings(task, quick)`."""

    train_limit: int | None  # the first N training records (None: all of them)
    eval_limit: int | None  # the first N held-out records (None: all of them)
    max_length: int  # tokens per example; for QA, per window of [CLS] question [SEP] paragraph part [SEP]
    stride: int  # QA: tokens that two neighbouring windows of a long paragraph share
    epochs: float


# quick mode: slices that train in seconds to a minute on a laptop CPU, by task kind, and for CMRC2018, whose long
# contexts (one token per character) give four windows per question
QUICK = {"classification": RunSettings(2000, 500, 128, 64, 3), "ner": RunSettings(1000, 300, 128, 64, 3),
         "qa": RunSettings(1000, 300, 128, 64, 2), "cmrc2018": RunSettings(300, 100, 128, 64, 2)}
# full mode: every record, and for QA 384-token windows that share 128 tokens (Hugging Face's run_qa.py defaults)
FULL = {"classification": RunSettings(None, None, 128, 128, 3), "ner": RunSettings(None, None, 128, 128, 3),
        "qa": RunSettings(None, None, 384, 128, 2)}


def run_settings(task: Task | str, quick: bool) -> RunSettings:
    """The task's quick-mode or full-mode settings (by its name where it has its own, else by its kind; a pair
    scored for similarity is sized like a pair classified)."""
    task = TASKS[task] if isinstance(task, str) else task
    table = QUICK if quick else FULL
    return table.get(task.name, table["classification" if task.kind == "similarity" else task.kind])


def task_records(task: Task | str, seed: int = 0, held_out_fraction: float = 0.2, say=print,
                 only_split: str | None = None):
    """(train records, held-out records) of a task: its train and validation splits. When one of them is not
    available (offline, only part of the data in MINIBERT_DATA), the other is split in two, shuffled with `seed`
    (by context for QA, so that no paragraph is in both), and `say` tells so: such numbers are not the published dev
    numbers. `only_split` ("validation", say) splits that one split in two even where the others are available, so
    that a quick run sees the same records online and offline."""
    from minibert.data import DatasetUnavailableError, load_dataset

    task = TASKS[task] if isinstance(task, str) else task
    splits = {}
    for split in [only_split] if only_split else ("train", "validation", "test"):
        if split == "test" and splits:
            break  # a test split is only a last resort
        try:
            splits[split] = load_dataset(task.dataset, split)
        except (DatasetUnavailableError, KeyError):
            if only_split:
                raise
    if "train" in splits and "validation" in splits:
        return splits["train"], splits["validation"]
    if not splits:
        raise FileNotFoundError(f"no split of {task.dataset} is available: set MINIBERT_DATA or connect to the hub")
    name, records = next(iter(splits.items()))
    groups: dict[str, list] = {}
    for r in records:  # QA: one group per context; otherwise one per record
        groups.setdefault(r["context"] if task.kind == "qa" else str(len(groups)), []).append(r)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    n_held = max(1, round(len(keys) * held_out_fraction))
    held, train = keys[:n_held], keys[n_held:]
    why = "is used, as asked" if only_split else "is available here"
    say(f"{task.dataset}: only the '{name}' split {why}, so {1 - held_out_fraction:.0%} of it trains and "
        f"{held_out_fraction:.0%} is held out (not the published dev set)")
    return [r for k in train for r in groups[k]], [r for k in held for r in groups[k]]


def task_labels(task: Task, train_records, held_out_records) -> list:
    """The label names: the task's for sentences; for NER every tag seen, O first, then by type and B before I."""
    if task.kind != "ner":
        return list(task.label_names)
    tags = {t for r in [*train_records, *held_out_records] for t in r["ner_tags"]} - {"O"}
    return ["O", *sorted(tags, key=lambda t: (t[2:], t[0]))]


def encode_task(task: Task, records, tokenizer, labels, max_length: int = 128, stride: int = 128,
                training: bool = True) -> TaskDataset:
    """The TaskDataset of a task's records (the right `encode_*` or `prepare_qa_features`)."""
    if task.kind == "classification":
        return encode_classification(records, tokenizer, max_length, task.text_keys, num_labels=len(labels))
    if task.kind == "similarity":
        return encode_similarity(records, tokenizer, max_length, task.text_keys)
    if task.kind == "ner":
        return encode_ner(records, tokenizer, labels, max_length)
    return prepare_qa_features(records, tokenizer, max_length, stride, training=training, chinese=task.chinese)


def model_for_task(task: Task, source: str, tokenizer, labels=None, feature_based: bool = False,
                   last_n_layers: int = 1, overrides: dict | None = None, verbose: bool = True,
                   pooling: str | None = None):
    """The task's model from `source`: a checkpoint folder, a hub name, "course" (the course's shipped small BERT), or
    "random:PRESET" (tiny, mini..., a config.json, or "random:course": the course BERT's configuration) for a randomly
    initialised encoder sized for `tokenizer`'s vocab. `pooling` (sentence tasks only): what the classifier reads,
    see BertForSequenceClassification."""
    from minibert.course_bert import resolve_start

    source = resolve_start(str(source))
    sentence_level = task.kind in ("classification", "similarity")  # one output per input, read from [CLS]
    cls = BertForSequenceClassification if sentence_level else {"ner": BertForTokenClassification,
                                                                 "qa": BertForQuestionAnswering}[task.kind]
    options = {"feature_based": feature_based}
    if not sentence_level:
        options["last_n_layers"] = last_n_layers
    if task.kind == "similarity":
        labels = list(labels or task.label_names)
        if len(labels) != 1:
            raise ValueError(f"{task.name} regresses one score per pair, so it takes one label name, got {labels}")
    if task.kind != "qa":
        options["labels"] = labels
    if pooling is not None:
        if not sentence_level:
            raise ValueError(f"pooling={pooling!r} is for sentence tasks; {task.name} labels every token")
        options["pooling"] = pooling
    if source.startswith("random:"):
        preset = source.removeprefix("random:")
        sizes = {"vocab_size": len(tokenizer.id_to_token), "pad_token_id": tokenizer.pad_id, **(overrides or {})}
        if Path(preset).is_file():
            config = BertConfig(**{**BertConfig.from_json_file(preset).to_dict(), **sizes})
        else:
            config = BertConfig.preset(preset, **sizes)
        return cls(config, **options)
    return cls.from_pretrained(source, tokenizer=tokenizer, verbose=verbose, **options)



def compare_starts(task: Task, train: TaskDataset, held_out: TaskDataset, tokenizer, starts: dict,
                   labels=None, epochs: float = 3, batch_size: int = 32, seed: int = 0, device=None,
                   say=print, progress: bool = True) -> dict:
    """Fine-tune one task from several starting encoders on the same data: the full-mode comparison of lessons 07-10.

    starts: {name: (source, options)}. source is what `model_for_task` takes ("random:mini", a checkpoint folder as a
    str or Path, a hub name), or None for "no checkpoint" (skipped, and said). options: `lr` (required) and any of
    feature_based, last_n_layers, pooling, overrides. A source that cannot be loaded here (the hub, offline) is said and
    skipped. Returns {name: (FinetuneResult, model)} for the starts that ran, each model on `device`, in eval mode.
    """
    from minibert.training import TrainingConfig

    done = {}
    for name, (source, options) in starts.items():
        options = dict(options)
        lr = options.pop("lr")
        if source is None:
            say(f"{name}: no checkpoint found, skipped")
            continue
        try:
            seed_everything(seed)  # each start's random weights and head are the same whichever starts came before
            model = model_for_task(task, str(source), tokenizer, labels=labels, **options)
        except (OSError, ValueError) as e:  # FileNotFoundError and the hub's errors are OSErrors
            why = str(e) if len(str(e)) <= 150 else str(e)[:150] + "..."
            hint = " Offline? It needs the hub." if isinstance(e, OSError) else ""
            say(f"{name}: not available here ({type(e).__name__}: {why}).{hint}")
            continue
        if device is not None:
            model = model.to(device)
        config = TrainingConfig(lr=lr, batch_size=batch_size, seed=seed, progress=progress)
        result = finetune(model, train, held_out, config, epochs=epochs)
        scores = "  ".join(f"{k} {v:.4f}" for k, v in result.best_metrics.items() if k != "loss")
        say(f"{name}: {scores}")
        done[name] = (result, model.eval())
    return done
