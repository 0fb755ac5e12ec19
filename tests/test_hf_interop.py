"""Proof that minibert is BERT: random `transformers` BERTs, saved and loaded into minibert, give the same outputs
(fp32, 1e-5) with padding in the batch, and minibert's checkpoints load back into `transformers`."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from minibert.checkpoints import CheckpointMismatchError
from minibert.model import BertConfig, BertForPreTraining, BertModel

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

CONFIGS = [  # depth, width, heads, intermediate (not 4x), type vocab, vocab all vary
    dict(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=1, intermediate_size=48,
         type_vocab_size=1, max_position_embeddings=16),
    dict(vocab_size=173, hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=100,
         type_vocab_size=2, max_position_embeddings=20),
    dict(vocab_size=300, hidden_size=96, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
         type_vocab_size=3, max_position_embeddings=32, layer_norm_eps=1e-7, pad_token_id=5),
    dict(vocab_size=211, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
         type_vocab_size=2, max_position_embeddings=12, initializer_range=0.2),
]
ATOL = 1e-5


def hf_model(config: dict, cls=None, attn="sdpa", seed=0):
    torch.manual_seed(seed)
    hf_config = transformers.BertConfig(**config, attn_implementation=attn)
    model = (cls or transformers.BertForPreTraining)(hf_config).eval()
    with torch.no_grad():  # LayerNorms and biases start at 1 and 0: move them, so that a swapped name shows
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def batch(config: dict, B=4, seed=1):
    gen = torch.Generator().manual_seed(seed)
    T = min(config["max_position_embeddings"], 11)
    ids = torch.randint(0, config["vocab_size"], (B, T), generator=gen)
    attention_mask = torch.ones(B, T, dtype=torch.long)
    for b, length in enumerate([T, T - 3, 2, T - 1][:B]):
        attention_mask[b, length:] = 0
    ids = ids.masked_fill(attention_mask == 0, config.get("pad_token_id", 0))
    token_type_ids = torch.randint(0, config["type_vocab_size"], (B, T), generator=gen) * attention_mask
    return dict(input_ids=ids, token_type_ids=token_type_ids, attention_mask=attention_mask)


def close(a, b, keep=None, atol=ATOL):
    if keep is not None:
        a, b = a[keep], b[keep]
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def compare_pretraining(hf, ours, inputs, atol=ATOL):
    with torch.no_grad():
        theirs = hf(**inputs, output_hidden_states=True)
        base = ours.bert(**inputs, output_hidden_states=True)
        mine = ours(**inputs)
    keep = inputs["attention_mask"].bool()
    assert len(base.hidden_states) == len(theirs.hidden_states)
    for h_mine, h_theirs in zip(base.hidden_states, theirs.hidden_states):
        close(h_mine, h_theirs, keep, atol)
    close(mine.mlm_logits, theirs.prediction_logits, keep, atol)
    close(mine.nsp_logits, theirs.seq_relationship_logits, atol=atol)
    return base


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("index", range(len(CONFIGS)))
def test_transformers_checkpoint_gives_the_same_outputs(tmp_path, index, attn):
    config = CONFIGS[index]
    hf = hf_model(config, attn=attn, seed=index)
    hf.save_pretrained(tmp_path)
    ours = BertForPreTraining.from_pretrained(tmp_path)
    assert ours.config == BertConfig(**config)
    inputs = batch(config)
    base = compare_pretraining(hf, ours, inputs)
    with torch.no_grad():
        hf_base = hf.bert(**inputs)
    close(base.pooler_output, hf_base.pooler_output)
    close(base.last_hidden_state, hf_base.last_hidden_state, inputs["attention_mask"].bool())
    ours.set_attention_implementation("eager")  # the written-out path gives the same
    compare_pretraining(hf, ours, inputs)


def test_losses_equal_transformers(tmp_path):
    config = CONFIGS[1]
    hf = hf_model(config)
    hf.save_pretrained(tmp_path)
    ours = BertForPreTraining.from_pretrained(tmp_path)
    inputs = batch(config)
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[0, 2], labels[1, 4], labels[3, 1] = 5, 17, 99
    nsp = torch.tensor([0, 1, 0, 1])
    with torch.no_grad():
        theirs = hf(**inputs, labels=labels, next_sentence_label=nsp).loss
        mine = ours(**inputs, mlm_labels=labels, nsp_labels=nsp).loss
    close(mine, theirs)


@pytest.mark.parametrize("index", [1, 2])
def test_round_trip_into_transformers(tmp_path, index):
    config = CONFIGS[index]
    torch.manual_seed(index)
    ours = BertForPreTraining(BertConfig(**config)).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    vocab = tmp_path / "source_vocab.txt"
    vocab.write_text("".join(f"[unused{i}]\n" for i in range(config["vocab_size"])))
    folder = ours.save_pretrained(tmp_path / "out", vocab_file=vocab)
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors", "vocab.txt"]
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertForPreTraining"]
    hf, info = transformers.BertForPreTraining.from_pretrained(folder, output_loading_info=True)
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")), info
    compare_pretraining(hf.eval(), ours, batch(config))
    again = BertForPreTraining.from_pretrained(folder)
    for (name, a), b in zip(ours.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_bert_model_from_either_folder(tmp_path):
    config = CONFIGS[2]
    pretraining = hf_model(config)
    pretraining.save_pretrained(tmp_path / "pretraining")
    base = hf_model(config, cls=transformers.BertModel)
    base.save_pretrained(tmp_path / "base")
    inputs = batch(config)
    keep = inputs["attention_mask"].bool()
    for hf, folder in ((pretraining.bert, "pretraining"), (base, "base")):
        ours = BertModel.from_pretrained(tmp_path / folder)
        with torch.no_grad():
            a, b = ours(**inputs), hf(**inputs)
        close(a.last_hidden_state, b.last_hidden_state, keep)
        close(a.pooler_output, b.pooler_output)
    # and back: a minibert BertModel folder loads into transformers.BertModel
    ours.save_pretrained(tmp_path / "ours")
    hf, info = transformers.BertModel.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    with torch.no_grad():
        close(hf.eval()(**inputs).pooler_output, ours(**inputs).pooler_output)
    with pytest.raises(CheckpointMismatchError, match="BertModel.from_pretrained"):
        BertForPreTraining.from_pretrained(tmp_path / "base")


def _old_style_folder(hf, folder, fmt):
    """A checkpoint as old conversions wrote them: gamma/beta, the tied decoder saved, the position_ids buffer."""
    state = {}
    for k, v in hf.state_dict().items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        state[k] = v.clone()
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"].clone()
    state["bert.embeddings.position_ids"] = torch.arange(hf.config.max_position_embeddings)[None]
    folder.mkdir()
    hf.config.to_json_file(folder / "config.json")
    if fmt == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    assert any(k.endswith("gamma") for k in state)


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_old_checkpoints_load(tmp_path, fmt):
    config = CONFIGS[1]
    hf = hf_model(config)
    _old_style_folder(hf, tmp_path / "old", fmt)
    ours = BertForPreTraining.from_pretrained(tmp_path / "old")
    compare_pretraining(hf, ours, batch(config))


def test_pytorch_model_bin_folder_loads(tmp_path):
    """pytorch_model.bin as transformers wrote it before safetensors (save_pretrained(safe_serialization=False) in
    4.x): the whole state dict, the tied decoder weight and its bias included; for BertForPreTraining and BertModel."""
    config = CONFIGS[3]
    hf = hf_model(config)
    tmp_path.joinpath("pretraining").mkdir()
    hf.config.to_json_file(tmp_path / "pretraining" / "config.json")
    torch.save({k: v.clone() for k, v in hf.state_dict().items()}, tmp_path / "pretraining" / "pytorch_model.bin")
    assert not (tmp_path / "pretraining" / "model.safetensors").exists()
    inputs = batch(config)
    compare_pretraining(hf, BertForPreTraining.from_pretrained(tmp_path / "pretraining"), inputs)
    base = hf_model(config, cls=transformers.BertModel, seed=1)
    tmp_path.joinpath("base").mkdir()
    base.config.to_json_file(tmp_path / "base" / "config.json")
    torch.save({k: v.clone() for k, v in base.state_dict().items()}, tmp_path / "base" / "pytorch_model.bin")
    ours = BertModel.from_pretrained(tmp_path / "base")
    with torch.no_grad():
        a, b = ours(**inputs), base(**inputs)
    close(a.last_hidden_state, b.last_hidden_state, inputs["attention_mask"].bool())
    close(a.pooler_output, b.pooler_output)


def test_sharded_checkpoint_loads(tmp_path):
    config = CONFIGS[1]
    hf = hf_model(config)
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    compare_pretraining(hf, BertForPreTraining.from_pretrained(tmp_path), batch(config))


def _corrupt(tmp_path, change):
    config = CONFIGS[1]
    hf_model(config).save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    change(state)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    return tmp_path


def test_missing_weight_is_listed(tmp_path):
    folder = _corrupt(tmp_path, lambda s: s.pop("bert.encoder.layer.1.attention.self.key.bias"))
    with pytest.raises(CheckpointMismatchError, match=r"1 missing:\n  bert.encoder.layer.1.attention.self.key.bias"):
        BertForPreTraining.from_pretrained(folder)


def test_unexpected_weight_is_listed(tmp_path):
    def add(s):
        s["bert.encoder.layer.2.attention.self.query.weight"] = torch.zeros(48, 48)
        s["cls.extra"] = torch.zeros(3)

    with pytest.raises(CheckpointMismatchError, match="2 unexpected") as error:
        BertForPreTraining.from_pretrained(_corrupt(tmp_path, add))
    assert error.value.unexpected == ["bert.encoder.layer.2.attention.self.query.weight", "cls.extra"]


def test_wrong_shapes_are_listed(tmp_path):
    folder = _corrupt(tmp_path, lambda s: None)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] += 1  # the config no longer fits the weights
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match="wrong shape") as error:
        BertForPreTraining.from_pretrained(folder)
    assert [m[0] for m in error.value.mismatched] == ["bert.embeddings.word_embeddings.weight", "cls.predictions.bias"]
    assert error.value.mismatched[1][1:] == ((173,), (174,))


def test_untied_decoder_is_refused(tmp_path):
    def untie(s):
        s["cls.predictions.decoder.weight"] = torch.randn_like(s["bert.embeddings.word_embeddings.weight"])

    with pytest.raises(CheckpointMismatchError, match="ties"):
        BertForPreTraining.from_pretrained(_corrupt(tmp_path, untie))


def test_unsupported_config_is_refused(tmp_path):
    folder = _corrupt(tmp_path, lambda s: None)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "position_embedding_type": "relative_key"}))
    with pytest.raises(ValueError, match="position_embedding_type"):
        BertForPreTraining.from_pretrained(folder)


def test_offline_hub_name_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(OSError, match="Offline"):
        BertForPreTraining.from_pretrained("minibert-course/no-such-model")
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        BertForPreTraining.from_pretrained(tmp_path / "nowhere")


@pytest.mark.skipif(os.environ.get("MINIBERT_TEST_ONLINE") != "1", reason="needs the hub: MINIBERT_TEST_ONLINE=1")
def test_real_bert_base_uncased():
    from huggingface_hub import snapshot_download

    ours = BertForPreTraining.from_pretrained("bert-base-uncased")
    hf = transformers.BertForPreTraining.from_pretrained(snapshot_download("bert-base-uncased")).eval()
    inputs = dict(input_ids=torch.tensor([[101, 1996, 3007, 1997, 2605, 2003, 103, 1012, 102, 0]]),
                  token_type_ids=torch.zeros(1, 10, dtype=torch.long),
                  attention_mask=torch.tensor([[1] * 9 + [0]]))
    compare_pretraining(hf, ours, inputs, atol=1e-4)  # 12 layers, logits of size ~10
