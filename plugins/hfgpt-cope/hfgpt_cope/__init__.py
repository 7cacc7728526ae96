"""CoPE for hfgpt: positions that count what the content says should be counted, not tokens.

Golovneva, Wang, Weston & Sukhbaatar, "Contextual Position Encoding: Learning to Count What's Important"
(2024). For query `i` and key `j`, a gate `g_ij = sigmoid(q_i · k_j)` says whether key `j` counts, and the
position of `j` seen from `i` is the number of counting keys between them,

    p_ij = sum_{t = j}^{i} g_it,

a fractional position (with every gate 1 it is the token distance plus one). Each layer has position
embeddings `e[0], ..., e[npos_max - 1]`, interpolated at fractional positions, `e[p] = (p - floor p) e[ceil p]
+ (1 - (p - floor p)) e[floor p]`, and the attention logit of `(i, j)` gets `q_i · e[p_ij]`. A head can so
attend to "the last sentence" or "the third noun" rather than to a token distance.

The bias depends on the queries and keys of each layer, so it is not a function of positions: it uses hfgpt's
per-layer hook `content_bias` (declared by `content_score_bias = True`) instead of `attention_bias`.
"""

from __future__ import annotations

import torch
from torch import nn

from hfgpt import PositionEncoding, hookimpl
from hfgpt.errors import ConfigError

__version__ = "0.1.0"


class CoPEPositionEncoding(PositionEncoding):
    """`"cope"`: adds `q_i · e_layer[p_ij]` to every score, `p_ij` the sum of the gates `sigmoid(q_i · k_t)` for `t`
    from `j` to `i`.

    As in the paper's code: the gates are the sigmoid of the attention logits (scaled by `1/sqrt(head_dim)`,
    as hfgpt's scores are), masked keys count zero, positions are clamped to `npos_max - 1`, and each layer has
    its own embeddings `(head_dim, npos_max)`, shared by its heads and starting at zero (so a fresh model starts
    without positions and learns them). No position ids are read: packed documents, padding and sliding windows
    reach CoPE through the mask only, and any length works (positions past `npos_max - 1` share the last
    embedding).

    Options (`config.position_encoding_kwargs`):
        npos_max (`int`, defaults to `context_length`): the number of position embeddings per layer.
    """

    content_score_bias = True
    OPTIONS = frozenset({"npos_max"})

    @classmethod
    def validate(cls, config) -> None:
        super().validate(config)
        npos_max = (config.position_encoding_kwargs or {}).get("npos_max", config.context_length)
        if isinstance(npos_max, bool) or not isinstance(npos_max, int) or npos_max < 2:
            raise ConfigError(
                f"cope npos_max must be an integer >= 2 (embeddings per layer), got {npos_max!r}"
            )

    def __init__(self, config):
        super().__init__(config)
        self.npos_max = self.options.get("npos_max", config.context_length)
        self.scaling = config.head_dim**-0.5
        self.pos_emb = nn.Parameter(torch.zeros(config.n_layers, config.head_dim, self.npos_max))

    def content_bias(self, query, key, prepared, layer_idx, visible):
        logits = (query @ key.transpose(-2, -1)).float() * self.scaling  # (batch, heads, q_len, kv_len)
        gates = torch.sigmoid(logits).masked_fill(~visible, 0.0)
        # p_ij = sum over t >= j of g_it: masked keys (the future, other documents, outside the window) add 0.
        positions = gates.flip(-1).cumsum(-1).flip(-1).clamp(max=self.npos_max - 1)
        floor = positions.floor()
        weight = positions - floor
        # q_i · e[n] for every integer n, then the two neighbours of each p_ij, interpolated.
        per_position = query.float() @ self.pos_emb[layer_idx].float()  # (batch, heads, q_len, npos_max)
        below = per_position.gather(-1, floor.long())
        above = per_position.gather(-1, positions.ceil().long())
        return above * weight + below * (1 - weight)


@hookimpl
def register_position_encodings(register):
    register("cope", CoPEPositionEncoding)
