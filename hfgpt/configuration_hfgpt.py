"""HFGPTConfig: the classic GPT hyper-parameters as a transformers config.

Plain data: the config checks its values and that its positional strategy's *name* is registered (which
imports no strategy code); the model resolves the name to a class when it is built.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from transformers import PreTrainedConfig

from hfgpt.errors import ConfigError, UnknownStrategyError
from hfgpt.plugins import get_registration
from hfgpt.remote_code import MODEL_AUTO_MAP, write_model_code

# How fresh weights are drawn (`HFGPTConfig.initialization`).
INITIALIZATIONS = ("gpt2", "torch")
# GPT-2's vocabulary and context, shared by the four GPT-2 sizes.
_GPT2 = dict(vocab_size=50257, context_length=1024, bos_token_id=50256, eos_token_id=50256)
# name -> fields. The GPT-2 sizes follow the GPT-2 paper; "tiny" is for tests, "small-cpu" trains in minutes on a
# laptop.
PRESETS: dict[str, dict[str, Any]] = {
    "gpt2": dict(_GPT2, emb_dim=768, n_heads=12, n_layers=12),
    "gpt2-medium": dict(_GPT2, emb_dim=1024, n_heads=16, n_layers=24),
    "gpt2-large": dict(_GPT2, emb_dim=1280, n_heads=20, n_layers=36),
    "gpt2-xl": dict(_GPT2, emb_dim=1600, n_heads=25, n_layers=48),
    "small-cpu": dict(context_length=256, emb_dim=256, n_heads=4, n_layers=4, drop_rate=0.1),
    "tiny": dict(context_length=64, emb_dim=32, n_heads=4, n_layers=2),
    # `hfgpt compare`'s default: six strategies train in minutes on a CPU (it sets the context per comparison)
    "compare-cpu": dict(context_length=64, emb_dim=128, n_heads=4, n_layers=3, drop_rate=0.0),
    # `hfgpt compare --gpu-paper`: the ALiBi paper's comparison at L = 512, four strategies in ~20 minutes on one
    # H100/H200 (8 layers x 512, about 51M parameters with GPT-2's vocabulary)
    "paper-gpu": dict(context_length=512, emb_dim=512, n_heads=8, n_layers=8, drop_rate=0.1),
}
PRESETS.update(
    {
        "124M": PRESETS["gpt2"],
        "355M": PRESETS["gpt2-medium"],
        "774M": PRESETS["gpt2-large"],
        "1558M": PRESETS["gpt2-xl"],
    }
)


class HFGPTConfig(PreTrainedConfig):
    r"""Configuration of an hfgpt GPT model.

    Args:
        vocab_size (`int`, defaults to 50257): number of token ids (GPT-2's BPE vocabulary by default).
        context_length (`int`, defaults to 1024): longest sequence the model is trained on; the limit for
            strategies with a fixed position table (`"learned"`). Also `max_position_embeddings`.
        emb_dim (`int`, defaults to 768): width of embeddings and hidden states. Also `hidden_size`.
        n_heads (`int`, defaults to 12): attention heads; must divide `emb_dim`. Also `num_attention_heads`.
        n_layers (`int`, defaults to 12): transformer blocks. Also `num_hidden_layers`.
        drop_rate (`float`, defaults to 0.1): dropout on embeddings, attention weights and residual branches.
        qkv_bias (`bool`, defaults to `False`): bias in the query/key/value projections.
        position_encoding (`str`, defaults to `"learned"`): name of a positional-encoding strategy registered by a
            plugin (`hfgpt plugins` lists them). Only the name is saved, never the class.
        position_encoding_kwargs (`dict`, *optional*): parameters for that strategy (e.g. `{"theta": 10000.0}`).
        layer_norm_epsilon (`float`, defaults to 1e-5): LayerNorm epsilon.
        initializer_range (`float`, defaults to 0.02): std of the normal weight initialisation.
        initialization (`str`, defaults to `"gpt2"`): how fresh weights are drawn. `"gpt2"`: GPT-2's normal
            initialisation of std `initializer_range`, the projections into the residual stream scaled by
            `1/sqrt(2 * n_layers)`. `"torch"`: each layer's PyTorch default (`nn.Linear`'s Kaiming-uniform,
            `nn.Embedding`'s N(0, 1)), which is how the book's `GPTModel` starts.
        tie_word_embeddings (`bool`, defaults to `True`): share the token embedding with the LM head (as GPT-2).
        loss_chunk_size (`int`, *optional*, defaults to 1024): tokens per chunk of the memory-lean training loss.
            In training mode with `labels` (or `shift_labels`), `HFGPTForCausalLM` fuses the LM head with the
            cross-entropy chunk by chunk (`hfgpt.losses`), so the `(tokens, vocab_size)` logits are never held at
            once, and returns `logits=None`. `0` or `None` always computes the full logits and transformers'
            plain loss. Evaluation mode (`model.eval()`) always returns the logits.
        tokenizer_class (`str`, *optional*): the class of the tokenizer the model was trained with; `AutoTokenizer`
            uses it when a directory's tokenizer_config.json is missing, so it fails instead of loading another.
        position_encoding_distribution (`str`, *optional*): the distribution that installed a plugin's strategy
            (set by the config itself), so a directory loaded where the plugin is missing names what to install.
        position_encoding_layers (`list`, *optional*): a strategy per layer (`n_layers` entries), to mix any
            registered strategies: `null` is the model's own (`position_encoding` with its kwargs), a name is that
            strategy (with `position_encoding_kwargs` when it is the model's own, else its defaults), and
            `{"position_encoding": NAME, "position_encoding_kwargs": {...}}` gives its options. Layers naming the
            same strategy and options share one module (one table, one bias per forward). Rotary and score-bias
            strategies act in their layers; a strategy that embeds absolute positions adds them once to the token
            embeddings, before the first block, whichever layers name it. `position_encoding` must be the
            strategy of at least one layer.
        nope_every (`int`, *optional*): every `nope_every`-th layer (layers `nope_every - 1`, `2 * nope_every - 1`,
            ...) has no positional encoding, the others use `position_encoding`, as SmolLM3 does with RoPE
            (`nope_every=4`). Exclusive with `position_encoding_layers`.
        sliding_window (`int`, *optional*): each query attends to at most this many keys, itself and the
            `sliding_window - 1` tokens before it (Mistral's convention, transformers' sliding-window masks); the
            KV cache then keeps only those keys. Works with every strategy, packed documents and custom 2D masks;
            a ready 4D mask is used as given. `None`: full causal attention.
        random_positions_max (`int`, *optional*): randomized positions (Ruoss et al. 2023): in training mode, each
            document's positions are a sorted random sample of distinct positions from
            `[0, random_positions_max)` instead of `0, 1, ..., n - 1`, so a model trained on short windows has
            seen the positions of longer ones; evaluation and generation use the plain positions. For strategies
            that read positions (learned, sinusoidal, rope, the score biases); at most the positions the strategy
            encodes (`context_length` for learned).
    """

    model_type: ClassVar[str] = "hfgpt"
    attribute_map: ClassVar[dict[str, str]] = {
        "max_position_embeddings": "context_length",
        "hidden_size": "emb_dim",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
    }
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["cache", "past_key_values"]

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float | int = 0.1
    qkv_bias: bool = False
    position_encoding: str = "learned"
    position_encoding_kwargs: dict[str, Any] | None = None
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    initialization: str = "gpt2"
    use_cache: bool = True
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    tie_word_embeddings: bool = True
    loss_chunk_size: int | None = 1024
    tokenizer_class: str | None = None
    position_encoding_distribution: str | None = None
    position_encoding_layers: list[Any] | None = None
    nope_every: int | None = None
    sliding_window: int | None = None
    random_positions_max: int | None = None

    def __post_init__(self, **kwargs):
        if self.position_encoding_kwargs is None:
            self.position_encoding_kwargs = {}
        super().__post_init__(**kwargs)
        self.check()
        self.auto_map = dict(MODEL_AUTO_MAP)  # see `save_pretrained`

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save config.json and the code files its `auto_map` names, so transformers loads the directory with
        `trust_remote_code=True` in a process that never imports hfgpt (see `hfgpt.remote_code`)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        write_model_code(str(save_directory))

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoConfig"):
        """Nothing to do: transformers calls this after loading through `trust_remote_code`, to copy the class's
        source into directories saved later; hfgpt writes its own `auto_map` and code files instead."""

    def check(self) -> None:
        """Raise a clear error for hyper-parameters no model can be built from (types, ranges, finiteness)."""
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ConfigError(f"HFGPTConfig.{name} must be a positive integer, got {value!r}")
        if self.emb_dim % self.n_heads:
            raise ConfigError(
                f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads}): each head gets "
                f"emb_dim / n_heads dimensions. Try emb_dim={self.n_heads * max(1, round(self.emb_dim / self.n_heads))}."
            )
        if not _is_real(self.drop_rate) or not 0.0 <= self.drop_rate < 1.0:
            raise ConfigError(f"HFGPTConfig.drop_rate must be a number in [0, 1), got {self.drop_rate!r}")
        for name in ("layer_norm_epsilon", "initializer_range"):
            value = getattr(self, name)
            if not _is_real(value) or not value > 0:
                raise ConfigError(f"HFGPTConfig.{name} must be a positive finite number, got {value!r}")
        if self.initialization not in INITIALIZATIONS:
            raise ConfigError(
                f"HFGPTConfig.initialization must be one of {', '.join(INITIALIZATIONS)}, got {self.initialization!r}"
            )
        if not isinstance(self.qkv_bias, bool):
            raise ConfigError(f"HFGPTConfig.qkv_bias must be true or false, got {self.qkv_bias!r}")
        if not isinstance(self.position_encoding, str):
            raise ConfigError(
                f"HFGPTConfig.position_encoding must be a strategy name (a string), got {self.position_encoding!r}"
            )
        if not isinstance(self.position_encoding_kwargs, dict):
            raise ConfigError(
                "HFGPTConfig.position_encoding_kwargs must be a dict of strategy options, got "
                f"{self.position_encoding_kwargs!r}"
            )
        if self.loss_chunk_size is not None and (
            not _is_int(self.loss_chunk_size) or self.loss_chunk_size < 0
        ):
            raise ConfigError(
                "HFGPTConfig.loss_chunk_size must be a positive number of tokens, or 0/None for the plain loss, got "
                f"{self.loss_chunk_size!r}"
            )
        self._check_strategy()
        self._check_layers_and_attention()

    def _check_layers_and_attention(self) -> None:
        """The per-layer schedule, sliding window and randomized positions: types, ranges and registered names."""
        for name in ("nope_every", "sliding_window", "random_positions_max"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ConfigError(f"HFGPTConfig.{name} must be a positive integer or null, got {value!r}")
        if self.nope_every is not None and self.nope_every > self.n_layers:
            raise ConfigError(
                f"nope_every={self.nope_every} with {self.n_layers} layers leaves every layer with its positions; "
                f"use a value between 1 and {self.n_layers}"
            )
        layers = self.position_encoding_layers
        if layers is None:
            return
        if self.nope_every is not None:
            raise ConfigError("give either nope_every or position_encoding_layers, not both")
        if not isinstance(layers, list) or len(layers) != self.n_layers:
            raise ConfigError(
                f"position_encoding_layers must be a list of one strategy per layer ({self.n_layers}), got {layers!r}"
            )
        for entry in layers:
            if isinstance(entry, dict):
                name, options = entry.get("position_encoding"), entry.get("position_encoding_kwargs", {})
                if set(entry) - {"position_encoding", "position_encoding_kwargs"} or not isinstance(
                    options, dict
                ):
                    raise ConfigError(
                        'a position_encoding_layers entry is null, a strategy name or {"position_encoding": NAME, '
                        f'"position_encoding_kwargs": {{...}}}}, got {entry!r}'
                    )
            else:
                name = entry if entry is not None else self.position_encoding
            if not isinstance(name, str):
                raise ConfigError(
                    f"position_encoding_layers entries name strategies (strings), got {entry!r}"
                )
            get_registration("position_encoding", name)  # an unknown name lists the installed ones

    def layer_strategies(self) -> list[tuple[str, dict[str, Any]]] | None:
        """Each layer's positional strategy as `(name, options)`, or `None` when every layer uses
        `position_encoding` (no `position_encoding_layers`, no `nope_every`)."""
        main = (self.position_encoding, dict(self.position_encoding_kwargs or {}))
        if self.nope_every:
            return [("none", {}) if (i + 1) % self.nope_every == 0 else main for i in range(self.n_layers)]
        if not self.position_encoding_layers:
            return None
        schedule = []
        for entry in self.position_encoding_layers:
            if entry is None:
                schedule.append(main)
            elif isinstance(entry, str):
                schedule.append(main if entry == main[0] else (entry, {}))
            else:
                schedule.append(
                    (entry["position_encoding"], dict(entry.get("position_encoding_kwargs") or {}))
                )
        return schedule

    def _check_strategy(self) -> None:
        """The position-encoding strategy must be installed (its name registered; its code is not imported); a
        plugin's distribution is recorded, so a directory loaded where the plugin is missing names what to
        install."""
        try:
            registration = get_registration("position_encoding", self.position_encoding)
        except UnknownStrategyError as exc:
            needed = self.position_encoding_distribution
            if needed:
                raise UnknownStrategyError(
                    f"{exc} This model needs the distribution {needed!r}: pip install {needed}"
                ) from None
            raise
        self.position_encoding_distribution = registration.distribution

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> HFGPTConfig:
        """A config for a named size (`gpt2`, `gpt2-medium`, `gpt2-large`, `gpt2-xl`, `small-cpu`, `tiny`)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    """A finite int or float (not a bool, a string or NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["HFGPTConfig", "PRESETS"]
