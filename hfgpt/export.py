"""Export an hfgpt model as a stock transformers architecture, which loads where hfgpt is not installed.

Two positional strategies are stock architectures with hfgpt's block (pre-LayerNorm, fused attention, tanh
GELU MLP, tied or untied head):

* `learned` is GPT-2 (`GPT2LMHeadModel`): the weights are those `hfgpt.convert_gpt2` reads, transposed back
  into GPT-2's `Conv1D` layout (its tables are used in reverse).
* `rope` is GPT-NeoX (`GPTNeoXForCausalLM`) with the rotation on the whole head (`partial_rotary_factor`
  1.0, `rotate_half` as hfgpt) and sequential residuals (`use_parallel_residual=False`). NeoX's fused
  projection interleaves query, key and value per head where hfgpt stacks them, so its rows are permuted.
  Scalings: `linear` and `yarn` are transformers' rope types of the same name and the same frequencies;
  `ntk` (a fixed larger base) is `rope_theta` scaled by `factor^(d/(d-2))`.

GPT-2 and NeoX always have a query/key/value bias: a model without one (`qkv_bias=False`) gets zeros. Any
other strategy (`none`, `sinusoidal`, plugins' `alibi`...) has no stock equivalent and is refused.

The exported directory also holds the tokenizer as a `tokenizer.json` fast tokenizer
(`hfgpt.tokenization.fast`). `export_model` writes into a temporary sibling of the output and renames it
into place at the end, so a failure leaves nothing half written; before that it checks, in float32, that
the exported model's logits equal hfgpt's and its tokenizer's ids equal hfgpt's.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfgpt.errors import ConfigError, ModelLoadError, OutputDirError
from hfgpt.options import not_empty, option, validate_fields

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

# positional strategy -> the stock architecture it is; its transformers class
ARCHITECTURES = {"learned": "gpt2", "rope": "gpt-neox"}
MODEL_CLASSES = {"gpt2": "GPT2LMHeadModel", "gpt-neox": "GPTNeoXForCausalLM"}
TARGETS = ("auto", *MODEL_CLASSES)
ROPE_OPTIONS = frozenset({"theta", "scaling", "factor", "original_context_length", "beta_fast", "beta_slow"})
ROPE_SCALINGS = ("linear", "ntk", "yarn")

# hfgpt block module -> GPT-NeoX layer module (NeoX's attention projection also needs its rows permuted)
NEOX_BLOCK_MODULES = {
    "ln_1": "input_layernorm",
    "attn.qkv": "attention.query_key_value",
    "attn.out_proj": "attention.dense",
    "ln_2": "post_attention_layernorm",
    "mlp.fc": "mlp.dense_h_to_4h",
    "mlp.proj": "mlp.dense_4h_to_h",
}
# The largest logit difference the verification accepts, relative to the largest logit (at least 1).
VERIFY_TOLERANCE = 1e-4
VERIFY_TOKENS = 64
# The tokenizer class written to tokenizer_config.json: transformers 5 saves its own name for it,
# `TokenizersBackend`, which transformers 4 (still pinned by llama.cpp's converter, vLLM, CTranslate2
# environments) does not know; both resolve this name to the class that reads tokenizer.json as it is.
FAST_TOKENIZER_CLASS = "PreTrainedTokenizerFast"
WHAT_EXPORTS = "learned -> GPT-2 (GPT2LMHeadModel), rope -> GPT-NeoX (GPTNeoXForCausalLM)"


@dataclass
class ExportArguments:
    """Everything `hfgpt export` needs; each field is one command-line argument."""

    model_dir: str = option(
        positional=True,
        flags=("DIR",),
        group="input",
        check=not_empty,
        help="an hfgpt model directory with its tokenizer (`hfgpt train` writes one)",
    )
    output_dir: str = option(
        positional=True,
        flags=("OUT",),
        group="input",
        check=not_empty,
        help="the directory to write (created)",
    )
    to: str = option(
        "auto",
        group="export",
        choices=TARGETS,
        help="architecture to write: auto picks the one the model's positional strategy is (learned -> gpt2, "
        "rope -> gpt-neox); another is refused",
    )
    overwrite: bool = option(
        False,
        group="export",
        help="replace OUT if it already holds a model or other files (only once the export has succeeded)",
    )
    verify: bool = option(
        True,
        group="export",
        negative_flag="--no-verify",
        help="skip checking, before OUT is written, that the exported model's float32 logits and its "
        "tokenizer's ids equal hfgpt's (the check loads the model twice)",
    )

    def __post_init__(self) -> None:
        validate_fields(self)


@dataclass
class ExportResult:
    """What `export_model` wrote.

    Args:
        output_dir (`Path`): the exported directory.
        architecture (`str`): `"gpt2"` or `"gpt-neox"`.
        model_class (`str`): the transformers class it loads as (`GPT2LMHeadModel`, `GPTNeoXForCausalLM`).
        tokenizer_class (`str`): the hfgpt tokenizer class that was converted.
        max_logit_difference (`float | None`): the verification's largest absolute logit difference in
            float32, or `None` without verification.
        verified_tokens (`int`): tokens the verification ran the two models on.
    """

    output_dir: Path
    architecture: str
    model_class: str
    tokenizer_class: str
    max_logit_difference: float | None = None
    verified_tokens: int = 0


# --- what exports ---------------------------------------------------------------------------------------------
def _setting(config: Any, name: str, default: Any = None) -> Any:
    return config.get(name, default) if isinstance(config, dict) else getattr(config, name, default)


def export_target(config: Any, to: str = "auto") -> str:
    """The architecture (`"gpt2"` or `"gpt-neox"`) an hfgpt config exports to; `ConfigError` if it does not.

    `config` is an `HFGPTConfig` or the dict of its config.json, so a directory is checked before any weight
    is read. `to` asks for one architecture (`"auto"`: the one the positional strategy is).
    """
    if to not in TARGETS:
        raise ConfigError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    model_type = _setting(config, "model_type")
    if model_type != "hfgpt":
        raise ConfigError(
            f"the model is a {model_type!r} model, not an hfgpt one: it is already in transformers' own format "
            "and needs no export"
        )
    strategy = _setting(config, "position_encoding", "learned")
    architecture = ARCHITECTURES.get(strategy)
    if architecture is None:
        raise ConfigError(
            f"position_encoding={strategy!r} has no stock transformers architecture; what exports: {WHAT_EXPORTS}"
        )
    if to not in ("auto", architecture):
        raise ConfigError(
            f"a {strategy!r} model is {architecture} ({MODEL_CLASSES[architecture]}), not {to}: pass --to "
            f"{architecture} or --to auto"
        )
    options = _setting(config, "position_encoding_kwargs") or {}
    if architecture == "gpt2" and options:
        raise ConfigError(f"learned takes no options, but the config has {sorted(options)}")
    if architecture == "gpt-neox":
        rope_parameters(config)  # refuses the options NeoX cannot express
    return architecture


def rope_parameters(config: Any) -> dict[str, Any]:
    """GPT-NeoX's `rope_parameters` for an hfgpt `rope` config: the same frequencies and attention factor."""
    options = dict(_setting(config, "position_encoding_kwargs") or {})
    unknown = sorted(set(options) - ROPE_OPTIONS)
    if unknown:
        raise ConfigError(
            f"rope option(s) {unknown} have no GPT-NeoX equivalent; exported rope options: {sorted(ROPE_OPTIONS)}"
        )
    theta = float(options.get("theta", 10000.0))
    scaling, factor = options.get("scaling"), float(options.get("factor", 1.0))
    if scaling is not None and scaling not in ROPE_SCALINGS:
        raise ConfigError(
            f"rope scaling {scaling!r} has no GPT-NeoX equivalent; exported scalings: {', '.join(ROPE_SCALINGS)}"
        )
    default = {"rope_type": "default", "rope_theta": theta, "partial_rotary_factor": 1.0}
    if scaling is None or factor == 1.0:  # hfgpt's frequencies are the unscaled ones (and yarn's factor is 1)
        return default
    if scaling == "linear":
        return {**default, "rope_type": "linear", "factor": factor}
    if scaling == "ntk":
        head_dim = _setting(config, "emb_dim") // _setting(config, "n_heads")
        return {**default, "rope_theta": theta * factor ** (head_dim / (head_dim - 2))}
    return {
        **default,
        "rope_type": "yarn",
        "factor": factor,
        "original_max_position_embeddings": int(
            options.get("original_context_length", _setting(config, "context_length"))
        ),
        "beta_fast": float(options.get("beta_fast", 32.0)),
        "beta_slow": float(options.get("beta_slow", 1.0)),
    }


