"""HFGPTConfig: classic names, HF aliases, validation, presets and their GPT-2 parameter counts."""

import pytest
import torch
from transformers import AutoConfig, GPT2Config, GPT2LMHeadModel

import hfgpt
from hfgpt import HFGPTConfig, HFGPTForCausalLM


def test_classic_names_and_hf_aliases():
    config = HFGPTConfig(vocab_size=100, context_length=32, emb_dim=48, n_heads=6, n_layers=3)
    assert (config.max_position_embeddings, config.hidden_size) == (32, 48)
    assert (config.num_attention_heads, config.num_hidden_layers) == (6, 3)
    assert config.head_dim == 8


def test_save_and_load_with_autoconfig(tmp_path):
    config = HFGPTConfig.from_preset(
        "tiny", position_encoding="rope", position_encoding_kwargs={"theta": 500.0}
    )
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, HFGPTConfig)
    assert loaded.position_encoding == "rope" and loaded.position_encoding_kwargs == {"theta": 500.0}
    assert loaded.to_dict()["emb_dim"] == config.emb_dim


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(emb_dim=50, n_heads=4), r"emb_dim \(50\) must be divisible by n_heads \(4\)"),
        (dict(n_layers=0), "n_layers must be a positive integer"),
        (dict(drop_rate=1.5), r"drop_rate must be a number in \[0, 1\)"),
        (
            dict(position_encoding="xpos"),
            "unknown position-encoding strategy 'xpos'.*Installed: .*learned.*rope.*plugin",
        ),
    ],
)
def test_invalid_configs_are_clear_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        HFGPTConfig(**fields)


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match="unknown preset 'gpt5'.*gpt2-medium"):
        HFGPTConfig.from_preset("gpt5")


@pytest.mark.parametrize(
    ("preset", "millions"), [("gpt2", 124), ("gpt2-medium", 355), ("gpt2-large", 774), ("gpt2-xl", 1558)]
)
def test_gpt2_presets_match_gpt2_parameter_counts(preset, millions):
    # Built on the meta device: no memory is allocated for 1.5B parameters.
    with torch.device("meta"):
        ours = HFGPTForCausalLM(HFGPTConfig.from_preset(preset, qkv_bias=True))
        c = hfgpt.PRESETS[preset]
        reference = GPT2LMHeadModel(
            GPT2Config(n_embd=c["emb_dim"], n_head=c["n_heads"], n_layer=c["n_layers"])
        )
    count = sum(p.numel() for p in ours.parameters())  # tied head counted once
    assert count == sum(p.numel() for p in reference.parameters())
    assert round(count / 1e6) == millions


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(drop_rate="0.1"), "drop_rate must be a number in"),
        (dict(drop_rate=None), "drop_rate must be a number in"),
        (dict(drop_rate=float("nan")), "drop_rate must be a number in"),
        (dict(position_encoding=["rope"]), "position_encoding must be a strategy name"),
        (dict(position_encoding_kwargs="x"), "position_encoding_kwargs must be a dict"),
        (dict(layer_norm_epsilon=-1), "layer_norm_epsilon must be a positive finite number"),
        (dict(layer_norm_epsilon=float("nan")), "layer_norm_epsilon must be a positive finite number"),
        (dict(initializer_range=-1), "initializer_range must be a positive finite number"),
        (dict(qkv_bias="no"), "qkv_bias must be true or false"),
        (dict(n_heads=True), "n_heads must be a positive integer"),
        (dict(vocab_size=2.0), "vocab_size must be a positive integer"),
    ],
)
def test_values_of_the_wrong_type_are_refused_at_construction(fields, message):
    from hfgpt.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        HFGPTConfig.from_preset("tiny", **fields)
