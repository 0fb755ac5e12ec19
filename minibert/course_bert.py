"""The course's own small BERT, lesson 06's laptop recipe: the text it pre-trains on, and its shipped checkpoint.

What it does:
- `unlabelled_documents("sst2", "train")`: the text of any dataset of `minibert.data`, labels dropped, as documents
  of sentences for `PretrainingDataset`. Text corpora (WikiText) keep their articles; SST-2's 67,349 training phrases
  are cut from 6,920 review sentences, so only the phrases that are not part of a longer one are kept, one document
  each; a sentence pair (MRPC, RTE) is a document of two sentences; NER sentences (CoNLL-2003, WikiANN) are read in
  their file's order, 8 to a document (consecutive CoNLL sentences come from one news story).
- `COURSE_CORPUS`: what the recipe reads: WikiText-2 and the *training* text of the English tasks that lessons 07-10
  fine-tune on; never a validation or test split of a task the course evaluates.
- `split_held_out(corpora)`: a fixed share of each corpus's documents held out for the recipe's MLM/NSP accuracy.
- `course_folder()`: the shipped checkpoint (`minibert/course_bert/`: config.json, fp16 model.safetensors,
  vocab.txt, history.json and recipe.json: the command, machine and time). `--from course` names it everywhere a
  start is named, and `random:course` is the same configuration with random weights.

What it leaves out: downloading a bigger corpus (WikiText-103, BookCorpus) and filtering or deduplicating across
corpora; the recipe itself is a `python -m minibert pretrain` command (see `RECIPE`), never a function here.
"""

from __future__ import annotations

from pathlib import Path

COURSE_CORPUS = ("wikitext-2:test", "wikitext-2:validation", "sst2:train", "conll2003:train", "wikiann-en:train",
                 "mrpc:train", "rte:train")

# the laptop recipe: `python -m minibert <RECIPE>` wrote the shipped checkpoint (recipe.json says where and how long).
# Lesson 06 explains each choice that departs from the BERT paper.
RECIPE = ("pretrain --config tiny --set hidden_dropout_prob=0 --set attention_probs_dropout_prob=0 "
          "--set max_position_embeddings=128 --corpus " + " ".join(COURSE_CORPUS) + " --vocab train:8192 "
          "--seq-len 128 --batch-size 64 --lr 2e-3 --dupe-factor 5 --max-steps 8000 --eval-every 500 "
          "--save-every 1000 --keep-checkpoints 100 --log-every 100 --out runs/course")
# how lessons 07-10 and scripts/crossover.py fine-tune in quick mode, from random weights and from the course BERT
# alike (measured: 1e-3 fine-tunes the course BERT better than 3e-4 or 1e-4 on SST-2, as it does the random start)
QUICK_FINETUNING = {"lr": 1e-3, "batch_size": 32}  # the data, lengths and epochs: minibert.tasks.QUICK
# feature-based, only the head trains (a linear layer): it takes a larger step. Measured on SST-2's quick slices, the
# frozen course BERT read through the mean of its token vectors, seed 0: lr 1e-3 0.620, 3e-3 0.666, 1e-2 0.660
QUICK_FEATURE_BASED = {"lr": 1e-2}

SENTENCES_PER_NER_DOCUMENT = 8
HELD_OUT_FRACTION = 0.05
COURSE_NAME = "course"  # `--from course`; `random:course` is its configuration with random weights


def _sst2_sentences(records: list[dict]) -> list[str]:
    """SST-2's training rows are phrases of parse trees: keep those that are not inside a longer one."""
    kept, seen = [], ""
    for text in sorted({r["sentence"].strip() for r in records}, key=lambda t: (-len(t), t)):
        if text and text not in seen:
            kept.append(text)
            seen += "\n" + text
    return kept


def unlabelled_documents(name: str, split: str = "train") -> list[list[str]]:
    """Dataset `name`'s split `split` as documents of sentences, without its labels."""
    from minibert import data
    from minibert.corpus import documents_from_lines

    records = data.load_dataset(name, split)
    if not records:
        raise ValueError(f"{name} ({split}) has no records")
    first = records[0]
    if "text" in first:  # a text corpus
        return documents_from_lines(records)
    if "tokens" in first:  # NER: sentences in the file's order
        sentences = [" ".join(r["tokens"]) for r in records if r["tokens"]]
        n = SENTENCES_PER_NER_DOCUMENT
        return [sentences[i:i + n] for i in range(0, len(sentences), n)]
    if "sentence1" in first:  # a pair task: both sentences, one document
        return [[r["sentence1"], r["sentence2"]] for r in records]
    if "question" in first:
        raise ValueError(f"{name} is a question-answering set: its contexts are not used for pre-training here")
    if name == "sst2":
        return [[s] for s in _sst2_sentences(records)]
    return [[r["sentence"]] for r in records]


def parse_source(source: str) -> tuple[str, str, int]:
    """'sst2:train' -> ('sst2', 'train', 1); 'sst2:train*3' -> ('sst2', 'train', 3): its training documents
    three times; 'wikitext-2' -> ('wikitext-2', 'train', 1)."""
    source, star, times = source.partition("*")
    if star and not (times.isdigit() and int(times) >= 1):
        raise ValueError(f"{source}*{times}: after * comes how many times to read it (a whole number, 1 or more)")
    name, _, split = source.partition(":")
    return name, split or "train", int(times) if star else 1


