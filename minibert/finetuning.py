"""Fine-tuning, lessons 07-10: task heads on `BertModel`, training them, and evaluation.

What it does:
- Heads. `BertForSequenceClassification`: softmax(W C + b) on the pooled [CLS] vector C, after dropout, for one
  sentence or a pair (segment ids tell the two apart). `BertForTokenClassification`: one label per token, read from the
  last hidden layer or, as the BERT paper did for feature-based NER, from the concatenation of the last four.
  `BertForQuestionAnswering`: a start and an end logit per token. Each `forward(input_ids, token_type_ids,
  attention_mask, labels=... | start_positions=..., end_positions=...)` returns an output with `.loss`, so the one
  `minibert.pretraining.Trainer` trains it. `feature_based=True` (or `.freeze_encoder()`) trains the head only.
- Checkpoints: `from_pretrained(folder or hub name)` takes the encoder from a BertForPreTraining, BertModel or task
  folder and says which weights are new; `save_pretrained` writes a folder that `transformers` loads.
  `check_vocab` refuses a tokenizer whose vocab is not the checkpoint's.
- Data (`minibert.finetuning_data`): what each task's examples become, and the best answer span back to text.
- Training. `evaluate` (accuracy/F1, entity F1, SQuAD EM/F1), `baseline_metrics` (majority class, all-O, empty
  answer), and `finetune`: the Trainer with an evaluation each epoch and the best weights kept (`KeepBest`).
- Tasks. `TASKS` and `task_records`: the datasets of the course by name, with a held-out split carved out (and said
  so) when the real one is not available offline. `compare_starts`: one task fine-tuned from several starting
  encoders (random, the learner's checkpoint, `bert-base-uncased`), the full-mode comparison of every lesson.

What it leaves out: multiple-choice (SWAG) and SQuAD v2 no-answer heads, CRF layers, regression (STS-B),
label smoothing, layer-wise learning-rate decay, and ensembling.

Shapes: B batch, T sequence length, C hidden size, K number of labels, L number of layers.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from minibert import metrics
from minibert.checkpoints import from_hf_state_dict, read_weights, resolve_folder, to_hf_state_dict
from minibert.finetuning_data import (
    TaskDataset,
    encode_classification,
    encode_ner,
    postprocess_qa,
    prepare_qa_features,
)
from minibert.model import IGNORE_INDEX, BertConfig, BertModel, check_labels, init_weights
from minibert.runtime import seed_everything

# ---------------------------------------------------------------------------------------------------- heads


@dataclass
class TaskOutput:
    logits: torch.Tensor  # (B, K) for sentences, (B, T, K) for tokens
    loss: torch.Tensor | None = None


@dataclass
class QAOutput:
    start_logits: torch.Tensor  # (B, T)
    end_logits: torch.Tensor  # (B, T)
    loss: torch.Tensor | None = None  # mean of the start and end cross-entropies


class VocabMismatchError(ValueError):
    """The tokenizer's vocab is not the one the checkpoint's embeddings were trained with. `reason` is what differs
    (the command line adds its own advice to it: --vocab, not Python)."""

    def __init__(self, reason: str, how: str):
        self.reason = reason
        super().__init__(f"{reason}. {how}")


class _TaskModel(nn.Module):
    """What the three heads share: the encoder, feature-based mode, and checkpoint folders."""

    _heads: tuple[str, ...] = ()  # names of the head modules (the Hugging Face names of their weights)

    def __init__(self, config: BertConfig, last_n_layers: int = 1):
        super().__init__()
        if not 1 <= last_n_layers <= config.num_hidden_layers + 1:
            raise ValueError(f"last_n_layers={last_n_layers}, but this encoder has {config.num_hidden_layers} layers "
                             f"(+ the embeddings = {config.num_hidden_layers + 1} hidden states to concatenate)")
        self.config, self.last_n_layers = config, last_n_layers
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.feature_based = False
        self.loading_info: dict = {"new": [], "skipped": []}
        self.source_folder: Path | None = None

    def _init_head(self, feature_based: bool) -> None:
        """BERT's initialisation for the new head; then, in feature-based mode, freeze the encoder."""
        for name in self._heads:
            getattr(self, name).apply(lambda m: init_weights(m, self.config.initializer_range))
        if feature_based:
            self.freeze_encoder()

    def freeze_encoder(self) -> _TaskModel:
        """Feature-based mode: the encoder's weights stay as they are (no gradients, dropout off); the head trains."""
        for p in self.bert.parameters():
            p.requires_grad_(False)
        self.feature_based = True
        self.bert.eval()
        return self

    def unfreeze_encoder(self) -> _TaskModel:
        """Back to full fine-tuning: every weight trains."""
        for p in self.bert.parameters():
            p.requires_grad_(True)
        self.feature_based = False
        self.bert.train(self.training)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.feature_based:
            self.bert.eval()  # frozen features: no dropout inside the encoder
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def _encode(self, input_ids, token_type_ids, attention_mask):
        """The encoder's features: (B, T, n*C) from the last n hidden states, and the pooled vector (B, C)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.feature_based):
            out = self.bert(input_ids, token_type_ids, attention_mask, output_hidden_states=self.last_n_layers > 1)
        h = out.last_hidden_state if self.last_n_layers == 1 else torch.cat(
            out.hidden_states[-self.last_n_layers:], dim=-1)  # (B, T, n*C)
        return h, out.pooler_output

    # -------------------------------------------------------------- checkpoints

    def _head_config(self) -> dict:
        extra = {"minibert_head": {"feature_based": self.feature_based, "last_n_layers": self.last_n_layers}}
        labels = getattr(self, "labels", None)
        if labels is not None:
            extra.update(num_labels=len(labels), id2label={str(i): x for i, x in enumerate(labels)},
                         label2id={x: i for i, x in enumerate(labels)})
        return extra

    def save_pretrained(self, folder, vocab_file=None) -> Path:
        """config.json (with the labels and head options) + model.safetensors in Hugging Face names, and vocab.txt."""
        import shutil

        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"architectures": [type(self).__name__], "model_type": "bert", **self.config.to_dict(),
                  "position_embedding_type": "absolute", "tie_word_embeddings": True, **self._head_config()}
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        weights = {f"bert.{k}": v for k, v in to_hf_state_dict(self.bert.state_dict(), self.config, False).items()}
        weights.update({k: v.detach().to("cpu", copy=True).contiguous() for k, v in self.state_dict().items()
                        if not k.startswith("bert.")})
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        if vocab_file is not None:
            shutil.copyfile(vocab_file, folder / "vocab.txt")
        return folder

    @classmethod
    def from_pretrained(cls, name_or_folder, tokenizer=None, verbose: bool = True, **options):
        """The encoder of a checkpoint folder (or hub name) under a head of this class.

        Works with BertForPreTraining folders (the MLM/NSP heads are left out), BertModel folders and task folders
        (whose head is kept when it fits). Head options (num_labels, labels, feature_based, last_n_layers) come from
        `options`, else from the folder's config.json. `model.loading_info` lists the new and the skipped weights;
        `verbose` prints them. With `tokenizer`, `check_vocab` runs first.
        """
        folder = resolve_folder(name_or_folder)
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        saved = raw.pop("minibert_head", {})
        config = BertConfig.from_dict(raw)
        if tokenizer is not None:
            check_vocab(config, tokenizer, folder)
        options = {k: v for k, v in options.items() if v is not None}
        saved_options = cls._saved_options(raw, saved)
        if "num_labels" in options and "labels" not in options:
            saved_options.pop("labels", None)  # a new number of labels: the saved names no longer apply
        options = {**saved_options, **options}
        feature_based = options.pop("feature_based", False)
        model = cls(config, **options)
        sd = read_weights(folder)
        head_names = ("classifier.", "qa_outputs.")  # any task head: kept if it is ours and fits, else skipped
        head = {k: sd.pop(k) for k in list(sd) if k.startswith(head_names)}
        skipped = sorted(k for k in sd if k.startswith("cls."))
        prefix = "bert." if any(k.startswith("bert.") for k in sd) else ""
        fresh, new = model.state_dict(), []
        for name in ("pooler.dense.weight", "pooler.dense.bias"):
            if prefix + name not in sd:  # Hugging Face token-classification and QA checkpoints have no pooler
                sd[prefix + name] = fresh[f"bert.{name}"]
                new.append(f"bert.{name}")
        model.bert.load_state_dict(from_hf_state_dict(sd, config, with_heads=False, folder=folder))
        kept = {k: v for k, v in head.items() if k in fresh and tuple(v.shape) == tuple(fresh[k].shape)}
        model.load_state_dict(kept, strict=False)
        new += [k for k in fresh if not k.startswith("bert.") and k not in kept]
        skipped += sorted(set(head) - set(kept))
        model.loading_info, model.source_folder = {"new": new, "skipped": skipped}, folder
        if feature_based:
            model.freeze_encoder()
        if verbose and (new or skipped):
            parts = [f"Loaded the encoder of {name_or_folder} into {cls.__name__}."]
            if new:
                parts.append(f"New, randomly initialised (fine-tuning trains them): {', '.join(new)}.")
            if skipped:
                cls_heads = [k for k in skipped if k.startswith("cls.")]
                rest = [k for k in skipped if not k.startswith("cls.")]
                if cls_heads:
                    parts.append(f"Not used: the pre-training heads ({len(cls_heads)} tensors, cls.*).")
                if rest:
                    parts.append(f"Not used (another head, or another number of labels): {', '.join(rest)}.")
            print(" ".join(parts))
        return model.eval()

    @classmethod
    def _saved_options(cls, raw: dict, saved: dict) -> dict:
        """Head options stored in a folder of this same head: labels, last_n_layers, feature_based."""
        if cls.__name__ not in raw.get("architectures", []):
            return {}
        import inspect

        accepted = inspect.signature(cls.__init__).parameters
        options = {"feature_based": bool(saved.get("feature_based", False))}
        if "labels" in accepted and "id2label" in raw:
            options["labels"] = [raw["id2label"][str(i)] for i in range(len(raw["id2label"]))]
        if "last_n_layers" in accepted:
            options["last_n_layers"] = int(saved.get("last_n_layers", 1))
        return options


def check_vocab(model_or_config, tokenizer, folder=None) -> None:
    """Raise VocabMismatchError unless the tokenizer's vocab is the checkpoint's: the same size as the embedding
    table (config.vocab_size) and, when the folder has a vocab.txt, the same token on every line."""
    config = getattr(model_or_config, "config", model_or_config)
    folder = folder if folder is not None else getattr(model_or_config, "source_folder", None)
    n = len(tokenizer.id_to_token)
    how = ("Use the tokenizer of the checkpoint (WordPieceTokenizer.from_vocab_file(folder / 'vocab.txt')), or a "
           "checkpoint pre-trained with this vocab.")
    if n != config.vocab_size:
        raise VocabMismatchError(f"the tokenizer has {n} tokens but the checkpoint's embedding table has "
                                 f"vocab_size={config.vocab_size} rows: they come from different vocabularies, so "
                                 f"token ids would point at the wrong embeddings", how)
    vocab_txt = Path(folder) / "vocab.txt" if folder is not None else None
    if vocab_txt is not None and vocab_txt.is_file():
        lines = vocab_txt.read_text(encoding="utf-8").split("\n")
        for i, token in enumerate(tokenizer.id_to_token):
            theirs = lines[i].rstrip() if i < len(lines) else None
            if (token or "") != theirs:
                raise VocabMismatchError(f"the tokenizer's vocab differs from {vocab_txt} at id {i}: {token!r} vs "
                                         f"{theirs!r} (same size, different tokens)", how)


class BertForSequenceClassification(_TaskModel):
    """One label per sentence (or pair): softmax(W dropout(C) + b), C = the pooled [CLS] vector (B, C)."""

    _heads = ("classifier",)

    def __init__(self, config: BertConfig, num_labels: int = 2, feature_based: bool = False, labels=None):
        super().__init__(config)
        self.labels = list(labels) if labels is not None else None
        self.num_labels = len(self.labels) if self.labels is not None else num_labels
        self.classifier = nn.Linear(config.hidden_size, self.num_labels)
        self._init_head(feature_based)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None) -> TaskOutput:
        """labels (B,): class ids. loss: mean cross-entropy."""
        _, pooled = self._encode(input_ids, token_type_ids, attention_mask)  # (B, C)
        logits = self.classifier(self.dropout(pooled))  # (B, K)
        loss = None
        if labels is not None:
            check_labels("labels", labels, self.num_labels, f"this head has {self.num_labels} classes")
            loss = F.cross_entropy(logits.float(), labels)
        return TaskOutput(logits, loss)



class BertForTokenClassification(_TaskModel):
    """One label per token: W dropout(h_t) + b, h_t the last hidden state (B, T, C) or the last n concatenated."""

    _heads = ("classifier",)

    def __init__(self, config: BertConfig, num_labels: int = 9, feature_based: bool = False, last_n_layers: int = 1,
                 labels=None):
        super().__init__(config, last_n_layers)
        self.labels = list(labels) if labels is not None else None
        self.num_labels = len(self.labels) if self.labels is not None else num_labels
        self.classifier = nn.Linear(last_n_layers * config.hidden_size, self.num_labels)  # (n*C) -> K
        self._init_head(feature_based)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None) -> TaskOutput:
        """labels (B, T): a label id on the first sub-word of each word, -100 elsewhere (never scored)."""
        h, _ = self._encode(input_ids, token_type_ids, attention_mask)  # (B, T, n*C)
        logits = self.classifier(self.dropout(h))  # (B, T, K)
        loss = None
        if labels is not None:
            check_labels("labels", labels, self.num_labels, f"this head has {self.num_labels} labels")
            scored = labels != IGNORE_INDEX  # (B, T)
            loss = (F.cross_entropy(logits[scored].float(), labels[scored]) if scored.any()
                    else logits.sum() * 0.0)
        return TaskOutput(logits, loss)



class BertForQuestionAnswering(_TaskModel):
    """A start and an end logit per token: W h_t + b with W (2, C); the answer is the best legal span."""

    _heads = ("qa_outputs",)

    def __init__(self, config: BertConfig, feature_based: bool = False, last_n_layers: int = 1):
        super().__init__(config, last_n_layers)
        self.qa_outputs = nn.Linear(last_n_layers * config.hidden_size, 2)
        self._init_head(feature_based)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, start_positions=None,
                end_positions=None) -> QAOutput:
        """start_positions, end_positions (B,): token index of the answer's first and last token (0, [CLS], when
        the answer is not in this window). loss: the mean of the two cross-entropies."""
        h, _ = self._encode(input_ids, token_type_ids, attention_mask)  # (B, T, n*C)
        start_logits, end_logits = self.qa_outputs(self.dropout(h)).unbind(-1)  # (B, T) each
        loss = None
        if start_positions is not None and end_positions is not None:
            for name, positions in (("start_positions", start_positions), ("end_positions", end_positions)):
                check_labels(name, positions, input_ids.size(1), f"token positions in windows of {input_ids.size(1)}")
            loss = (F.cross_entropy(start_logits.float(), start_positions)
                    + F.cross_entropy(end_logits.float(), end_positions)) / 2
        return QAOutput(start_logits, end_logits, loss)



# ---------------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model, dataset: TaskDataset, batch_size: int = 64, progress: bool = False):
    """Run the model in eval mode over a dataset, shortest items first (less padding). Returns the logits of each item,
    in the dataset's order and without padding ((K,), (T_i, K), or (T_i, 2) = start and end), and the mean loss."""
    from tqdm.auto import tqdm

    from minibert.runtime import pick_precision

    device = next(model.parameters()).device
    precision = pick_precision(device)
    was_training = model.training
    model.eval()
    order = sorted(range(len(dataset)), key=lambda i: len(dataset[i]["input_ids"]))
    outputs, loss_sum, n_loss = [None] * len(dataset), 0.0, 0
    for at in tqdm(range(0, len(order), batch_size), disable=not progress, desc="evaluating", leave=False):
        index = order[at:at + batch_size]
        batch = {k: v.to(device) for k, v in dataset.collate([dataset[i] for i in index]).items()}
        with precision.autocast(device):
            out = model(**batch)
        if out.loss is not None:
            loss_sum, n_loss = loss_sum + out.loss.float().item() * len(index), n_loss + len(index)
        logits = (torch.stack([out.start_logits, out.end_logits], -1) if isinstance(out, QAOutput)
                  else out.logits).float().cpu()  # (B, K), (B, T, K) or (B, T, 2)
        for row, i in enumerate(index):
            outputs[i] = logits[row] if logits.dim() == 2 else logits[row, :len(dataset[i]["input_ids"])]
    model.train(was_training)
    return outputs, (loss_sum / n_loss if n_loss else None)


