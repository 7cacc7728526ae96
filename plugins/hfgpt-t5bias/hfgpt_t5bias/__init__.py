"""T5's relative position bias for hfgpt: a learned score bias per head and per bucket of distances.

Raffel et al., "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer" (2020),
section 2.1: instead of position embeddings, each head adds a learned scalar to its attention scores that
depends only on the distance between key and query. Distances are grouped into buckets: the first half of
the buckets hold one distance each (0, 1, ...), the other half grow logarithmically up to `max_distance`,
beyond which every distance shares the last bucket. A decoder only looks back, so the unidirectional
bucketing (T5's `bidirectional=False`, as in its decoder) is used: all buckets go to past distances.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hfgpt import PositionEncoding, hookimpl
from hfgpt.errors import ConfigError

__version__ = "0.1.0"


def relative_position_bucket(
    relative_position: torch.LongTensor, num_buckets: int = 32, max_distance: int = 128
) -> torch.LongTensor:
    """T5's unidirectional bucket of each `key_pos - query_pos` (transformers' `T5Attention`, bidirectional=False).

    Args:
        relative_position (`torch.LongTensor`): `key_pos - query_pos`; positive values (future keys, masked in a
            causal model) fall into bucket 0 with distance 0.
        num_buckets (`int`): buckets in all; distances below `num_buckets // 2` each get their own.
        max_distance (`int`): distances from here on share the last bucket.

    Returns:
        `torch.LongTensor` of the same shape, values in `[0, num_buckets)`.
    """
    distance = (-relative_position).clamp(min=0)  # how far back the key is
    max_exact = num_buckets // 2
    # Log-spaced between max_exact and max_distance: bucket = max_exact + log(n / max_exact) /
    # log(max_distance / max_exact) * (num_buckets - max_exact), truncated. clamp(min=1) keeps log finite for
    # the small distances, which take the exact branch anyway.
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    if_large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return torch.where(distance < max_exact, distance, if_large)


class T5RelativePositionBias(PositionEncoding):
    """`"t5"`: a learned bias `table[bucket(key_pos - query_pos), head]` on every head's attention scores.

    One table is shared by all layers (T5 computes it in the first layer and reuses it), initialised like
    the model's other embeddings. It depends only on distances, so any length works; distances beyond
    `max_distance` share one bias.

    Options (`config.position_encoding_kwargs`):
        num_buckets (`int`, defaults to 32): buckets of distances (T5's `relative_attention_num_buckets`).
        max_distance (`int`, defaults to 128): where the log-spaced buckets end (T5's
            `relative_attention_max_distance`); must exceed `num_buckets // 2`.
    """

    score_bias = True

    OPTIONS = frozenset({"num_buckets", "max_distance"})

    def __init__(self, config):
        super().__init__(config)
        self.num_buckets = self.options.get("num_buckets", 32)
        self.max_distance = self.options.get("max_distance", 128)
        if not _positive_int(self.num_buckets) or self.num_buckets < 2:
            raise ConfigError(f"t5 num_buckets must be an integer >= 2, got {self.num_buckets!r}")
        if not _positive_int(self.max_distance) or self.max_distance <= self.num_buckets // 2:
            raise ConfigError(
                f"t5 max_distance must be an integer > num_buckets // 2 = {self.num_buckets // 2} (the exact "
                f"buckets end there and the log-spaced ones start), got {self.max_distance!r}"
            )
        self.relative_attention_bias = nn.Embedding(self.num_buckets, config.n_heads)

    def attention_bias(self, query_positions, key_positions):
        # Per-token positions (batch, q_len) and (batch, kv_len): with the KV cache the keys include cached
        # tokens, and in packed batches distances restart with each document.
        distance = key_positions[:, None, :] - query_positions[:, :, None]  # (batch, q_len, kv_len)
        buckets = relative_position_bucket(distance, self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(0, 3, 1, 2)  # (batch, heads, q_len, kv_len)


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@hookimpl
def register_position_encodings(register):
    register("t5", T5RelativePositionBias)
