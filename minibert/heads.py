"""Task heads, lessons 07-10: a classifier on [CLS], a tagger on every token, and a span pointer for QA.

What it does:
- `BertForSequenceClassification`: softmax(W C + b) on the pooled [CLS] vector C, after dropout, for one sentence or
  a pair (segment ids tell the two apart); with one output (num_labels=1) a score trained by the mean squared error,
  as for sentence similarity (STS-B). `BertForTokenClassification`: one label per token, read from the last
  hidden layer or, as the BERT paper did for feature-based NER, from the concatenation of the last four.
  `BertForQuestionAnswering`: a start and an end logit per token. Each `forward(input_ids, token_type_ids,
  attention_mask, labels=... | start_positions=..., end_positions=...)` returns an output with `.loss`, so the one
  `minibert.training.Trainer` trains it. `feature_based=True` (or `.freeze_encoder()`) trains the head only.
- Checkpoints: `from_pretrained(folder or hub name)` takes the encoder from a BertForPreTraining, BertModel or task
  folder and says which weights are new; `save_pretrained` writes a folder that `transformers` loads.
  `check_vocab` refuses a tokenizer whose vocab is not the checkpoint's.

What it leaves out: multiple-choice (SWAG) and SQuAD v2 no-answer heads, CRF layers, several regressed scores per
input, and label smoothing.

Shapes: B batch, T sequence length, C hidden size, K number of labels, L number of layers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from minibert.checkpoints import from_hf_state_dict, read_weights, resolve_folder, to_hf_state_dict
from minibert.model import IGNORE_INDEX, BertConfig, BertModel, check_labels, init_weights

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
        extra = {"minibert_head": {"feature_based": self.feature_based, "last_n_layers": self.last_n_layers,
                                   "pooling": getattr(self, "pooling", "pooler")}}
        labels = getattr(self, "labels", None)
        if labels is not None:
            extra.update(num_labels=len(labels), id2label={str(i): x for i, x in enumerate(labels)},
                         label2id={x: i for i, x in enumerate(labels)})
        elif hasattr(self, "num_labels"):  # unnamed labels: their number still decides the head's shape
            extra.update(num_labels=self.num_labels)
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
        model.bert.load_state_dict(from_hf_state_dict(sd, model.bert, with_heads=False, folder=folder))
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
        elif "num_labels" in accepted and "num_labels" in raw:
            options["num_labels"] = int(raw["num_labels"])
        if "last_n_layers" in accepted:
            options["last_n_layers"] = int(saved.get("last_n_layers", 1))
        if "pooling" in accepted:
            options["pooling"] = saved.get("pooling", "pooler")
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
    """One label per sentence (or pair): softmax(W dropout(v) + b), or with num_labels=1 a score W dropout(v) + b
    trained by the mean squared error (similarity as regression, lesson 08). v (B, C) is read from the encoder by
    `pooling`:
    "pooler" (the default, Google's code and transformers': tanh(W h_[CLS] + b), pre-trained by NSP), "cls" (the
    paper's C: the last hidden state of [CLS] itself) or "mean" (the average of the real tokens' last hidden states,
    what a frozen MLM-trained encoder offers best: lesson 07's feature-based comparison). Only "pooler" is what a
    `transformers` BertForSequenceClassification computes from a saved folder."""

    _heads = ("classifier",)
    POOLINGS = ("pooler", "cls", "mean")

    def __init__(self, config: BertConfig, num_labels: int = 2, feature_based: bool = False, labels=None,
                 pooling: str = "pooler"):
        super().__init__(config)
        if pooling not in self.POOLINGS:
            raise ValueError(f"pooling={pooling!r}: use one of {', '.join(map(repr, self.POOLINGS))}")
        self.labels = list(labels) if labels is not None else None
        self.num_labels = len(self.labels) if self.labels is not None else num_labels
        self.pooling = pooling
        self.classifier = nn.Linear(config.hidden_size, self.num_labels)
        self._init_head(feature_based)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None) -> TaskOutput:
        """labels (B,): class ids; loss: mean cross-entropy. With one output (num_labels=1, a similarity score):
        labels (B,) floats, loss: mean squared error, as transformers' BertForSequenceClassification computes it."""
        h, pooled = self._encode(input_ids, token_type_ids, attention_mask)  # (B, T, C), (B, C)
        if self.pooling == "cls":
            pooled = h[:, 0]  # (B, C)
        elif self.pooling == "mean":
            real = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).unsqueeze(-1)
            pooled = (h * real).sum(1) / real.sum(1).clamp(min=1)  # (B, C): padding left out
        logits = self.classifier(self.dropout(pooled))  # (B, K)
        loss = None
        if labels is not None and self.num_labels == 1:  # regression: one score per input
            if not labels.is_floating_point() or tuple(labels.shape) != (input_ids.size(0),):
                raise ValueError(f"a one-output head (num_labels=1) regresses a score: labels must be floats of shape "
                                 f"({input_ids.size(0)},), got {labels.dtype} of shape {tuple(labels.shape)}")
            loss = F.mse_loss(logits[:, 0].float(), labels.float())
        elif labels is not None:
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