def classification_metrics(y_true, y_pred, num_labels: int) -> dict[str, float]:
    f1 = metrics.f1_binary(y_true, y_pred) if num_labels == 2 else metrics.f1_macro(y_true, y_pred, range(num_labels))
    return {"accuracy": metrics.accuracy(y_true, y_pred), "f1": f1}


def ner_metrics(dataset: TaskDataset, predicted_tags: list[list[str]]) -> dict[str, float]:
    gold = [r["ner_tags"] for r in dataset.records]
    scores = metrics.entity_prf(gold, predicted_tags)
    words = [(t, p) for g, q in zip(gold, predicted_tags) for t, p in zip(g, q)]
    return {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
            "accuracy": sum(t == p for t, p in words) / max(1, len(words))}


def evaluate(model, dataset: TaskDataset, batch_size: int = 64, progress: bool = False, n_best: int | None = None,
             max_answer_length: int = 30) -> dict[str, float]:
    """The task's metrics on a held-out TaskDataset: accuracy and F1 (binary, or macro for more than two classes);
    entity precision/recall/F1 and word accuracy; or SQuAD exact match and F1 (0-1). Plus the mean "loss"."""
    logits, loss = predict(model, dataset, batch_size, progress)
    if dataset.task == "classification":
        result = classification_metrics([it["labels"] for it in dataset.items], [int(x.argmax()) for x in logits],
                                        len(dataset.labels))
    elif dataset.task == "ner":
        result = ner_metrics(dataset, predicted_word_tags(dataset, logits))
    else:
        predictions = postprocess_qa(dataset, [x[:, 0] for x in logits], [x[:, 1] for x in logits],
                                     dataset.records, max_answer_length, n_best)
        result = metrics.squad_evaluate(predictions, dataset.records, chinese=dataset.chinese)
    return {**result, **({"loss": loss} if loss is not None else {})}


