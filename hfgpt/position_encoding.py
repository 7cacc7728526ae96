"""Positional-encoding strategies and the one interface they share.

A GPT needs to know where each token sits. The families found in real models plug in at four different
places, so a strategy may override any of four hooks (the defaults do nothing):

* ``embed`` — absolute encodings added to the token embeddings once, before the first block (GPT-2's
  learned table, the Transformer's sinusoids).
* ``rotate`` — rotary encodings applied to queries and keys in every layer, before the KV cache stores
  the keys (RoPE, as in Llama). What they need from the positions (RoPE's cos/sin tables) is computed
  once per forward by ``prepare`` and handed to every layer.
* ``attention_bias`` — a bias added to the attention scores of every layer, built once per forward
  (ALiBi, as in Bloom; see the ``hfgpt-alibi`` plugin). A strategy that has one declares ``score_bias = True``.
* ``content_bias`` — a bias computed in each layer from that layer's queries and keys, for strategies whose
  positions depend on the content (CoPE; see the ``hfgpt-cope`` plugin). A strategy that has one declares
  ``content_score_bias = True``; the model calls it only then.

A strategy also answers for itself, from the config alone: ``max_positions_for(config)`` (how long a
sequence it can encode) and ``validate(config)`` (its options), so callers check lengths and options
before any model is built.

Strategies are registered by name through the ``register_position_encodings`` hook; the config stores
only the name (``config.position_encoding``) and the options (``config.position_encoding_kwargs``).
A config may also give each layer its own strategy (``position_encoding_layers``, ``nope_every``); see
``HFGPTConfig.layer_strategies`` and ``layer_configs``.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import initialization as init

from hfgpt.errors import ConfigError
from hfgpt.plugins import get_position_encoding


class PositionEncoding(nn.Module):
    """Base class of positional-encoding strategies; built once per model as ``cls(config)``.

    Args:
        config (`HFGPTConfig`): the model config; strategy options are in `config.position_encoding_kwargs`.

    Attributes:
        OPTIONS (`frozenset[str] | None`): the option names the strategy takes; any other name in
            `position_encoding_kwargs` is refused by `validate`. `None` (a strategy that does not declare
            them) skips the check.
        score_bias (`bool`): whether the strategy adds a bias to the attention scores (`attention_bias`);
            the model builds key positions and calls it once per forward only then.
        content_score_bias (`bool`): whether the strategy adds a bias computed from each layer's queries and keys
            (`content_bias`); the attention calls it in every layer only then, so strategies without it pay
            nothing. A class that overrides `content_bias` must declare it.
    """

    OPTIONS: ClassVar[frozenset[str] | None] = frozenset()
    score_bias: ClassVar[bool] = False
    content_score_bias: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        declared = any(
            "score_bias" in vars(klass) for klass in cls.__mro__[:-1] if klass is not PositionEncoding
        )
        if not declared and cls.attention_bias is not PositionEncoding.attention_bias:
            warnings.warn(
                f"{cls.__name__} overrides attention_bias without declaring `score_bias = True`; hfgpt assumes it "
                "(declare it in the class to silence this warning)",
                FutureWarning,
                stacklevel=2,
            )
            cls.score_bias = True
        declares_content = any(
            "content_score_bias" in vars(klass) for klass in cls.__mro__[:-1] if klass is not PositionEncoding
        )
        if not declares_content and cls.content_bias is not PositionEncoding.content_bias:
            # A new hook has no legacy plugins to spare: the flag is what keeps the other strategies free of it.
            raise TypeError(
                f"{cls.__name__} overrides content_bias: declare `content_score_bias = True` in the class so that "
                "hfgpt calls it"
            )

    def __init__(self, config):
        super().__init__()
        type(self).validate(config)
        self.config = config
        self.options = dict(config.position_encoding_kwargs or {})

    @classmethod
    def validate(cls, config) -> None:
        """Refuse options the strategy cannot be built with, from the config alone (before any model exists).

        The default refuses option names outside `OPTIONS`; a strategy whose options take values extends it.
        """
        options = config.position_encoding_kwargs or {}
        unknown = set(options) - cls.OPTIONS if cls.OPTIONS is not None else set()
        if unknown:
            takes = f"takes {sorted(cls.OPTIONS)}" if cls.OPTIONS else "takes no options"
            raise ConfigError(
                f"unknown {config.position_encoding} option(s) {sorted(unknown)} in position_encoding_kwargs; "
                f"{config.position_encoding} {takes}"
            )

    @classmethod
    def max_positions_for(cls, config) -> int | None:
        """The longest sequence this strategy can encode for `config`, or `None` for any length."""
        return None

    @property
    def max_positions(self) -> int | None:
        """This module's limit: `max_positions_for(config)`, or what a strategy written before that classmethod
        existed assigned to `self.max_positions` in its `__init__`."""
        return self.__dict__.get("_assigned_max_positions", type(self).max_positions_for(self.config))

    @max_positions.setter
    def max_positions(self, value: int | None) -> None:
        warnings.warn(
            f"{type(self).__name__} assigns self.max_positions; declare the classmethod max_positions_for(config) "
            "instead, so hfgpt can check lengths before a model is built",
            FutureWarning,
            stacklevel=2,
        )
        self.__dict__["_assigned_max_positions"] = value

    def init_buffers(self) -> None:
        """Recompute derived, non-persistent buffers (frequency tables, slopes).

        Called whenever the model initialises weights; `from_pretrained` builds models on the meta device,
        so a buffer that is not saved in the checkpoint must be recomputed here or it holds garbage.
        """

    def embed(self, inputs_embeds: torch.Tensor, position_ids: torch.LongTensor) -> torch.Tensor:
        """Return the token embeddings `(batch, seq, emb_dim)` with absolute positions `(batch, seq)` mixed in."""
        return inputs_embeds

    def prepare(self, position_ids: torch.LongTensor) -> Any:
        """What `rotate` needs from the positions `(batch, seq)`, computed once per forward for every layer.

        The default hands the positions themselves to `rotate`; RoPE computes its cos/sin tables here.
        """
        return position_ids

    def rotate(
        self, query: torch.Tensor, key: torch.Tensor, prepared: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `query` and `key` `(batch, heads, seq, head_dim)` rotated by their positions, `prepared` being
        what `prepare` returned for this forward."""
        return query, key

    def attention_bias(
        self, query_positions: torch.LongTensor, key_positions: torch.LongTensor
    ) -> torch.Tensor | None:
        """A bias `(1 or batch, heads, q_len, kv_len)` added to the attention scores, or `None`.

        Positions are per token, as `position_ids` are: `query_positions` `(batch, q_len)` are those of the new
        tokens, `key_positions` `(batch, kv_len)` those of every key, cached ones included. In a packed batch
        they restart at each document, so a bias of `key - query` distances is the same as for the documents
        run one by one (pairs across documents are masked anyway).
        """
        return None

    def content_bias(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        prepared: Any,
        layer_idx: int,
        visible: torch.BoolTensor,
    ) -> torch.Tensor | None:
        """A bias `(batch, heads, q_len, kv_len)` computed from one layer's queries and keys, added to its scores.

        Called in every layer, only when the class declares `content_score_bias = True`, after `rotate` and after
        the KV cache has been updated: `query` `(batch, heads, q_len, head_dim)` holds the new tokens, `key`
        `(batch, heads, kv_len, head_dim)` every key, cached ones included (a static cache's unfilled slots too).
        `prepared` is what `prepare` returned for this forward, `layer_idx` the block's index (a strategy with
        per-layer parameters picks its own), and `visible` `(batch or 1, 1, q_len, kv_len)` is True where the
        query may attend to the key (causal order, padding, packed documents, sliding window), so a bias that
        sums over keys (CoPE's gates) can leave the others out. Masked pairs are masked again afterwards.
        """
        return None


