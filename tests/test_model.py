"""minibert.embeddings and minibert.model: config, shapes, parameter counts, errors, losses, lesson 04's checker."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minibert.checks import CheckFailed
from minibert.checks.encoder import check_encoder_block
from minibert.embeddings import BertEmbeddings, sinusoidal_position_encoding
from minibert.model import (
    BertConfig,
    BertForPreTraining,
    BertModel,
    EncoderLayer,
    FeedForward,
)

SMALL = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
             max_position_embeddings=24, type_vocab_size=3)


def small_model(cls=BertModel, **overrides):
    torch.manual_seed(0)
    return cls(BertConfig(**{**SMALL, **overrides})).eval()


def padded_batch(B=3, T=10, vocab=120, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (B, T), generator=gen)
    attention_mask = torch.ones(B, T, dtype=torch.long)
    attention_mask[1, 7:] = 0
    attention_mask[2, 3:] = 0
    return ids.masked_fill(attention_mask == 0, 0), attention_mask


# ------------------------------------------------------------------------------------------------- embeddings


def test_sinusoidal_position_encoding():
    pe = sinusoidal_position_encoding(50, 7)
    assert pe.shape == (50, 7)
    pos, i = 13, 2  # dims 4 and 5 share the angle pos / 10000^(4/7)
    angle = pos / 10000 ** (2 * i / 7)
    assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
    assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)
    assert pe[0, 0::2].abs().max() == 0 and (pe[0, 1::2] == 1).all()


def test_embeddings_are_the_normalised_sum():
    torch.manual_seed(0)
    emb = BertEmbeddings(50, 16, max_position_embeddings=12, type_vocab_size=2, dropout=0.0)
    ids, types = torch.randint(0, 50, (2, 6)), torch.randint(0, 2, (2, 6))
    expected = emb.word_embeddings(ids) + emb.position_embeddings.weight[:6] + emb.token_type_embeddings(types)
    torch.testing.assert_close(emb(ids, types), F.layer_norm(expected, (16,), eps=1e-12))
    torch.testing.assert_close(emb(ids), emb(ids, torch.zeros_like(ids)))


# ----------------------------------------------------------------------------------------------------- config


def test_presets():
    sizes = {name: (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size)
             for name in ("tiny", "mini", "small", "medium", "base", "large")
             for c in [BertConfig.preset(name)]}
    assert sizes == {"tiny": (2, 128, 2, 512), "mini": (4, 256, 4, 1024), "small": (4, 512, 8, 2048),
                     "medium": (8, 512, 8, 2048), "base": (12, 768, 12, 3072), "large": (24, 1024, 16, 4096)}
    assert BertConfig.preset("base") == BertConfig()
    assert BertConfig.preset("mini", vocab_size=1000).vocab_size == 1000
    with pytest.raises(ValueError, match="unknown preset"):
        BertConfig.preset("huge")


def test_config_validation():
    with pytest.raises(ValueError, match="not divisible"):
        BertConfig(hidden_size=100, num_attention_heads=12)
    with pytest.raises(ValueError, match="gelu_new"):
        BertConfig(hidden_act="gelu_new")
    with pytest.raises(ValueError, match="positive int"):
        BertConfig(num_hidden_layers=0)


BERT_BASE_UNCASED_CONFIG = {  # the config.json of bert-base-uncased on the hub
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522}

GOOGLE_CONFIG = {  # bert_config.json of Google's multilingual release
    "attention_probs_dropout_prob": 0.1, "directionality": "bidi", "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 512,
    "num_attention_heads": 12, "num_hidden_layers": 12, "pooler_fc_size": 768, "pooler_num_attention_heads": 12,
    "pooler_num_fc_layers": 3, "pooler_size_per_head": 128, "pooler_type": "first_token_transform",
    "type_vocab_size": 2, "vocab_size": 119547}


def test_config_from_real_config_files(tmp_path):
    assert BertConfig.from_dict(BERT_BASE_UNCASED_CONFIG) == BertConfig()
    assert BertConfig.from_dict(GOOGLE_CONFIG).vocab_size == 119547
    path = tmp_path / "config.json"
    path.write_text(__import__("json").dumps(BERT_BASE_UNCASED_CONFIG))
    assert BertConfig.from_json_file(path) == BertConfig()
    assert BertConfig.from_dict(BertConfig.preset("mini").to_dict()) == BertConfig.preset("mini")


@pytest.mark.parametrize("change, message", [
    ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
    ({"is_decoder": True}, "is_decoder"),
    ({"tie_word_embeddings": False}, "tie_word_embeddings"),
    ({"model_type": "roberta"}, "model_type"),
    ({"hidden_act": "relu"}, "hidden_act"),
    ({"rotary_dim": 64}, "unknown keys"),
])
def test_config_refuses_other_architectures(change, message):
    with pytest.raises(ValueError, match=message):
        BertConfig.from_dict({**BERT_BASE_UNCASED_CONFIG, **change})


# --------------------------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("preset", ["base", "large"])
def test_parameter_counts_equal_transformers(preset):
    transformers = pytest.importorskip("transformers")
    config = BertConfig.preset(preset)
    with torch.device("meta"):
        ours = {"model": BertModel(config), "pretraining": BertForPreTraining(config)}
        hf_config = transformers.BertConfig(**config.to_dict())
        theirs = {"model": transformers.BertModel(hf_config), "pretraining": transformers.BertForPreTraining(hf_config)}
    for kind in ours:
        assert ours[kind].num_parameters() == sum(p.numel() for p in theirs[kind].parameters()), kind
    published = {"base": 110e6, "large": 335e6}[preset]  # BERT's paper counts the encoder, BertModel
    assert abs(ours["model"].num_parameters() - published) / published < 0.01


# ------------------------------------------------------------------------------------------------------ outputs


def test_bert_model_outputs():
    model = small_model()
    ids, attention_mask = padded_batch()
    out = model(ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (3, 10, 32) and out.pooler_output.shape == (3, 32)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)
    assert out.attentions[0].shape == (3, 4, 10, 10)
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(3, 4, 10))
    assert out.attentions[0][2, :, :, 3:].abs().max() == 0  # no attention to padding
    plain = model(ids, attention_mask=attention_mask)
    assert plain.hidden_states is None and plain.attentions is None
    torch.testing.assert_close(plain.pooler_output, torch.tanh(model.pooler.dense(out.last_hidden_state[:, 0])))


def test_eager_and_sdpa_models_agree_with_padding():
    model = small_model(BertForPreTraining)
    ids, attention_mask = padded_batch()
    types = (torch.arange(10) >= 4).long().expand(3, 10)
    fast = model(ids, types, attention_mask)
    model.set_attention_implementation("eager")
    eager = model(ids, types, attention_mask)
    torch.testing.assert_close(fast.mlm_logits, eager.mlm_logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(fast.nsp_logits, eager.nsp_logits, atol=1e-6, rtol=0)


def test_padding_does_not_change_the_tokens():
    model = small_model()
    ids = torch.randint(1, 120, (1, 6))
    alone = model(ids).last_hidden_state
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 4])
    torch.testing.assert_close(model(padded, attention_mask=mask).last_hidden_state[:, :6], alone,
                               atol=1e-5, rtol=1e-5)


def test_bad_input_errors():
    model = small_model()
    ids = torch.randint(1, 120, (2, 8))
    with pytest.raises(ValueError, match="longer than max_position_embeddings=24"):
        model(torch.ones(1, 25, dtype=torch.long))
    with pytest.raises(ValueError, match="outside 0..119"):
        model(ids.masked_fill(ids == ids[0, 0], 120))
    with pytest.raises(ValueError, match="input_ids holds -1"):
        model(ids.masked_fill(ids == ids[0, 0], -1))
    with pytest.raises(ValueError, match="type_vocab_size=3"):
        model(ids, token_type_ids=torch.full((2, 8), 3))
    with pytest.raises(ValueError, match="token_type_ids has shape"):
        model(ids, token_type_ids=torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(ids, attention_mask=torch.ones(2, 1, 8))
    with pytest.raises(ValueError, match=r"input_ids\[None\]"):
        model(ids[0])
    with pytest.raises(TypeError, match="integer token ids"):
        model(ids.float())


def test_tied_decoder_survives_to():
    model = small_model(BertForPreTraining).to(torch.float64)
    assert model.mlm_head.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.mlm_head.decoder.weight.dtype == torch.float64


# ------------------------------------------------------------------------------------------------------- losses


def test_pretraining_losses():
    model = small_model(BertForPreTraining)
    ids, attention_mask = padded_batch()
    labels = torch.full_like(ids, -100)
    labels[0, [1, 5]] = ids[0, [1, 5]]
    labels[2, 2] = 7
    nsp_labels = torch.tensor([0, 1, 1])
    full = model(ids, attention_mask=attention_mask)
    assert full.mlm_logits.shape == (3, 10, 120) and full.nsp_logits.shape == (3, 2) and full.loss is None
    out = model(ids, attention_mask=attention_mask, mlm_labels=labels, nsp_labels=nsp_labels)
    assert out.mlm_logits.shape == (3, 120)  # only the labelled positions, row by row
    torch.testing.assert_close(out.mlm_logits, full.mlm_logits[labels != -100])
    mlm = F.cross_entropy(full.mlm_logits.reshape(-1, 120), labels.reshape(-1), ignore_index=-100)
    nsp = F.cross_entropy(full.nsp_logits, nsp_labels)
    torch.testing.assert_close(out.mlm_loss, mlm)
    torch.testing.assert_close(out.nsp_loss, nsp)
    torch.testing.assert_close(out.loss, mlm + nsp)
    out.loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    only_nsp = model(ids, attention_mask=attention_mask, nsp_labels=nsp_labels)
    torch.testing.assert_close(only_nsp.loss, nsp)
    nothing = model(ids, mlm_labels=torch.full_like(ids, -100))
    assert nothing.mlm_loss.item() == 0 and nothing.mlm_logits.shape == (0, 120)
    with pytest.raises(ValueError, match="mlm_labels has shape"):
        model(ids, mlm_labels=labels[:, :5])


# ----------------------------------------------------------------------------------------- checker of lesson 04


def test_encoder_checker_passes_on_the_package():
    check_encoder_block(EncoderLayer)

    def block(layer, x, mask=None):
        a, _ = layer.attention(x, mask)
        x = layer.attention_norm(x + layer.dropout(a))
        return layer.output_norm(x + layer.dropout(layer.feed_forward(x)))

    check_encoder_block(block)


def test_encoder_checker_fails_on_wrong_blocks():
    def pre_ln(layer, x, mask=None):
        x = x + layer.attention(layer.attention_norm(x), mask)[0]
        return x + layer.feed_forward(layer.output_norm(x))

    def no_mask(layer, x, mask=None):
        x = layer.attention_norm(x + layer.attention(x)[0])
        return layer.output_norm(x + layer.feed_forward(x))

    class HardCoded4x(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.attention = EncoderLayer(config).attention
            self.attention_norm = nn.LayerNorm(config.hidden_size)
            self.feed_forward = FeedForward(config.hidden_size, 4 * config.hidden_size)
            self.output_norm = nn.LayerNorm(config.hidden_size)

    for wrong, message in ((pre_ln, "pre-LN"), (no_mask, "Pass the mask"), (HardCoded4x, "do not match")):
        with pytest.raises(CheckFailed, match=message):
            check_encoder_block(wrong)
