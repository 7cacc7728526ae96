"""KERPLE for hfgpt: a learned, logarithmic distance penalty on the attention scores of every head.

Chi, Fan, Ramadge & Rudnicky, "KERPLE: Kernelized Relative Positional Embedding for Length Extrapolation"
(NeurIPS 2022). Relative position biases are read as conditionally positive definite kernels; the
logarithmic variant, the paper's best, adds to the score of query `i` and key `j`

    -r1 * log(1 + r2 * |i - j|),        r1, r2 > 0, learned per head.

Like ALiBi it depends only on distances, so any length works; unlike ALiBi's fixed linear slopes, each head
learns how strongly (r1) and from how far (r2) it discounts distant tokens, and the logarithm discounts far
tokens far less than a line does.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init

from hfgpt import PositionEncoding, hookimpl

__version__ = "0.1.0"


class KerplePositionEncoding(PositionEncoding):
    """`"kerple"`: a bias `-r1_h * log(1 + r2_h * |query_pos - key_pos|)` on the scores of every head `h`.

    `r1` and `r2` are parameters per head, one pair shared by all layers (the bias is built once per forward),
    initialised as the paper's code does (`r1` uniform in [0, 2], `r2` uniform in [0, 1]) and clamped to at
    least `EPS` = 0.01 where they are used, which keeps both positive (the kernel's condition) while training.
    """

    score_bias = True
    EPS = 1e-2

    def __init__(self, config):
        super().__init__(config)
        self.r1 = nn.Parameter(torch.rand(config.n_heads) * 2)
        self.r2 = nn.Parameter(torch.rand(config.n_heads))

    def init_buffers(self):
        # transformers' init functions skip tensors loaded from a checkpoint: this only sets fresh models.
        init.uniform_(self.r1, 0.0, 2.0)
        init.uniform_(self.r2, 0.0, 1.0)

    def attention_bias(self, query_positions, key_positions):
        # Per-token positions (batch, q_len) and (batch, kv_len): distances restart with packed documents.
        distance = (query_positions[:, :, None] - key_positions[:, None, :]).abs()  # (batch, q_len, kv_len)
        r1 = self.r1.clamp(min=self.EPS)[None, :, None, None]
        r2 = self.r2.clamp(min=self.EPS)[None, :, None, None]
        return -r1 * torch.log1p(r2 * distance[:, None].to(r2.dtype))  # (batch, heads, q_len, kv_len)


@hookimpl
def register_position_encodings(register):
    register("kerple", KerplePositionEncoding)