class NoPositionEncoding(PositionEncoding):
    """No positional information at all (`"none"`): the causal mask alone tells the model about order."""


class LearnedPositionEncoding(PositionEncoding):
    """GPT-2's learned absolute positions (`"learned"`): a `(context_length, emb_dim)` table added to embeddings."""

    def __init__(self, config):
        super().__init__(config)
        self.wpe = nn.Embedding(config.context_length, config.emb_dim)

    @classmethod
    def max_positions_for(cls, config) -> int:
        return config.context_length

    def embed(self, inputs_embeds, position_ids):
        return inputs_embeds + self.wpe(position_ids)


class SinusoidalPositionEncoding(PositionEncoding):
    """Fixed sinusoids from "Attention Is All You Need" (`"sinusoidal"`); options `base` (default 10000) and
    `embed_scale` (default `sqrt(emb_dim)`).

    Even channels hold `sin(pos / base^(2i/d))`, odd channels the matching cosine. Nothing is learned, so any
    length works, although quality beyond the trained length is not guaranteed.

    The token embeddings are multiplied by `embed_scale` before the sinusoids are added, as in the paper
    (Vaswani et al. 2017, section 3.4: "we multiply those weights by sqrt(d_model)"). Without it, embeddings
    initialised with std 0.02 are drowned by sinusoids of amplitude 1 (per-channel RMS 1/sqrt(2)): the first
    block sees mostly position and little token, and training is much slower than with `learned`, whose
    table starts as small as the tokens. `embed_scale=1.0` restores the unscaled sum (checkpoints trained
    before this scaling existed need it to load unchanged).
    """

    OPTIONS = frozenset({"base", "embed_scale"})

    @classmethod
    def validate(cls, config) -> None:
        super().validate(config)
        options = config.position_encoding_kwargs or {}
        base, scale = options.get("base", 10000.0), options.get("embed_scale", 1.0)
        if not _is_number(base) or not base > 1:
            raise ConfigError(f"sinusoidal base must be a number > 1, got {base!r}")
        if not _is_number(scale) or not scale > 0:
            raise ConfigError(f"sinusoidal embed_scale must be a positive number, got {scale!r}")

    def __init__(self, config):
        super().__init__(config)
        self.embed_scale = float(self.options.get("embed_scale", config.emb_dim**0.5))
        self.register_buffer("inv_freq", self.frequencies(), persistent=False)

    def frequencies(self) -> torch.Tensor:
        base, dim = float(self.options.get("base", 10000.0)), self.config.emb_dim
        return base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)

    def init_buffers(self):
        init.copy_(self.inv_freq, self.frequencies())

    def embed(self, inputs_embeds, position_ids):
        angles = position_ids[..., None].float() * self.inv_freq  # (batch, seq, emb_dim/2)
        table = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)[..., : inputs_embeds.shape[-1]]
        return inputs_embeds * self.embed_scale + table.to(inputs_embeds.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryPositionEncoding(PositionEncoding):
    """Rotary position embeddings (`"rope"`, RoFormer / Llama layout), optionally stretched to longer contexts.

    Each pair of query/key channels is rotated by an angle proportional to the position, so `q·k` depends only
    on the distance between tokens. Applied in every layer before the KV cache; any length works, but a model
    sees angles it never trained on beyond its training length. The context-extension options rescale the
    frequencies so that longer inputs stay within (or near) the trained angles; they change no weight, so they
    can be set at inference time on a model trained without them
    (`from_pretrained(path, position_encoding_kwargs={"scaling": "yarn", "factor": 4.0})`).

    Options (`config.position_encoding_kwargs`):
        theta (`float`, defaults to 10000): the base of the frequencies `theta^(-2i/head_dim)`.
        scaling (`str`, *optional*): `"linear"`, `"ntk"` or `"yarn"` (see `ROPE_SCALINGS`); none by default.
        factor (`float`, defaults to 1): how many times longer than the training context inputs may be.
        original_context_length (`int`, defaults to `context_length`): the length trained on (yarn's ramp).
        beta_fast, beta_slow (`float`, defaults to 32 and 1): yarn's ramp bounds, in rotations over the
            original context.
    """

    OPTIONS = frozenset({"theta", "scaling", "factor", "original_context_length", "beta_fast", "beta_slow"})

    def __init__(self, config):
        super().__init__(config)
        self.scaling = self.options.get("scaling")
        self.factor = float(self.options.get("factor", 1.0))
        self.register_buffer("inv_freq", self.frequencies(), persistent=False)
        # YaRN's temperature: both q and k are multiplied by it (through cos and sin), so q·k by its square.
        self.attention_factor = 0.1 * math.log(self.factor) + 1.0 if self.scaling == "yarn" else 1.0

    @classmethod
    def validate(cls, config) -> None:
        super().validate(config)
        if config.head_dim % 2:
            raise ConfigError(f"rope needs an even head dimension, got emb_dim/n_heads = {config.head_dim}")
        options = config.position_encoding_kwargs or {}
        theta = options.get("theta", 10000.0)
        if not _is_number(theta) or not theta > 1:
            raise ConfigError(f"rope theta must be a number > 1 (the frequencies' base), got {theta!r}")
        scaling = options.get("scaling")
        if scaling is not None and scaling not in ROPE_SCALINGS:
            raise ConfigError(
                f"unknown rope scaling {scaling!r}; choose one of {sorted(ROPE_SCALINGS)} (or leave it out)"
            )
        factor = options.get("factor", 1.0)
        if not _is_number(factor) or not factor >= 1:
            raise ConfigError(
                f"rope scaling factor must be a number >= 1 (the context extension ratio), got {factor!r}"
            )
        if scaling is None and (set(options) & (cls.OPTIONS - {"theta"})):
            raise ConfigError(
                f"rope options {sorted(set(options) - {'theta'})} need a scaling method: add "
                f'"scaling": one of {sorted(ROPE_SCALINGS)}'
            )
        original = options.get("original_context_length", config.context_length)
        if isinstance(original, bool) or not isinstance(original, int) or original < 1:
            raise ConfigError(f"rope original_context_length must be a positive integer, got {original!r}")
        fast, slow = options.get("beta_fast", 32.0), options.get("beta_slow", 1.0)
        if not (_is_number(fast) and _is_number(slow) and fast > slow > 0):
            raise ConfigError(
                f"rope yarn needs beta_fast > beta_slow > 0, got beta_fast={fast!r}, beta_slow={slow!r}"
            )

    def frequencies(self) -> torch.Tensor:
        theta, head_dim = float(self.options.get("theta", 10000.0)), self.config.head_dim
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
        if self.scaling is None or self.factor == 1.0:
            return (theta**-exponents).float()
        return ROPE_SCALINGS[self.scaling](self, theta, exponents).float()

    def linear(self, theta: float, exponents: torch.Tensor) -> torch.Tensor:
        # Position interpolation (Chen et al. 2023): positions divided by the factor, i.e. every frequency is.
        return theta**-exponents / self.factor

    def ntk(self, theta: float, exponents: torch.Tensor) -> torch.Tensor:
        # "NTK-aware" scaling (bloc97, 2023): a larger base, theta * factor^(d/(d-2)), leaves the fastest
        # frequency as is (local order stays sharp) and slows the slowest by exactly the factor.
        d = self.config.head_dim
        return (theta * self.factor ** (d / (d - 2))) ** -exponents

    def yarn(self, theta: float, exponents: torch.Tensor) -> torch.Tensor:
        # YaRN (Peng et al. 2023, "NTK-by-parts"): frequencies that turn more than beta_fast times over the
        # original context are kept (extrapolated), those turning less than beta_slow times are interpolated
        # (divided by the factor), and a linear ramp over the dimension index blends the ones in between.
        d, original = (
            self.config.head_dim,
            self.options.get("original_context_length", self.config.context_length),
        )
        fast, slow = float(self.options.get("beta_fast", 32.0)), float(self.options.get("beta_slow", 1.0))

        def dim_of(rotations: float) -> float:  # the dimension index whose frequency turns `rotations` times
            return d * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(theta))

        low, high = max(math.floor(dim_of(fast)), 0), min(math.ceil(dim_of(slow)), d - 1)
        if low == high:
            high += 0.001  # avoid a zero-width ramp
        ramp = ((torch.arange(d // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        extrapolated = theta**-exponents
        keep = 1 - ramp  # 1: high frequencies kept, 0: low frequencies interpolated
        return extrapolated / self.factor * (1 - keep) + extrapolated * keep

    def init_buffers(self):
        init.copy_(self.inv_freq, self.frequencies())

    def prepare(self, position_ids):
        """cos and sin `(batch, 1, seq, head_dim)` of every position's angles, once per forward."""
        freqs = position_ids[:, None, :, None].float() * self.inv_freq  # (batch, 1, seq, head_dim/2)
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos() * self.attention_factor, angles.sin() * self.attention_factor

    def rotate(self, query, key, prepared):
        cos, sin = (table.to(query.dtype) for table in prepared)  # a no-op unless autocast lowered q and k
        return query * cos + rotate_half(query) * sin, key * cos + rotate_half(key) * sin


ROPE_SCALINGS = {
    "linear": RotaryPositionEncoding.linear,
    "ntk": RotaryPositionEncoding.ntk,
    "yarn": RotaryPositionEncoding.yarn,
}


class PartialRotaryPositionEncoding(RotaryPositionEncoding):
    """RoPE on part of the frequencies and channels (`"p-rope"`): Barbero et al. 2024, "Round and Round We Go!
    What makes Rotary Positional Encodings useful?", and GPT-NeoX's partial rotary dimensions.

    Barbero et al. find that trained models use RoPE's highest frequencies for positional attention patterns and
    its lowest, which barely turn over the context, as semantic channels that positions only disturb; p-RoPE keeps
    the fraction `p` of the frequencies (the highest) and leaves the channels of the others unrotated, so
    `p = 1` is RoPE and `p = 0` is NoPE. Partial rotary dimensions (GPT-NeoX, GPT-J) rotate only the first
    `partial_rotary_factor × head_dim` channels of each head, with frequencies spread over those channels alone
    (`theta^(-2i/rotary_dim)`), so they keep a full range of frequencies on fewer channels; the two combine:
    `p` applies to the rotary channels' frequencies.

    Options (`config.position_encoding_kwargs`):
        theta (`float`, defaults to 10000): the base of the frequencies.
        p (`float`, defaults to 1): the fraction of the rotary frequencies kept, from the highest down;
            `floor(p × rotary_dim / 2)` are kept, the channels of the others are not rotated.
        partial_rotary_factor (`float`, defaults to 1): the fraction of each head's channels that are rotary;
            `rotary_dim` is `partial_rotary_factor × head_dim` rounded down to an even number.
    """

    OPTIONS = frozenset({"theta", "p", "partial_rotary_factor"})

    @classmethod
    def validate(cls, config) -> None:
        super(RotaryPositionEncoding, cls).validate(config)  # option names; rope's scaling rules do not apply
        options = config.position_encoding_kwargs or {}
        theta, p = options.get("theta", 10000.0), options.get("p", 1.0)
        factor = options.get("partial_rotary_factor", 1.0)
        if not _is_number(theta) or not theta > 1:
            raise ConfigError(f"p-rope theta must be a number > 1 (the frequencies' base), got {theta!r}")
        if not _is_number(p) or not 0 <= p <= 1:
            raise ConfigError(
                f"p-rope p must be a number in [0, 1] (the fraction of frequencies kept), got {p!r}"
            )
        if not _is_number(factor) or not 0 < factor <= 1:
            raise ConfigError(
                f"p-rope partial_rotary_factor must be a number in (0, 1] (the fraction of rotary channels), "
                f"got {factor!r}"
            )
        if cls.rotary_dim_for(config) < 2:
            raise ConfigError(
                f"p-rope partial_rotary_factor={factor} leaves no channel pair to rotate in a head of "
                f"{config.head_dim}; raise it to at least {2 / config.head_dim:.3g}"
            )

    @classmethod
    def rotary_dim_for(cls, config) -> int:
        factor = (config.position_encoding_kwargs or {}).get("partial_rotary_factor", 1.0)
        return int(config.head_dim * factor) // 2 * 2

    def __init__(self, config):
        self.rotary_dim = type(self).rotary_dim_for(config)
        super().__init__(config)

    def frequencies(self) -> torch.Tensor:
        theta, p = float(self.options.get("theta", 10000.0)), float(self.options.get("p", 1.0))
        exponents = torch.arange(0, self.rotary_dim, 2, dtype=torch.float64) / self.rotary_dim
        # A zero frequency turns by nothing: cos 1, sin 0, the channel pair passes through unchanged.
        inv_freq = theta**-exponents
        inv_freq[math.floor(p * len(inv_freq)) :] = 0.0
        return inv_freq.float()

    def rotate(self, query, key, prepared):
        if self.rotary_dim == query.shape[-1]:
            return super().rotate(query, key, prepared)
        rotary = self.rotary_dim
        q, k = super().rotate(query[..., :rotary], key[..., :rotary], prepared)
        return torch.cat((q, query[..., rotary:]), dim=-1), torch.cat((k, key[..., rotary:]), dim=-1)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def strategy_class(config) -> type[PositionEncoding]:
    """The class of `config`'s positional strategy (an unknown name lists the installed ones)."""
    return get_position_encoding(config.position_encoding)


def layer_configs(config) -> list[tuple[Any, list[int]]]:
    """The distinct strategies of `config`'s layers, each as the config it is built from, with its layers.

    The model's own strategy (`position_encoding`, `position_encoding_kwargs`) comes first and is built from
    `config` itself; another strategy of the schedule is built from a copy of `config` that names it and its
    options, so `cls(config)`, `validate` and `max_positions_for` work for it unchanged. A config without a
    schedule gives `[(config, [0, 1, ..., n_layers - 1])]`.
    """
    schedule = config.layer_strategies() if hasattr(config, "layer_strategies") else None
    if not schedule:
        return [(config, list(range(config.n_layers)))]
    main = (config.position_encoding, dict(config.position_encoding_kwargs or {}))
    groups: dict[str, tuple[Any, list[int]]] = {}
    for layer, (name, options) in enumerate(schedule):
        key = json.dumps([name, options], sort_keys=True)
        if key not in groups:
            if (name, options) == main:
                strategy_config = config
            else:
                strategy_config = copy.copy(config)
                strategy_config.position_encoding, strategy_config.position_encoding_kwargs = name, options
            groups[key] = (strategy_config, [])
        groups[key][1].append(layer)
    ordered = sorted(groups.values(), key=lambda group: group[0] is not config)  # the model's own first
    if ordered[0][0] is not config:
        raise ConfigError(
            f"position_encoding={config.position_encoding!r} is the strategy of no layer of the schedule "
            f"({[name for name, _ in schedule]}); set position_encoding to one of the schedule's strategies (or "
            "write null for the layers that use it)"
        )
    return ordered


def check_schedule(config) -> None:
    """Refuse a per-layer schedule that cannot be built or would change nothing, from the config alone."""
    for strategy_config, _ in layer_configs(config):
        strategy_class(strategy_config).validate(strategy_config)
    if getattr(config, "nope_every", None):
        cls = strategy_class(config)
        per_layer = ("rotate", "attention_bias", "content_bias")
        if all(getattr(cls, hook) is getattr(PositionEncoding, hook) for hook in per_layer):
            raise ConfigError(
                f"nope_every removes positions from some layers, but {config.position_encoding} adds its positions "
                "once to the token embeddings and acts in no layer, so it would change nothing; use a rotary or "
                "score-bias strategy (rope, alibi, ...) with nope_every"
            )
    maximum = getattr(config, "random_positions_max", None)
    if maximum:
        limit = max_positions(config)
        if limit is not None and maximum > limit:
            raise ConfigError(
                f"random_positions_max={maximum} draws positions up to {maximum - 1}, but the model's strategies "
                f"encode only {limit} positions; lower it to at most {limit} (or raise context_length)"
            )


def random_positions(position_ids: torch.LongTensor, batch: int, maximum: int) -> torch.LongTensor:
    """Randomized positions (Ruoss et al. 2023): each document's positions become a sorted random sample of
    distinct positions from `[0, maximum)` instead of `0, 1, ..., n - 1`.

    Documents are runs of `position_ids` that go up by one, as the model reads packed batches; each gets its own
    uniformly random subset, drawn for every row independently. Vectorised without a host read: a random
    permutation of `[0, maximum)` per row gives each token a distinct value (each document's share of it is a
    uniform sample of its size), and sorting `document * maximum + value` sorts every document's values in
    place, since documents are contiguous and numbered in order.
    """
    seq_len = position_ids.shape[-1]
    position_ids = position_ids.expand(batch, seq_len)
    follows = position_ids[:, 1:] == position_ids[:, :-1] + 1
    document = torch.cat((torch.zeros_like(follows[:, :1]), ~follows), dim=-1).cumsum(-1)
    noise = torch.rand(batch, maximum, device=position_ids.device)
    values = noise.argsort(dim=-1)[:, :seq_len]
    return (document * maximum + values).sort(dim=-1).values - document * maximum


def max_positions(config) -> int | None:
    """The longest sequence a model with `config` can encode, or `None` for any length.

    For an hfgpt config, its strategies answer (`max_positions_for`; with a per-layer schedule, the most
    limited one); another transformers config is taken at its word: its `n_positions` (GPT-2) or
    `max_position_embeddings`.
    """
    if hasattr(config, "position_encoding"):
        limits = [
            strategy_class(strategy_config).max_positions_for(strategy_config)
            for strategy_config, _ in layer_configs(config)
        ]
        limits = [limit for limit in limits if limit is not None]
        return min(limits) if limits else None
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_position_options(config) -> None:
    """Refuse an unknown strategy or options it does not take (for every layer's strategy), before any model
    is built."""
    strategy_class(config).validate(config)
    check_schedule(config)


__all__ = [
    "LearnedPositionEncoding",
    "NoPositionEncoding",
    "PartialRotaryPositionEncoding",
    "PositionEncoding",
    "RotaryPositionEncoding",
    "SinusoidalPositionEncoding",
    "check_position_options",
    "check_schedule",
    "layer_configs",
    "max_positions",
    "random_positions",
    "strategy_class",
]
