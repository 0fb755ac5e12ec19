"""The BERT model, lesson 04: configuration, encoder, pooler, pre-training heads, and loading real weights.

What it does:
- `BertConfig` (minibert.config): the sizes of a BERT, with the field names of a BERT `config.json`, and presets
  for the published sizes (`BertConfig.preset("base")`).
- `EncoderLayer`: self-attention then a feed-forward network (4x wider, exact GELU), each wrapped in a residual
  connection followed by LayerNorm ("post-LN", as in the original BERT). `Encoder` stacks them.
- `BertModel`: embeddings -> encoder -> `last_hidden_state` (B, T, C), plus `pooler_output` (B, C), tanh(W h_[CLS] + b).
- `BertForPreTraining`: `BertModel` with the masked-language-model head (dense, GELU, LayerNorm, then a decoder
  whose weight is the word embedding matrix, plus a bias) and the next-sentence head on the pooled vector.
  Given labels it also returns the two losses.
- `from_pretrained(folder or hub name)` / `save_pretrained(folder)`: read and write the checkpoint folders of
  Hugging Face `transformers` (`config.json` + `model.safetensors` or `pytorch_model.bin`), through
  `minibert.checkpoints`, which maps the names and checks every shape: any missing, unexpected or wrongly shaped
  weight is an error that lists them all.

What it leaves out: task heads for fine-tuning (`minibert.heads`), the pre-training data and loop
(`minibert.pretraining_data`, `minibert.training`), decoder/cross-attention use, pruned heads, other position
embedding types, and tanh-approximated GELU.

Shapes: B batch, T sequence length, C hidden size, V vocabulary size, N masked positions in the batch.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from minibert.attention import MultiHeadSelfAttention, padding_mask
from minibert.checkpoints import from_hf_state_dict, read_weights, resolve_folder, to_hf_state_dict
from minibert.config import BertConfig
from minibert.embeddings import BertEmbeddings

IGNORE_INDEX = -100  # label of the positions that the MLM loss skips (not masked), as in PyTorch's cross_entropy


def check_labels(name: str, labels: torch.Tensor, num_classes: int, what: str) -> None:
    """Labels outside 0..num_classes-1 (IGNORE_INDEX aside) make cross_entropy fail with an IndexError on a CPU and
    a bare 'device-side assert' on a GPU: name the label and the range instead (one cheap min/max per batch)."""
    scored = labels[labels != IGNORE_INDEX]
    if scored.numel() == 0:
        return
    lo, hi = (int(m) for m in torch.aminmax(scored))
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name} holds {lo if lo < 0 else hi}, outside 0..{num_classes - 1} ({what}); "
                         f"labels must be class ids (or {IGNORE_INDEX} for positions that are not scored)")


# ------------------------------------------------------------------------------------------------------ modules


@dataclass
class BertOutput:
    last_hidden_state: torch.Tensor  # (B, T, C)
    pooler_output: torch.Tensor  # (B, C)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # L + 1 x (B, T, C): embeddings, then each layer
    attentions: tuple[torch.Tensor, ...] | None = None  # L x (B, h, T, T)


@dataclass
class PreTrainingOutput:
    mlm_logits: torch.Tensor  # (B, T, V); (N, V) for the N labelled positions when mlm_labels is given
    nsp_logits: torch.Tensor  # (B, 2): 0 = B follows A, 1 = B is a random sentence
    loss: torch.Tensor | None = None  # mlm_loss + nsp_loss (or the one of them whose labels were given)
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None


class FeedForward(nn.Module):
    """Position-wise: Linear(C, I) -> exact GELU -> Linear(I, C), I = intermediate_size (4C in BERT)."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.fc_in = nn.Linear(hidden_size, intermediate_size)
        self.fc_out = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(x)))  # (B, T, C) -> (B, T, I) -> (B, T, C)


