"""Hugging Face checkpoints, lessons 04 and 06: the names and shapes of BERT's weights in `transformers`' folders.

What it does:
- `hf_names(config, with_heads)`: minibert's name of every tensor -> its Hugging Face name, and the fused q|k|v
  projection -> the three separate query, key and value tensors that `transformers` saves.
- `to_hf_state_dict` / `from_hf_state_dict`: one state dict to the other; on the way in, every name and shape is
  checked against the config, and any missing, unexpected or wrongly shaped weight is a `CheckpointMismatchError`
  that lists them all. Old names (LayerNorm gamma/beta) and saved buffers are handled; the tied MLM decoder is
  checked to really be the word embeddings.
- `read_weights(folder)`: model.safetensors or pytorch_model.bin, sharded or not; a truncated or corrupt file is an
  `UnreadableCheckpointError` that names it and the earlier checkpoints beside it. `resolve_folder(name)`: a local
  folder, or a hub name downloaded once by `huggingface_hub`, with an error that says what to do offline.

`BertModel.from_pretrained` / `save_pretrained` (minibert.model) and the task heads (minibert.heads) use these.

What it leaves out: TensorFlow checkpoints, other architectures' names, and sharded writing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """The weights in a checkpoint do not fit the model its config.json describes; the message lists them all."""

    def __init__(self, folder, missing=(), unexpected=(), mismatched=(), hint=""):
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)
        parts = [f"the weights in {folder} do not fit its config:"]
        for title, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("wrong shape (got, expected by the config)", self.mismatched)):
            if items:
                shown = [f"  {x}" if isinstance(x, str) else f"  {x[0]}: {x[1]} vs {x[2]}" for x in items[:30]]
                more = [f"  ... and {len(items) - 30} more"] if len(items) > 30 else []
                parts += [f"{len(items)} {title}:", *shown, *more]
        super().__init__("\n".join(parts + ([hint] if hint else [])))


class UnreadableCheckpointError(ValueError):
    """A checkpoint file that is there but cannot be read (truncated by a full disk or a killed copy, or not the
    format its name says). The message names the file and the checkpoints beside it that can be used instead."""


def unreadable_file(path: Path, error: Exception) -> UnreadableCheckpointError:
    """The error for a file that failed to load: which file, what the loader said, and what to use instead."""
    path, folder = Path(path), Path(path).parent
    step = folder.name.split("-")[-1]
    others = sorted((p for p in folder.parent.glob("checkpoint-*")
                     if p != folder and p.is_dir() and p.name.split("-")[-1].isdigit()),
                    key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    detail = " ".join(str(error).split())[:200] or type(error).__name__
    if others and folder.name.startswith("checkpoint-") and step.isdigit():
        hint = (f"Use an earlier checkpoint: {', '.join(str(p) for p in others[:3])} (to resume from it, move "
                f"{folder} out of the run folder first; resuming takes the latest one)")
    else:
        hint = "Copy or download the folder again, or save it again from the model that wrote it"
    return UnreadableCheckpointError(f"{path} is truncated or corrupt and cannot be read ({type(error).__name__}: "
                                     f"{detail}). {hint}.")


def hf_names(config, with_heads: bool) -> tuple[dict[str, str], dict[str, list[str]]]:
    """minibert name -> Hugging Face name for every saved tensor, and fused qkv name -> [query, key, value] names.
    Everything follows from the config (number of layers); the tied decoder weight is not saved."""
    pre = "bert." if with_heads else ""
    pairs = [("embeddings.word_embeddings", "embeddings.word_embeddings", ("weight",)),
             ("embeddings.position_embeddings", "embeddings.position_embeddings", ("weight",)),
             ("embeddings.token_type_embeddings", "embeddings.token_type_embeddings", ("weight",)),
             ("embeddings.layer_norm", "embeddings.LayerNorm", ("weight", "bias")),
             ("pooler.dense", "pooler.dense", ("weight", "bias"))]
    for i in range(config.num_hidden_layers):
        mine, theirs = f"encoder.layers.{i}.", f"encoder.layer.{i}."
        pairs += [(mine + a, theirs + b, ("weight", "bias")) for a, b in (
            ("attention.out", "attention.output.dense"), ("attention_norm", "attention.output.LayerNorm"),
            ("feed_forward.fc_in", "intermediate.dense"), ("feed_forward.fc_out", "output.dense"),
            ("output_norm", "output.LayerNorm"))]
    names = {f"{pre}{a}.{p}": f"{pre}{b}.{p}" for a, b, params in pairs for p in params}
    fused = {f"{pre}encoder.layers.{i}.attention.qkv.{p}":
             [f"{pre}encoder.layer.{i}.attention.self.{n}.{p}" for n in ("query", "key", "value")]
             for i in range(config.num_hidden_layers) for p in ("weight", "bias")}
    if with_heads:
        heads = (("mlm_head.dense", "cls.predictions.transform.dense"),
                 ("mlm_head.layer_norm", "cls.predictions.transform.LayerNorm"),
                 ("nsp_head.classifier", "cls.seq_relationship"))
        names.update({f"{a}.{p}": f"{b}.{p}" for a, b in heads for p in ("weight", "bias")})
        names["mlm_head.decoder.bias"] = "cls.predictions.bias"
    return names, fused


def hf_shapes(model, with_heads: bool) -> dict[str, tuple[int, ...]]:
    """The shape of every Hugging Face tensor that `model` (already built from its config) expects."""
    state = model.state_dict()
    names, fused = hf_names(model.config, with_heads)
    shapes = {theirs: tuple(state[mine].shape) for mine, theirs in names.items()}
    for mine, theirs in fused.items():  # [q | k | v]: each a third of the rows
        rows, *rest = state[mine].shape
        shapes.update({t: (rows // 3, *rest) for t in theirs})
    return shapes


def to_hf_state_dict(state: dict, config, with_heads: bool) -> dict[str, torch.Tensor]:
    names, fused = hf_names(config, with_heads)
    out = {theirs: state[mine] for mine, theirs in names.items()}
    for mine, theirs in fused.items():
        out.update(zip(theirs, state[mine].chunk(3, dim=0)))  # [q | k | v] -> q, k, v
    # safetensors wants every tensor in its own memory (no views into the fused qkv, no shared tied weight)
    return {k: v if v.device.type == "meta" else v.detach().to("cpu", copy=True).contiguous() for k, v in out.items()}


def from_hf_state_dict(sd: dict, model, with_heads: bool, folder="the checkpoint") -> dict:
    """Hugging Face tensors -> a state dict for `model` (a BertModel, or with_heads a BertForPreTraining, built from
    the folder's config), after checking every name and shape against the model."""
    config = model.config
    sd = {_new_layer_norm_name(k): v for k, v in sd.items()}
    for buffer in ("embeddings.position_ids", "embeddings.token_type_ids"):  # saved buffers, not weights
        for k in [k for k in sd if k.endswith(buffer)]:
            del sd[k]
    hint = ""
    if not with_heads:  # a BertModel may come from a BertModel folder or a BertForPreTraining one
        if any(k.startswith("bert.") for k in sd):
            sd = {k.removeprefix("bert."): v for k, v in sd.items() if not k.startswith("cls.")}
            logger.info("loading a BertModel from a pre-training checkpoint: the cls.* (MLM and NSP) heads are skipped")
    elif sd and not any(k.startswith("bert.") for k in sd):
        hint = ("these names have no 'bert.' prefix: this looks like a BertModel checkpoint; "
                "load it with BertModel.from_pretrained")
    word = ("bert." if with_heads else "") + "embeddings.word_embeddings.weight"
    if with_heads and "cls.predictions.decoder.weight" in sd:  # the tied decoder, saved by older versions
        decoder = sd.pop("cls.predictions.decoder.weight")
        if word in sd and not (decoder.shape == sd[word].shape and torch.equal(decoder, sd[word])):
            raise CheckpointMismatchError(folder, hint="cls.predictions.decoder.weight differs from the word "
                                          "embeddings; minibert ties the two and cannot load an untied decoder")
    if with_heads and "cls.predictions.decoder.bias" in sd:  # the same tensor as cls.predictions.bias
        bias = sd.pop("cls.predictions.decoder.bias")
        if "cls.predictions.bias" not in sd:
            sd["cls.predictions.bias"] = bias
        elif not torch.equal(bias, sd["cls.predictions.bias"]):
            raise CheckpointMismatchError(folder, hint="cls.predictions.decoder.bias differs from cls.predictions.bias")
    shapes = hf_shapes(model, with_heads)
    missing = sorted(set(shapes) - set(sd))
    unexpected = sorted(set(sd) - set(shapes))
    mismatched = [(k, tuple(sd[k].shape), shapes[k]) for k in sorted(set(sd) & set(shapes))
                  if tuple(sd[k].shape) != shapes[k]]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(folder, missing, unexpected, mismatched, hint)
    names, fused = hf_names(config, with_heads)
    state = {mine: sd[theirs] for mine, theirs in names.items()}
    state.update({mine: torch.cat([sd[t] for t in theirs], dim=0) for mine, theirs in fused.items()})
    if with_heads:
        state["mlm_head.decoder.weight"] = sd[word]
    return state


def _new_layer_norm_name(key: str) -> str:
    """Old checkpoints (TensorFlow conversions) call the LayerNorm parameters gamma and beta."""
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, else pytorch_model.bin (either one may be sharded with an .index.json)."""
    from safetensors.torch import load_file

    def load_bin(path):
        return torch.load(path, map_location="cpu", weights_only=True)

    def read(path: Path, load) -> dict:
        try:
            return dict(load(str(path)))
        except Exception as e:  # safetensors, torch's zip reader and pickle each fail in their own words
            raise unreadable_file(path, e) from e

    for name, load in (("model.safetensors", load_file), ("pytorch_model.bin", load_bin)):
        if (folder / name).is_file():
            return read(folder / name, load)
        index = folder / f"{name}.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            sd = {}
            for shard in shards:
                sd.update(read(folder / shard, load))
            return sd
    raise FileNotFoundError(f"{folder} holds neither model.safetensors nor pytorch_model.bin")


def resolve_folder(name_or_folder: str | Path) -> Path:
    """A local folder as it is; "course" the course's shipped small BERT; anything else is a hub name, downloaded
    (once, then cached) by huggingface_hub."""
    if str(name_or_folder) == "course":
        from minibert.course_bert import course_folder

        return course_folder()
    path = Path(name_or_folder).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: is it a checkpoint folder?")
        return path
    if path.exists() or str(name_or_folder).startswith((".", "/", "~")) or str(name_or_folder).count("/") > 1:
        raise FileNotFoundError(f"{name_or_folder} is not a checkpoint folder")
    try:
        from huggingface_hub import snapshot_download

        name = str(name_or_folder)
        folder = Path(snapshot_download(name, allow_patterns=["config.json", "vocab.txt", "model.safetensors",
                                                              "model.safetensors.index.json", "model-*.safetensors"]))
        if not any(folder.glob("model*.safetensors*")):  # older repositories have only PyTorch pickles
            folder = Path(snapshot_download(name, allow_patterns=["pytorch_model.bin", "pytorch_model.bin.index.json",
                                                                  "pytorch_model-*.bin"]))
    except Exception as e:
        raise OSError(f"{name_or_folder!r} is not a local folder, and downloading it from the Hugging Face hub failed "
                      f"({type(e).__name__}: {e}). Offline? Pass the path of a folder that holds config.json and "
                      f"model.safetensors (or pytorch_model.bin), or connect once to fill the hub cache.") from e
    return folder
