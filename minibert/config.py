"""The configuration of a BERT, lesson 04: its sizes, with the field names of a BERT `config.json`.

What it does:
- `BertConfig`: vocabulary, hidden size, layers, heads, feed-forward width, positions, dropout, with presets for
  the published sizes (`BertConfig.preset("base")`, tiny to large); `from_json_file` reads a real `config.json`
  and refuses, in one message that lists them all, the settings minibert does not implement (a decoder, relative
  positions, the tanh GELU, factorised embeddings...).

What it leaves out: every field of `transformers`' BertConfig that does not change the model (they are skipped).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from minibert.checkpoints import unreadable_file

# name: (num_hidden_layers, hidden_size); heads = hidden / 64 and intermediate = 4 * hidden, as Google published them
PRESETS = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512), "base": (12, 768),
           "large": (24, 1024)}

# config.json keys that change neither the weights nor the outputs of a BERT encoder: training switches, generation
# and tokenizer settings, labels for classifiers, bookkeeping, and the unused "pooler_*" keys of Google's configs
_IGNORED_KEYS = {
    "architectures", "transformers_version", "torch_dtype", "dtype", "use_cache", "classifier_dropout",
    "gradient_checkpointing", "directionality", "pooler_fc_size", "pooler_num_attention_heads",
    "pooler_num_fc_layers", "pooler_size_per_head", "pooler_type", "chunk_size_feed_forward", "_name_or_path",
    "output_hidden_states", "output_attentions", "return_dict", "torchscript", "id2label", "label2id", "num_labels",
    "problem_type", "finetuning_task", "tokenizer_class", "prefix", "bos_token_id", "eos_token_id", "sep_token_id",
    "decoder_start_token_id", "task_specific_params", "_attn_implementation_autoset", "attn_implementation",
    "max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty",
    "temperature", "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "tf_legacy_loss",
    "use_bfloat16", "tie_encoder_decoder", "cross_attention_hidden_size", "do_lower_case",
}
# keys minibert understands only with one value (anything else would be a different architecture)
_REQUIRED_VALUES = {"model_type": "bert", "position_embedding_type": "absolute", "is_decoder": False,
                    "add_cross_attention": False, "is_encoder_decoder": False, "tie_word_embeddings": True,
                    "pruned_heads": {}}


@dataclass
class BertConfig:
    """The sizes of a BERT. Defaults are BERT-base; field names are those of a Hugging Face BERT config.json."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"  # exact GELU, x * Phi(x); the only activation minibert implements
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BertConfig.{name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(f"hidden_size ({self.hidden_size}) is not divisible by num_attention_heads "
                             f"({self.num_attention_heads}): each head needs hidden_size / num_attention_heads dims")
        if self.hidden_act != "gelu":
            raise ValueError(f"hidden_act={self.hidden_act!r} is not supported: minibert implements BERT's exact "
                             f"GELU ('gelu'); tanh approximations such as 'gelu_new' give different outputs")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"BertConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id={self.pad_token_id} is outside the vocabulary "
                             f"(vocab_size={self.vocab_size})")

    @classmethod
    def preset(cls, name: str, **overrides) -> BertConfig:
        """A published size: tiny (L2/H128), mini (L4/H256), small (L4/H512), medium (L8/H512), base, large."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
        layers, hidden = PRESETS[name]
        sizes = dict(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=hidden // 64,
                     intermediate_size=4 * hidden)
        return cls(**{**sizes, **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> BertConfig:
        """From a config.json's dict. Keys that do not change the model are skipped; unknown keys, and values that
        would need another architecture (a decoder, relative positions, untied output embeddings...), are errors."""
        known = {f.name for f in fields(cls)}
        problems = [f"{k}={d[k]!r} (minibert supports only {v!r})" for k, v in _REQUIRED_VALUES.items()
                    if k in d and d[k] != v and not (k == "pruned_heads" and not d[k])]
        if "embedding_size" in d and d["embedding_size"] != d.get("hidden_size"):
            problems.append(f"embedding_size={d['embedding_size']!r} differs from hidden_size (factorised embeddings)")
        unknown = sorted(set(d) - known - _IGNORED_KEYS - set(_REQUIRED_VALUES) - {"embedding_size"})
        if unknown:
            problems.append(f"unknown keys {unknown}")
        if problems:
            raise ValueError("this config is not one minibert can build: " + "; ".join(problems))
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_json_file(cls, path: str | Path) -> BertConfig:
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:  # truncated, or not a config.json at all
            raise unreadable_file(Path(path), e) from e
        if not isinstance(d, dict):
            raise ValueError(f"{path} holds a JSON {type(d).__name__}, not the object of a BERT config.json")
        return cls.from_dict(d)

    def to_dict(self) -> dict:
        return asdict(self)