class EncoderLayer(nn.Module):
    """x -> LayerNorm(x + attention(x)) -> LayerNorm(x + feed_forward(x)): post-LN, as in the original BERT."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = MultiHeadSelfAttention(config.hidden_size, config.num_attention_heads,
                                                config.attention_probs_dropout_prob)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config.hidden_size, config.intermediate_size)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C), additive mask (B, 1, 1, T) or None -> (B, T, C), attention weights (B, h, T, T) or None."""
        a, weights = self.attention(x, mask, need_weights)  # (B, T, C)
        x = self.attention_norm(x + self.dropout(a))  # residual, then normalise (post-LN)
        x = self.output_norm(x + self.dropout(self.feed_forward(x)))  # (B, T, C)
        return x, weights




class Encoder(nn.Module):
    """A stack of `num_hidden_layers` encoder layers."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False):
        """x (B, T, C) -> (B, T, C), hidden states after the embeddings and each layer, attention weights."""
        hidden_states, attentions = [x], []
        for layer in self.layers:
            x, weights = layer(x, mask, need_weights=output_attentions)  # (B, T, C)
            hidden_states.append(x)
            attentions.append(weights)
        return (x, tuple(hidden_states) if output_hidden_states else None,
                tuple(attentions) if output_attentions else None)


class Pooler(nn.Module):
    """tanh(W h_[CLS] + b): a vector for the whole sequence, read from the first token's hidden state."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))  # (B, T, C) -> (B, C)


