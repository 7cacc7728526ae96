"""Load GPT-2 weights (transformers' `GPT2LMHeadModel` format) into an hfgpt model.

GPT-2 stores its projections as `Conv1D` with `(in, out)` weights; hfgpt uses `nn.Linear` with `(out, in)`,
so those are transposed. Its fused `c_attn` already lays out query, key and value like hfgpt's `qkv`.
"""

from __future__ import annotations

import os

import torch

from hfgpt.configuration_hfgpt import HFGPTConfig
from hfgpt.errors import ConfigError, ModelLoadError

# hfgpt name -> (GPT-2 name, transpose?) for each block
BLOCK_WEIGHTS = {
    "ln_1.weight": ("ln_1.weight", False),
    "ln_1.bias": ("ln_1.bias", False),
    "attn.qkv.weight": ("attn.c_attn.weight", True),
    "attn.qkv.bias": ("attn.c_attn.bias", False),
    "attn.out_proj.weight": ("attn.c_proj.weight", True),
    "attn.out_proj.bias": ("attn.c_proj.bias", False),
    "ln_2.weight": ("ln_2.weight", False),
    "ln_2.bias": ("ln_2.bias", False),
    "mlp.fc.weight": ("mlp.c_fc.weight", True),
    "mlp.fc.bias": ("mlp.c_fc.bias", False),
    "mlp.proj.weight": ("mlp.c_proj.weight", True),
    "mlp.proj.bias": ("mlp.c_proj.bias", False),
}


def config_from_gpt2(gpt2_config, **overrides) -> HFGPTConfig:
    if gpt2_config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ConfigError(
            f"GPT-2 checkpoint uses activation {gpt2_config.activation_function!r}; hfgpt implements GPT-2's tanh GELU only"
        )
    return HFGPTConfig(
        vocab_size=gpt2_config.vocab_size,
        context_length=gpt2_config.n_positions,
        emb_dim=gpt2_config.n_embd,
        n_heads=gpt2_config.n_head,
        n_layers=gpt2_config.n_layer,
        drop_rate=gpt2_config.resid_pdrop,
        qkv_bias=True,
        position_encoding="learned",
        layer_norm_epsilon=gpt2_config.layer_norm_epsilon,
        initializer_range=gpt2_config.initializer_range,
        tie_word_embeddings=gpt2_config.tie_word_embeddings,
        bos_token_id=gpt2_config.bos_token_id,
        eos_token_id=gpt2_config.eos_token_id,
        tokenizer_class="GPT2BPETokenizer",
        **overrides,
    )


def gpt2_to_hfgpt(model_or_path, **config_overrides):
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