def predicted_word_tags(dataset: TaskDataset, logits) -> list[list[str]]:
    """One tag per word: the prediction on its first sub-word; 'O' for words without a token."""
    tags = []
    for item, record, x in zip(dataset.items, dataset.records, logits):
        words = ["O"] * len(record["tokens"])
        scored = [t for t, y in enumerate(item["labels"]) if y != IGNORE_INDEX]
        for t, w in zip(scored, item["words"]):
            words[w] = dataset.labels[int(x[t].argmax())]
        tags.append(words)
    return tags


def baseline_metrics(dataset: TaskDataset, train: TaskDataset | None = None) -> dict[str, float]:
    """What a model that learned nothing scores: the most frequent label of `train` (else of `dataset`) for every
    sentence; 'O' for every word; the empty answer for every question."""
    if len(dataset) == 0 or (train is not None and len(train) == 0):
        raise ValueError(f"baseline_metrics got an empty {'held-out' if len(dataset) == 0 else 'training'} dataset: "
                         f"there is nothing to score (check the limits and filters that built it)")
    if dataset.task == "classification":
        labels = [it["labels"] for it in (train or dataset).items]
        majority = max(sorted(set(labels)), key=labels.count)
        return classification_metrics([it["labels"] for it in dataset.items], [majority] * len(dataset),
                                      len(dataset.labels))
    if dataset.task == "ner":
        return ner_metrics(dataset, [["O"] * len(r["tokens"]) for r in dataset.records])
    return metrics.squad_evaluate({}, dataset.records, chinese=dataset.chinese)