class MLMHead(nn.Module):
    """Masked-LM head: dense -> GELU -> LayerNorm -> decoder to V logits. `BertForPreTraining` ties the decoder's
    weight to the word embeddings (the same (V, C) matrix reads tokens in and writes them out); the bias is its own."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)  # weight: tied to the word embeddings

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(h))))  # (..., C) -> (..., V)


class NSPHead(nn.Module):
    """Next-sentence head: Linear(C, 2) on the pooled [CLS] vector."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)  # (B, C) -> (B, 2)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: normal(0, std) weights, zero biases, LayerNorm at identity, zero [PAD] embedding."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        with torch.no_grad():
            module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class _Pretrained(nn.Module):
    """What both models share: the attention switch, parameter count, and Hugging Face checkpoint folders."""

    config: BertConfig
    _hf_prefix = ""  # "bert." for BertForPreTraining, whose encoder weights live under `bert.`

    def set_attention_implementation(self, name: str) -> None:
        """"sdpa" (default): PyTorch's fused attention; "eager": the written-out `scaled_dot_product_attention`."""
        for module in self.modules():
            if isinstance(module, MultiHeadSelfAttention):
                module.implementation = name

    def num_parameters(self) -> int:
        """Trainable numbers, shared ones (the tied decoder) counted once."""
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_pretrained(cls, name_or_folder: str | Path, attn_implementation: str = "sdpa"):
        """Load a folder written by `transformers` or `save_pretrained`, or download a hub model by name
        ("bert-base-uncased"). Weights are checked against the folder's config.json: all must be there, with their
        shapes, and none may be left over (the MLM and NSP heads are skipped, by design, when a `BertModel` is loaded
        from a pre-training checkpoint)."""
        folder = resolve_folder(name_or_folder)
        config = BertConfig.from_json_file(folder / "config.json")
        model = cls(config)
        model.load_state_dict(from_hf_state_dict(read_weights(folder), model, cls._hf_prefix == "bert.", folder))
        model.set_attention_implementation(attn_implementation)
        return model.eval()

    def save_pretrained(self, folder: str | Path, vocab_file: str | Path | None = None) -> Path:
        """Write config.json, model.safetensors (Hugging Face names) and, if given, vocab.txt into `folder`."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"architectures": [type(self).__name__], "model_type": "bert", **self.config.to_dict(),
                  "position_embedding_type": "absolute", "tie_word_embeddings": True}
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        weights = to_hf_state_dict(self.state_dict(), self.config, self._hf_prefix == "bert.")
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        if vocab_file is not None:
            shutil.copyfile(vocab_file, folder / "vocab.txt")
        return folder


class BertModel(_Pretrained):
    """Embeddings -> encoder -> (last_hidden_state (B, T, C), pooler_output (B, C))."""

    def __init__(self, config: BertConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config.vocab_size, config.hidden_size, config.max_position_embeddings,
                                         config.type_vocab_size, config.layer_norm_eps, config.hidden_dropout_prob,
                                         config.pad_token_id)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config.hidden_size)
        self.apply(lambda m: init_weights(m, config.initializer_range))
        self.set_attention_implementation(attn_implementation)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> BertOutput:
        """input_ids (B, T); token_type_ids (B, T) or None (all sentence A); attention_mask (B, T), 1 for tokens and
        0 for padding, or None (no padding). output_attentions uses the written-out attention, which has weights."""
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        mask = None
        if attention_mask is not None:
            if tuple(attention_mask.shape) != tuple(input_ids.shape):
                raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has "
                                 f"{tuple(input_ids.shape)}; it must be (batch, seq_len) with 1 = token, 0 = padding")
            if not attention_mask.bool().all():  # no padding: no mask, and attention takes its fastest path
                mask = padding_mask(attention_mask, x.dtype)  # (B, 1, 1, T), built once for all layers
        x, hidden_states, attentions = self.encoder(x, mask, output_hidden_states, output_attentions)
        return BertOutput(x, self.pooler(x), hidden_states, attentions)


class BertForPreTraining(_Pretrained):
    """BertModel + masked-LM head (on every position) + next-sentence head (on the pooled [CLS] vector)."""

    _hf_prefix = "bert."

    def __init__(self, config: BertConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, attn_implementation)
        self.mlm_head = MLMHead(config)
        self.nsp_head = NSPHead(config)
        self.mlm_head.apply(lambda m: init_weights(m, config.initializer_range))
        self.nsp_head.apply(lambda m: init_weights(m, config.initializer_range))
        self.mlm_head.decoder.weight = self.bert.embeddings.word_embeddings.weight  # tied: one (V, C) matrix

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, mlm_labels: torch.Tensor | None = None,
                nsp_labels: torch.Tensor | None = None) -> PreTrainingOutput:
        """Logits of both heads and, given labels, their losses.

        mlm_labels (B, T): the original token id at the positions to predict, IGNORE_INDEX (-100) elsewhere. When
        it is given, the MLM head runs only on those N positions (the V-wide decoder is the costliest matrix multiply
        of a small BERT, and the other positions do not count), so `mlm_logits` is (N, V), in the order of
        `mlm_labels != -100` read row by row; otherwise it is (B, T, V).
        nsp_labels (B,): 0 when sentence B follows sentence A, 1 when it is a random sentence.
        loss = mlm_loss + nsp_loss, each a mean cross-entropy (mlm_loss is 0 when no position is labelled).
        """
        out = self.bert(input_ids, token_type_ids, attention_mask)
        h = out.last_hidden_state  # (B, T, C)
        if mlm_labels is not None:
            if tuple(mlm_labels.shape) != tuple(input_ids.shape):
                raise ValueError(f"mlm_labels has shape {tuple(mlm_labels.shape)}, input_ids {tuple(input_ids.shape)}")
            labelled = mlm_labels != IGNORE_INDEX  # (B, T)
            h, targets = h[labelled], mlm_labels[labelled]  # (N, C), (N,)
        mlm_logits = self.mlm_head(h)  # (B, T, V) or (N, V)
        nsp_logits = self.nsp_head(out.pooler_output)  # (B, 2)
        mlm_loss = nsp_loss = None
        if mlm_labels is not None:
            check_labels("mlm_labels", targets, self.config.vocab_size, "the vocabulary's token ids")
            mlm_loss = F.cross_entropy(mlm_logits.float(), targets) if targets.numel() else mlm_logits.sum() * 0.0
        if nsp_labels is not None:
            if tuple(nsp_labels.shape) != (input_ids.size(0),):
                raise ValueError(f"nsp_labels must have shape ({input_ids.size(0)},), got {tuple(nsp_labels.shape)}")
            check_labels("nsp_labels", nsp_labels, 2, "0 = IsNext, 1 = NotNext")
            nsp_loss = F.cross_entropy(nsp_logits.float(), nsp_labels)
        losses = [x for x in (mlm_loss, nsp_loss) if x is not None]
        return PreTrainingOutput(mlm_logits, nsp_logits, sum(losses) if losses else None, mlm_loss, nsp_loss)