def split_held_out(corpora: dict[str, list], fraction: float = HELD_OUT_FRACTION,
                   times: dict[str, int] | None = None) -> tuple[list, list]:
    """The last `fraction` of each corpus's documents (at least 1 when it has 3 or more) are held out.
    Returns (training documents, held-out documents), each corpus after the other; a corpus of `times` (name: K)
    gives its training documents K times (its held-out ones once)."""
    train, held = [], []
    for name, docs in corpora.items():
        n = max(1, round(len(docs) * fraction)) if len(docs) >= 3 and fraction > 0 else 0
        train += docs[:len(docs) - n] * (times or {}).get(name, 1)
        held += docs[len(docs) - n:]
    return train, held


def course_folder() -> Path:
    """The course's shipped checkpoint folder (inside the package, so it works offline and after pip install)."""
    folder = Path(__file__).parent / "course_bert"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"the course checkpoint is missing from {folder}: reinstall minibert (pip install "
                                f"-e .) or rebuild it with `python -m minibert {RECIPE}`")
    return folder


def resolve_start(source: str) -> str:
    """'course' -> the shipped folder; 'random:course' -> its config.json (random weights); anything else as is."""
    if source == COURSE_NAME:
        return str(course_folder())
    if source == f"random:{COURSE_NAME}":
        return "random:" + str(course_folder() / "config.json")
    return source


def quick_task_data(task, tokenizer, max_length: int | None = None):
    """(train, held_out, labels) of a task in quick mode: the records, lengths and windows of its quick settings
    (minibert.tasks.QUICK), encoded."""
    from minibert.tasks import encode_task, run_settings, task_labels, task_records

    train_records, held_records = task_records(task, say=lambda *a: None)
    labels = task_labels(task, train_records, held_records)
    s = run_settings(task, quick=True)
    max_length = max_length or s.max_length
    train = encode_task(task, train_records[:s.train_limit], tokenizer, labels, max_length, s.stride, training=True)
    held = encode_task(task, held_records[:s.eval_limit], tokenizer, labels, max_length, s.stride, training=False)
    return train, held, labels


def random_vs_course(task, feature_based: bool = False, epochs: float | None = None, say=print,
                     models: dict | None = None, progress: bool | None = None) -> dict:
    """Quick mode's comparison in lessons 07-10: the course BERT's architecture from random weights
    ("random:course") and from the shipped checkpoint ("course"), fine-tuned alike (QUICK_FINETUNING, seed 0) on
    the task's quick slices.
    feature_based=True adds both starts with the encoder frozen, the head trained at QUICK_FEATURE_BASED's larger
    lr (a sentence classifier then reads the mean of the token vectors, pooling="mean": the pooler and [CLS] were
    trained by NSP only). Returns {start name: held-out metrics}, with the task's baseline (majority class, all O,
    empty answer) under "baseline". `models`, a dict, receives {start name: (fine-tuned model, tokenizer)} for a
    lesson that asks them more. `progress`: progress bars (None: unless MINIBERT_PROGRESS=0, as a lesson's
    S.progress)."""
    from minibert.finetuning import baseline_metrics
    from minibert.runtime import progress_enabled
    from minibert.tasks import compare_starts, run_settings
    from minibert.tokenizer import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_vocab_file(course_folder() / "vocab.txt")
    train, held, labels = quick_task_data(task, tokenizer)
    lr = QUICK_FINETUNING["lr"]
    starts = {"random weights": ("random:course", dict(lr=lr)), "course BERT": (COURSE_NAME, dict(lr=lr))}
    if feature_based:
        frozen = dict(lr=QUICK_FEATURE_BASED["lr"], feature_based=True) | (
            {"pooling": "mean"} if task.kind == "classification" else {})
        starts |= {f"{name}, feature-based": (source, frozen)
                   for name, (source, _) in list(starts.items())}
    runs = compare_starts(task, train, held, tokenizer, starts, labels=labels if task.kind != "qa" else None,
                          epochs=epochs or run_settings(task, quick=True).epochs,
                          batch_size=QUICK_FINETUNING["batch_size"], say=say,
                          progress=progress_enabled() if progress is None else progress)
    if models is not None:
        models.update({name: (model, tokenizer) for name, (_, model) in runs.items()})
    results = {"baseline": baseline_metrics(held, train)}
    return results | {name: result.best_metrics for name, (result, _) in runs.items()}


def crossover() -> dict:
    """The measured crossover (scripts/crossover.py): {"settings", "metrics", "points": [{"step", "sst2",
    "conll2003"}]}, the downstream score in quick mode after fine-tuning from each checkpoint of the recipe."""
    import json

    return json.loads((course_folder() / "crossover.json").read_text(encoding="utf-8"))


def plot_crossover(tasks=("sst2", "conll2003"), ax=None):
    """Downstream score against pre-training steps (step 0: random weights), one line per task. Returns the axes."""
    import matplotlib.pyplot as plt

    measured = crossover()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    names = {"sst2": "SST-2 accuracy", "conll2003": "CoNLL-2003 entity F1"}
    for task in tasks:
        steps = [p["step"] for p in measured["points"]]
        scores = [p[task] for p in measured["points"]]
        line, = ax.plot(steps, scores, marker="o", label=names.get(task, task))
        ax.axhline(scores[0], color=line.get_color(), linestyle=":", linewidth=1)  # the random start, for reference
    ax.set_xlabel("pre-training steps of the recipe (0: random weights)")
    ax.set_ylabel("held-out score after fine-tuning")
    ax.set_title("When does pre-training pay? (quick-mode fine-tuning; dotted: from random weights)")
    ax.legend()
    return ax
