"""FIRE for hfgpt: a small learned function of the interpolated, log-scaled distance, one output per head.

Li et al., "Functional Interpolation for Relative Positions Improves Long Context Transformers" (ICLR 2024).
The bias of query `i` and key `j` is

    f_theta( psi(i - j) / psi(max(L, i)) ),        psi(x) = log(c * x + 1),

with `f_theta` an MLP from one input to one output per head, `c > 0` and the threshold `L` learned.
Dividing by `psi(i)` (progressive interpolation) maps the distances of every query into [0, 1], whatever the
sequence length, so a model trained at one length sees no distance it has not seen at longer ones; the
threshold keeps short prefixes (`i < L`) from being stretched, and the logarithm keeps nearby distances apart
after the division. The paper proves that such an `f_theta` can represent T5's buckets, ALiBi and KERPLE.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import initialization as init

from hfgpt import PositionEncoding, hookimpl
from hfgpt.errors import ConfigError

__version__ = "0.1.0"


class FIREPositionEncoding(PositionEncoding):
    """`"fire"`: a bias `mlp(psi(query_pos - key_pos) / psi(max(L, query_pos)))[h]` on the scores of every head.

    As in the paper's reference code: `psi(x) = log(|c x| + 1)`, the threshold is `|L_multiplier * init_L|`
    with a learned multiplier (starting at 1) of a fixed `init_L`, `eps` is added to the normaliser, and the MLP
    is `Linear(1, mlp_width) -> ReLU -> Linear(mlp_width, n_heads)` with PyTorch's default initialisation. One
    function is shared by all layers (the bias is built once per forward).

    Options (`config.position_encoding_kwargs`):
        mlp_width (`int`, defaults to 32): hidden units of the MLP.
        init_c (`float`, defaults to 0.1): the initial `c` of the log transform.
        init_L (`float`, defaults to `context_length`): the initial threshold `L`; the reference code uses 512,
            the length its models train on, so hfgpt starts it at the model's training length.
        eps (`float`, defaults to 1e-6): added to the normaliser, which keeps the division finite.
    """

    score_bias = True
    OPTIONS = frozenset({"mlp_width", "init_c", "init_L", "eps"})

    @classmethod
    def validate(cls, config) -> None:
        super().validate(config)
        options = config.position_encoding_kwargs or {}
        width = options.get("mlp_width", 32)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"fire mlp_width must be a positive integer, got {width!r}")
        for name, default in (("init_c", 0.1), ("init_L", config.context_length), ("eps", 1e-6)):
            value = options.get(name, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"fire {name} must be a positive number, got {value!r}")

    def __init__(self, config):
        super().__init__(config)
        width = self.options.get("mlp_width", 32)
        self.eps = float(self.options.get("eps", 1e-6))
        self.mlp = nn.Sequential(nn.Linear(1, width), nn.ReLU(), nn.Linear(width, config.n_heads))
        self.c = nn.Parameter(torch.tensor(float(self.options.get("init_c", 0.1))))
        self.L_multiplier = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("init_L", self._init_L(), persistent=False)

    def _init_L(self) -> torch.Tensor:
        return torch.tensor(float(self.options.get("init_L", self.config.context_length)))

    def init_buffers(self):
        init.copy_(self.init_L, self._init_L())
        # The model initialises every Linear like GPT-2's (normal, std 0.02, zero bias), which would make this
        # MLP start as a linear function of its one input; the paper's MLP starts with PyTorch's default init.
        # (transformers' init functions skip tensors loaded from a checkpoint: this only sets fresh models.)
        for layer in (self.mlp[0], self.mlp[2]):
            init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
            bound = 1 / math.sqrt(layer.in_features)
            init.uniform_(layer.bias, -bound, bound)
        init.constant_(self.c, float(self.options.get("init_c", 0.1)))
        init.ones_(self.L_multiplier)

    def attention_bias(self, query_positions, key_positions):
        # Per-token positions (batch, q_len) and (batch, kv_len): with packed documents and the KV cache, the
        # query's own position (in its document) is both the distance's origin and the interpolation's `i`.
        query = query_positions.to(self.c.dtype)
        distance = query[:, :, None] - key_positions[:, None, :].to(self.c.dtype)  # (batch, q_len, kv_len)
        threshold = (self.L_multiplier * self.init_L).abs()
        normaliser = torch.maximum(query, threshold)[:, :, None]  # (batch, q_len, 1)
        log_distance = torch.log(torch.abs(self.c * distance) + 1)
        log_normaliser = torch.log(torch.abs(self.c * normaliser) + 1) + self.eps
        bias = self.mlp((log_distance / log_normaliser)[..., None])  # (batch, q_len, kv_len, heads)
        return bias.permute(0, 3, 1, 2)  # (batch, heads, q_len, kv_len)


@hookimpl
def register_position_encodings(register):
    register("fire", FIREPositionEncoding)