# --- the conversions ------------------------------------------------------------------------------------------
def convert_model(model, to: str = "auto") -> PreTrainedModel:
    """The stock transformers model (`GPT2LMHeadModel` or `GPTNeoXForCausalLM`) computing what the
    `HFGPTForCausalLM` `model` computes, in its dtype. `to`: `"auto"`, `"gpt2"` or `"gpt-neox"`."""
    architecture = export_target(model.config, to)
    state = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    if architecture == "gpt2":
        target, weights = _gpt2_config(model.config), _gpt2_weights(model.config, state)
    else:
        target, weights = _neox_config(model.config), _neox_weights(model.config, state)
    return _build(target, weights, model.dtype)


def _build(config, weights: dict[str, torch.Tensor], dtype: torch.dtype) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = exported.load_state_dict(weights, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if unexpected or set(missing) - tied:
        raise ModelLoadError(
            f"the {type(exported).__name__} export left weights unmatched: missing {sorted(set(missing) - tied)}, "
            f"unexpected {sorted(unexpected)}"
        )
    return exported.eval()


def _common_fields(config) -> dict[str, Any]:
    return dict(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=config.tie_word_embeddings,
        use_cache=True,
    )


def _gpt2_config(config):
    from transformers import GPT2Config

    from hfgpt.convert_gpt2 import CONFIG_FIELDS

    fields = {theirs: getattr(config, ours) for ours, theirs in CONFIG_FIELDS.items()}
    return GPT2Config(
        **{**fields, **_common_fields(config)},
        embd_pdrop=config.drop_rate,  # hfgpt's one rate is GPT-2's three (resid_pdrop is in CONFIG_FIELDS)
        attn_pdrop=config.drop_rate,
        activation_function="gelu_new",  # GPT-2's tanh GELU, hfgpt's `GELU(approximate="tanh")`
        n_inner=None,  # 4 * n_embd
    )


def _qkv_bias(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    import torch

    bias = state.get(f"{prefix}.attn.qkv.bias")
    if bias is None:  # qkv_bias=False: the stock architectures always have one
        weight = state[f"{prefix}.attn.qkv.weight"]
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype)
    return bias


def _gpt2_weights(config, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from hfgpt.convert_gpt2 import BLOCK_WEIGHTS

    weights = {
        "transformer.wte.weight": state["transformer.wte.weight"],
        "transformer.wpe.weight": state["transformer.position_encoding.wpe.weight"],
        "transformer.ln_f.weight": state["transformer.ln_f.weight"],
        "transformer.ln_f.bias": state["transformer.ln_f.bias"],
    }
    if not config.tie_word_embeddings:
        weights["lm_head.weight"] = state["lm_head.weight"]
    for i in range(config.n_layers):
        prefix = f"transformer.h.{i}"
        for ours, (theirs, transpose) in BLOCK_WEIGHTS.items():
            tensor = _qkv_bias(state, prefix) if ours == "attn.qkv.bias" else state[f"{prefix}.{ours}"]
            weights[f"transformer.h.{i}.{theirs}"] = tensor.t().contiguous() if transpose else tensor
    return weights


def _neox_config(config):
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.emb_dim,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        intermediate_size=4 * config.emb_dim,
        hidden_act="gelu_pytorch_tanh",  # the same op as hfgpt's `GELU(approximate="tanh")`
        attention_dropout=config.drop_rate,
        hidden_dropout=config.drop_rate,
        max_position_embeddings=neox_context_length(config),
        initializer_range=config.initializer_range,
        layer_norm_eps=config.layer_norm_epsilon,
        use_parallel_residual=False,
        attention_bias=True,
        rope_parameters=rope_parameters(config),
        **_common_fields(config),
    )


def neox_context_length(config) -> int:
    """NeoX's `max_position_embeddings`, which changes no frequency but which serving tools read as the longest
    input: the trained context, times the factor where no scaling key says it (`ntk` exports as a plain larger
    theta). `linear` keeps the trained context, as tools multiply it by `rope_scaling`'s factor themselves
    (vLLM's `max_model_len`); for `yarn` it is the original length times the factor, the ratio transformers
    checks it against."""
    rope = rope_parameters(config)
    if rope["rope_type"] == "yarn":
        return int(rope["original_max_position_embeddings"] * rope["factor"])
    options = config.position_encoding_kwargs or {}
    if options.get("scaling") == "ntk":
        return int(config.context_length * float(options.get("factor", 1.0)))
    return config.context_length


def neox_qkv_rows(tensor: torch.Tensor, n_heads: int) -> torch.Tensor:
    """hfgpt's fused projection rows `[q; k; v]` (each `heads x head_dim`) in GPT-NeoX's order, which reads
    them per head: `[q_0; k_0; v_0; q_1; ...]` (its forward views the output as `(heads, 3 * head_dim)`)."""
    rest = tensor.shape[1:]
    return tensor.reshape(3, n_heads, -1, *rest).transpose(0, 1).reshape(tensor.shape).contiguous()


def _neox_weights(config, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    weights = {
        "gpt_neox.embed_in.weight": state["transformer.wte.weight"],
        "gpt_neox.final_layer_norm.weight": state["transformer.ln_f.weight"],
        "gpt_neox.final_layer_norm.bias": state["transformer.ln_f.bias"],
    }
    if not config.tie_word_embeddings:
        weights["lm_head.weight"] = state["lm_head.weight"]
    for i in range(config.n_layers):
        prefix = f"transformer.h.{i}"
        for ours, theirs in NEOX_BLOCK_MODULES.items():
            for param in ("weight", "bias"):
                tensor = (
                    _qkv_bias(state, prefix)
                    if (ours, param) == ("attn.qkv", "bias")
                    else state[f"{prefix}.{ours}.{param}"]
                )
                if ours == "attn.qkv":
                    tensor = neox_qkv_rows(tensor, config.n_heads)
                weights[f"gpt_neox.layers.{i}.{theirs}.{param}"] = tensor
    return weights


def legacy_config_keys(architecture: str, rope: dict[str, Any] | None) -> dict[str, Any]:
    """config.json keys for readers of transformers 4's GPT-NeoX config (llama.cpp's and CTranslate2's
    converters, vLLM and TGI pinned to transformers 4), which knows `rotary_pct` (default 0.25: a quarter of
    each head rotated), `rotary_emb_base` and `rope_scaling` rather than `rope_parameters`. transformers 5
    rebuilds the same `rope_parameters` from them: `rope_scaling` replaces it, then takes its theta and
    rotated fraction from `rotary_emb_base` and `rotary_pct`."""
    if architecture != "gpt-neox" or rope is None:
        return {}
    keys = {"rotary_pct": rope["partial_rotary_factor"], "rotary_emb_base": rope["rope_theta"]}
    if rope["rope_type"] != "default":
        keys["rope_scaling"] = {
            k: v for k, v in rope.items() if k not in ("rope_theta", "partial_rotary_factor")
        }
    return keys


# --- the command ----------------------------------------------------------------------------------------------
def read_config(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))


def check_output_dir(output_dir: Path, model_dir: Path, overwrite: bool) -> None:
    """Refuse an OUT that is a file, the model directory itself (or inside it), or a directory holding files
    (unless `overwrite`), before any work."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirError(f"{output_dir} exists and is not a directory: choose another OUT")
    resolved, source = output_dir.resolve(), model_dir.resolve()
    if resolved == source or source in resolved.parents:
        raise OutputDirError(
            f"OUT {output_dir} is the model directory {model_dir} or inside it: choose another OUT"
        )
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        holds = "a model" if (output_dir / "config.json").exists() else "files"
        raise OutputDirError(
            f"{output_dir} already holds {holds}; pass --overwrite to replace it (replaced only once the export "
            "has succeeded) or choose another OUT"
        )
    blocker = next((p for p in output_dir.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputDirError(f"{blocker} is a file, so {output_dir} cannot be created: choose another OUT")


def export_model(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    to: str = "auto",
    overwrite: bool = False,
    verify: bool = True,
) -> ExportResult:
    """Write the hfgpt model (and tokenizer) in `model_dir` to `output_dir` as a stock transformers directory.

    Everything that can be refused is checked first (the directories, the strategy and its options, the
    tokenizer's class); the export is written to a temporary sibling of `output_dir`, verified (unless
    `verify=False`: float32 logits within `VERIFY_TOLERANCE` of hfgpt's, identical tokenizer ids), and only
    then renamed to `output_dir` (replacing what was there with `overwrite`).
    """
    from transformers.utils import logging as hf_logging

    arguments = ExportArguments(str(model_dir), str(output_dir), to=to, overwrite=overwrite, verify=verify)
    from hfgpt.configuration_hfgpt import HFGPTConfig
    from hfgpt.loading import check_model_dir, check_tokenizer_dir

    model_dir, output_dir = Path(model_dir), Path(output_dir)
    check_tokenizer_dir(check_model_dir(model_dir))
    config: Any = read_config(model_dir)
    if config.get("model_type") == "hfgpt":  # another model type is refused by export_target as it is
        config = HFGPTConfig.from_pretrained(model_dir)  # every field, those config.json leaves out included
    architecture = export_target(config, arguments.to)
    _check_tokenizer_class(model_dir)
    check_output_dir(output_dir, model_dir, arguments.overwrite)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling on the same file system, so the final rename is atomic; made with os.mkdir (not
    # tempfile.mkdtemp, which is private to the user) so the export gets the permissions of any new directory.
    staging = output_dir.with_name(f".{output_dir.name}.export-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    hf_logging.disable_progress_bar()  # bars for a few tensors are noise on the command line
    try:
        result = _write(model_dir, staging, architecture, arguments.verify)
        _publish(staging, output_dir)
    finally:
        hf_logging.enable_progress_bar()
        if staging.exists():
            shutil.rmtree(staging)
    result.output_dir = output_dir
    return result


def _check_tokenizer_class(model_dir: Path) -> None:
    """Refuse a tokenizer `to_fast_tokenizer` cannot convert, from its saved class name, before loading."""
    from hfgpt.errors import TokenizerError
    from hfgpt.tokenization.fast import EXPORTABLE

    saved = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    name = saved.get("tokenizer_class")
    if name is not None and not any(choice.split()[0] == name for choice in EXPORTABLE):
        raise TokenizerError(
            f"the tokenizer in {model_dir} is a {name}, which does not export as tokenizer.json; tokenizers that "
            f"do: {', '.join(EXPORTABLE)}"
        )


def _write(model_dir: Path, staging: Path, architecture: str, verify: bool) -> ExportResult:
    from transformers.utils import logging as hf_logging

    from hfgpt.loading import load_causal_lm
    from hfgpt.tokenization.fast import to_fast_tokenizer

    model, tokenizer = load_causal_lm(model_dir)
    hf_logging.disable_progress_bar()  # load_causal_lm turns them back on
    exported = convert_model(model.eval(), architecture)
    exported.save_pretrained(staging)
    rope = rope_parameters(model.config) if architecture == "gpt-neox" else None
    extra = legacy_config_keys(architecture, rope)
    if extra:
        _update_json(staging / "config.json", extra)
    to_fast_tokenizer(tokenizer).save_pretrained(staging)
    _update_json(staging / "tokenizer_config.json", {"tokenizer_class": FAST_TOKENIZER_CLASS})
    result = ExportResult(staging, architecture, MODEL_CLASSES[architecture], type(tokenizer).__name__)
    del exported
    if verify:
        result.max_logit_difference, result.verified_tokens = verify_export(model, tokenizer, staging)
    return result


def _update_json(path: Path, values: dict[str, Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, **values}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def sample_ids(vocab_size: int, length: int, seed: int = 0) -> torch.LongTensor:
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (1, length), generator=generator)


def verify_export(model, tokenizer, exported_dir: Path) -> tuple[float, int]:
    """Load `exported_dir` with transformers' Auto classes and check it against the hfgpt `model` and
    `tokenizer`: float32 logits on a sample within `VERIFY_TOLERANCE` (relative to the largest logit) and
    identical ids for a sample of text. Returns the largest logit difference and the tokens run."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hfgpt.data.sources import default_corpus_path

    reference = model.float().eval()
    exported = AutoModelForCausalLM.from_pretrained(exported_dir, dtype=torch.float32).eval()
    length = min(VERIFY_TOKENS, model.transformer.position_encoding.max_positions or VERIFY_TOKENS)
    ids = sample_ids(model.config.vocab_size, length)
    with torch.no_grad():
        want, got = reference(ids).logits, exported(ids).logits
    difference = float((want - got).abs().max())
    if not difference <= VERIFY_TOLERANCE * max(1.0, float(want.abs().max())):
        raise RuntimeError(
            f"the exported {type(exported).__name__} differs from the hfgpt model by up to {difference:.3g} in a "
            "logit: the export is wrong (a bug in hfgpt.export); nothing was written"
        )
    text = default_corpus_path().read_text(encoding="utf-8")[:2000] + "<|endoftext|>"
    fast = AutoTokenizer.from_pretrained(exported_dir)
    if fast.encode(text) != tokenizer.encode(text):
        raise RuntimeError(
            f"the exported tokenizer gives other ids than the {type(tokenizer).__name__}: a bug in "
            "hfgpt.tokenization.fast; nothing was written"
        )
    return difference, length


def _publish(staging: Path, output_dir: Path) -> None:
    """Move the finished export into `output_dir`, swapping atomically with what is there where possible."""
    from hfgpt.training.outputs import exchange

    if output_dir.exists():
        if exchange(staging, output_dir):
            return  # the old directory is now `staging`, removed by the caller
        previous = output_dir.with_name(f".{output_dir.name}.replaced")
        os.replace(output_dir, previous)
        os.replace(staging, output_dir)
        shutil.rmtree(previous)
    else:
        os.replace(staging, output_dir)


__all__ = [
    "ARCHITECTURES",
    "ExportArguments",
    "ExportResult",
    "convert_model",
    "export_model",
    "export_target",
    "rope_parameters",
    "verify_export",
]