# ---------------------------------------------------------------------------------------------------- training


class KeepBest:
    """A Trainer callback: after each evaluation, keep the weights with the best `metric` (a copy in memory, and a
    Hugging Face folder when `folder` is given). `restore(model)` puts them back."""

    def __init__(self, metric: str, folder=None, greater_is_better: bool = True, vocab_file=None):
        self.metric, self.folder, self.greater, self.vocab_file = metric, folder, greater_is_better, vocab_file
        self.best_value = self.best_step = self.best_metrics = self.state = None
        self._seen = -1

    def __call__(self, trainer, record) -> None:
        evals = [r for r in trainer.history if r.get("step") == trainer.step and f"eval_{self.metric}" in r]
        if not evals or trainer.step == self._seen:
            return
        self._seen = trainer.step
        value = evals[-1][f"eval_{self.metric}"]
        if self.best_value is None or (value > self.best_value if self.greater else value < self.best_value):
            self.best_value, self.best_step = value, trainer.step
            self.best_metrics = {k[5:]: v for k, v in evals[-1].items() if k.startswith("eval_")}
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
            if self.folder is not None and trainer.is_main:
                trainer.model.save_pretrained(self.folder, vocab_file=self.vocab_file)

    def restore(self, model) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


@dataclass
class FinetuneResult:
    trainer: object
    history: list[dict]
    best_metrics: dict | None  # the held-out metrics of the kept weights
    best_step: int | None
    steps_per_epoch: int
    seconds_per_epoch: float  # training time only (evaluation excluded)
    eval_seconds: float


