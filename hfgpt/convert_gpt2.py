"""Load GPT-2 weights (transformers' `GPT2LMHeadModel` format) into an hfgpt model.

GPT-2 stores its projections as `Conv1D` with `(in, out)` weights; hfgpt uses `nn.Linear` with `(out, in)`,
so those are transposed. Its fused `c_attn` already lays out query, key and value like hfgpt's `qkv`.
"""

from __future__ import annotations

import os

import torch

from hfgpt.configuration_hfgpt import HFGPTConfig
from hfgpt.errors import ConfigError, ModelLoadError

# hfgpt module -> (GPT-2 module, whether GPT-2 stores it as a Conv1D) for each block; a Conv1D's weight is
# transposed, biases and layer norms are copied as they are.
BLOCK_MODULES = {
    "ln_1": ("ln_1", False),
    "attn.qkv": ("attn.c_attn", True),
    "attn.out_proj": ("attn.c_proj", True),
    "ln_2": ("ln_2", False),
    "mlp.fc": ("mlp.c_fc", True),
    "mlp.proj": ("mlp.c_proj", True),
}
# hfgpt name -> (GPT-2 name, transpose?) for each block
BLOCK_WEIGHTS = {
    f"{ours}.{param}": (f"{theirs}.{param}", conv1d and param == "weight")
    for ours, (theirs, conv1d) in BLOCK_MODULES.items()
    for param in ("weight", "bias")
}

# HFGPTConfig field -> the GPT2Config attribute it takes its value from
CONFIG_FIELDS = {
    "vocab_size": "vocab_size",
    "context_length": "n_positions",
    "emb_dim": "n_embd",
    "n_heads": "n_head",
    "n_layers": "n_layer",
    "drop_rate": "resid_pdrop",
    "layer_norm_epsilon": "layer_norm_epsilon",
    "initializer_range": "initializer_range",
    "tie_word_embeddings": "tie_word_embeddings",
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
}
# What every converted GPT-2 is, whatever its size
GPT2_FIXED = dict(qkv_bias=True, position_encoding="learned", tokenizer_class="GPT2BPETokenizer")


def config_from_gpt2(gpt2_config, **overrides) -> HFGPTConfig:
    """The `HFGPTConfig` of a GPT-2 checkpoint (`CONFIG_FIELDS` and `GPT2_FIXED`), plus `overrides` of the
    fields the checkpoint does not decide (e.g. `loss_chunk_size`)."""
    if gpt2_config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ConfigError(
            f"GPT-2 checkpoint uses activation {gpt2_config.activation_function!r}; hfgpt implements GPT-2's tanh GELU only"
        )
    fields = {ours: getattr(gpt2_config, theirs) for ours, theirs in CONFIG_FIELDS.items()}
    return HFGPTConfig(**fields, **GPT2_FIXED, **overrides)


def from_gpt2(model_or_path, **config_overrides):
    """An `HFGPTForCausalLM` with the weights of a `GPT2LMHeadModel` (an instance or a saved directory)."""
    from transformers import GPT2LMHeadModel

    from hfgpt.modeling_hfgpt import HFGPTForCausalLM

    if isinstance(model_or_path, (str, os.PathLike)):
        if not os.path.isdir(model_or_path):
            raise FileNotFoundError(
                f"{model_or_path} is not a directory with a GPT-2 checkpoint (config.json + weights)"
            )
        gpt2 = GPT2LMHeadModel.from_pretrained(model_or_path)
    elif isinstance(model_or_path, GPT2LMHeadModel):
        gpt2 = model_or_path
    else:
        raise TypeError(
            f"from_gpt2 expects a GPT2LMHeadModel or a directory, got {type(model_or_path).__name__}"
        )

    source = {k.removeprefix("transformer."): v for k, v in gpt2.state_dict().items()}
    state = {
        "transformer.wte.weight": source["wte.weight"],
        "transformer.position_encoding.wpe.weight": source["wpe.weight"],
    }
    for i in range(gpt2.config.n_layer):
        for ours, (theirs, transpose) in BLOCK_WEIGHTS.items():
            tensor = source[f"h.{i}.{theirs}"]
            state[f"transformer.h.{i}.{ours}"] = tensor.t() if transpose else tensor
    state["transformer.ln_f.weight"], state["transformer.ln_f.bias"] = (
        source["ln_f.weight"],
        source["ln_f.bias"],
    )
    state["lm_head.weight"] = gpt2.lm_head.weight

    model = HFGPTForCausalLM(config_from_gpt2(gpt2.config, **config_overrides))
    with torch.no_grad():
        missing, unexpected = model.load_state_dict(
            {k: v.detach().clone() for k, v in state.items()}, strict=False
        )
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise ModelLoadError(
            f"GPT-2 conversion left weights unmatched: missing {missing}, unexpected {unexpected}"
        )
    return model.to(gpt2.dtype)
