"""ALiBi for hfgpt: no position embeddings, a per-head linear penalty on attention scores instead.

Press, Smith & Lewis, "Train Short, Test Long" (2021): head h adds `slope_h * (key_pos - query_pos)` to
its scores, so attention fades with distance. Nothing depends on an absolute position, which is why a
model trained on short sequences still runs on longer ones.
"""

from __future__ import annotations

import math

import torch
from transformers import initialization as init

from hfgpt import PositionEncoding, hookimpl

__version__ = "0.1.0"


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """The per-head slopes: 2^(-8/n), 2^(-16/n), ... for n a power of two; otherwise the paper's interleaving."""
    closest = 2 ** math.floor(math.log2(n_heads))
    slopes = [2 ** (-8 * (i + 1) / closest) for i in range(closest)]
    if closest < n_heads:  # take every other slope of the next power of two
        slopes += [2 ** (-4 * (i + 1) / closest) for i in range(0, 2 * (n_heads - closest), 2)]
    return torch.tensor(slopes)


class ALiBiPositionEncoding(PositionEncoding):
    """`"alibi"`: a bias `slope_h * (key_pos - query_pos)` on every head's attention scores; any length works."""

    score_bias = True

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("slopes", alibi_slopes(config.n_heads), persistent=False)

    def init_buffers(self):
        init.copy_(self.slopes, alibi_slopes(self.config.n_heads))

    def attention_bias(self, query_positions, key_positions):
        # Per-token positions (batch, q_len) and (batch, kv_len): distances restart with packed documents.
        distance = (
            key_positions[:, None, :] - query_positions[:, :, None]
        )  # (batch, q_len, kv_len); <= 0 if visible
        return self.slopes[None, :, None, None] * distance[:, None].to(
            self.slopes.dtype
        )  # (batch, heads, q, kv)


@hookimpl
def register_position_encodings(register):
    register("alibi", ALiBiPositionEncoding)