def finetune(model, train: TaskDataset, held_out: TaskDataset, config=None, epochs: float | None = 3,
             metric: str | None = None, out_dir=None, vocab_file=None, restore_best: bool = True,
             warmup_ratio: float | None = 0.1, batch_size_eval: int = 64) -> FinetuneResult:
    """Fine-tune with `minibert.pretraining.Trainer` (AdamW, warm-up then linear decay, dynamic padding, progress
    bar): `epochs` passes over `train`, an evaluation on `held_out` at the end of every epoch, and the weights with
    the best `metric` kept (written to out_dir/best, and put back into the model at the end with restore_best).

    `config` is a TrainingConfig; its max_steps becomes epochs x steps per epoch (pass epochs=None to keep it), its
    eval_every one epoch unless set, its warm-up `warmup_ratio` of the steps (None: keep config.warmup_steps).
    metric: "accuracy" for sentences, "f1" for entities and answers by default; "loss" is minimised.
    """
    from minibert.pretraining import Trainer, TrainingConfig

    config = config or TrainingConfig(lr=5e-5, batch_size=32)
    steps_per_epoch = max(1, math.ceil(len(train) / config.batch_size) // config.grad_accum_steps)
    if epochs is not None:
        config = replace(config, max_steps=max(1, round(epochs * steps_per_epoch)))
    if warmup_ratio is not None:
        config = replace(config, warmup_steps=round(warmup_ratio * config.max_steps))
    config = replace(config, eval_every=config.eval_every or steps_per_epoch, out_dir=out_dir or config.out_dir)
    metric = metric or ("accuracy" if train.task == "classification" else "f1")
    timer = {"eval": 0.0}

    def eval_fn(m):
        t = time.perf_counter()
        result = evaluate(m, held_out, batch_size_eval, progress=config.progress)
        timer["eval"] += time.perf_counter() - t
        return result

    folder = Path(config.out_dir) / "best" if config.out_dir else None
    keep = KeepBest(metric, folder, greater_is_better=metric != "loss", vocab_file=vocab_file)
    trainer = Trainer(model, train, config, eval_fn=eval_fn, callbacks=[keep], vocab_file=vocab_file)
    start = time.perf_counter()
    history = trainer.train()
    total = time.perf_counter() - start
    if restore_best:
        keep.restore(model)
    epochs_done = max(trainer.step / steps_per_epoch, 1e-9)
    return FinetuneResult(trainer, history, keep.best_metrics, keep.best_step, steps_per_epoch,
                          (total - timer["eval"]) / epochs_done, timer["eval"])


# ---------------------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """A fine-tuning task of the course: which dataset, which head, which vocab, which metric decides."""

    name: str
    kind: str  # "classification", "ner" or "qa"
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
    """The task's quick-mode or full-mode settings (by its name where it has its own, else by its kind)."""
    task = TASKS[task] if isinstance(task, str) else task
    table = QUICK if quick else FULL
    return table.get(task.name, table[task.kind])


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
    if task.kind == "ner":
        return encode_ner(records, tokenizer, labels, max_length)
    return prepare_qa_features(records, tokenizer, max_length, stride, training=training, chinese=task.chinese)


def model_for_task(task: Task, source: str, tokenizer, labels=None, feature_based: bool = False,
                   last_n_layers: int = 1, overrides: dict | None = None, verbose: bool = True):
    """The task's model from `source`: a checkpoint folder, a hub name, "course" (the course's shipped small BERT), or
    "random:PRESET" (tiny, mini..., a config.json, or "random:course": the course BERT's configuration) for a randomly
    initialised encoder sized for `tokenizer`'s vocab."""
    from minibert.course_bert import resolve_start

    source = resolve_start(str(source))
    cls = {"classification": BertForSequenceClassification, "ner": BertForTokenClassification,
           "qa": BertForQuestionAnswering}[task.kind]
    options = {"feature_based": feature_based}
    if task.kind != "classification":
        options["last_n_layers"] = last_n_layers
    if task.kind != "qa":
        options["labels"] = labels
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
    feature_based, last_n_layers, overrides. A source that cannot be loaded here (the hub, offline) is said and
    skipped. Returns {name: (FinetuneResult, model)} for the starts that ran, each model on `device`, in eval mode.
    """
    from minibert.pretraining import TrainingConfig

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
