"""The attention progression of "Build a Large Language Model (From Scratch)", chapter 3, one step at a time.

Each stage adds exactly one idea to the one before:

1. `simplified_self_attention` — every token's new vector is a weighted average of all token vectors,
   weighted by (softmaxed) dot-product similarity. No trainable parameters.
2. `SelfAttentionV1` — trainable query/key/value projections, written as raw `nn.Parameter` matrices,
   and scores scaled by `1 / sqrt(d_k)`.
3. `SelfAttentionV2` — the same computation with `nn.Linear` layers (better initialisation, optional bias).
4. `CausalAttention` — a mask hides future tokens, dropout regularises the attention weights, and the
   input is a batch `(batch, num_tokens, d_in)`.
5. `MultiHeadAttentionWrapper` — several independent causal heads, outputs concatenated.
6. `MultiHeadAttention` — the same thing computed efficiently: one projection per query/key/value, split
   into heads by a reshape, one batched matrix product for all heads, then an output projection. This is
   the layout `hfgpt.modeling_hfgpt.HFGPTAttention` uses (with q/k/v fused into one `nn.Linear`).

These modules are for learning and testing; the model itself uses `HFGPTAttention`. A walk-through with
the book's 6-token example is in `docs/attention.md` and `examples/attention_walkthrough.py`.

Every module's `forward` takes `return_weights=True` to also return the attention weights, so each step
can be inspected.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "CausalAttention",
    "MultiHeadAttention",
    "MultiHeadAttentionWrapper",
    "SelfAttentionV1",
    "SelfAttentionV2",
    "simplified_attention_weights",
    "simplified_self_attention",
]


def simplified_attention_weights(inputs: torch.Tensor) -> torch.Tensor:
    """Attention weights without trainable parameters: softmax over the dot products of the inputs.

    Token `i` attends to token `j` in proportion to `exp(x_i · x_j)`: the more similar two embeddings,
    the more one borrows from the other. Each row sums to 1.

    Args:
        inputs (`torch.Tensor` of shape `(..., num_tokens, d_in)`): token embeddings.

    Returns:
        `torch.Tensor` of shape `(..., num_tokens, num_tokens)`: row `i` holds token `i`'s weights.
    """
    if inputs.dim() < 2:
        raise ValueError(
            f"inputs must have shape (num_tokens, d_in) or (batch, num_tokens, d_in), got {tuple(inputs.shape)}; "
            "add a token dimension with inputs.unsqueeze(0)"
        )
    scores = inputs @ inputs.transpose(-2, -1)  # (..., num_tokens, num_tokens): every pairwise dot product
    return torch.softmax(scores, dim=-1)  # normalise each row into weights that sum to 1


def simplified_self_attention(inputs: torch.Tensor) -> torch.Tensor:
    """Context vectors without trainable parameters: each token becomes a weighted average of all tokens.

    Args:
        inputs (`torch.Tensor` of shape `(..., num_tokens, d_in)`): token embeddings.

    Returns:
        `torch.Tensor` of shape `(..., num_tokens, d_in)`: context vector `z_i = sum_j w_ij * x_j`.
    """
    weights = simplified_attention_weights(inputs)  # (..., num_tokens, num_tokens)
    return weights @ inputs  # (..., num_tokens, d_in)


def _scaled_weights(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Softmax of `q · k / sqrt(d_k)`: the scaling keeps large dot products from saturating the softmax."""
    scores = queries @ keys.transpose(-2, -1)  # (..., num_tokens, num_tokens)
    return torch.softmax(scores / math.sqrt(keys.shape[-1]), dim=-1)


class _SelfAttention(nn.Module):
    """What `SelfAttentionV1` and `SelfAttentionV2` share: everything after the projections (`project`)."""

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of `x`, each `(..., num_tokens, d_out)`."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Project to queries, keys and values, weight the values by scaled query-key similarity.

        Args:
            x (`torch.Tensor` of shape `(..., num_tokens, d_in)`): token embeddings.
            return_weights (`bool`, defaults to `False`): also return the `(..., num_tokens, num_tokens)` weights.
        """
        queries, keys, values = self.project(x)  # each (..., num_tokens, d_out)
        weights = _scaled_weights(queries, keys)  # (..., num_tokens, num_tokens)
        context = weights @ values  # (..., num_tokens, d_out)
        return (context, weights) if return_weights else context


class SelfAttentionV1(_SelfAttention):
    """Self-attention with trainable query, key and value matrices stored as plain `nn.Parameter`s.

    Each token is projected three ways: its *query* asks "what am I looking for?", its *key* answers
    "what do I contain?", and its *value* is what it hands over when attended to. Weights come from
    query-key dot products scaled by `1 / sqrt(d_out)`, so that they do not grow with the dimension.

    Args:
        d_in (`int`): size of the input embeddings.
        d_out (`int`): size of the queries, keys, values and output context vectors.

    Attributes:
        W_query, W_key, W_value (`nn.Parameter` of shape `(d_in, d_out)`): used as `x @ W`. Initialised
            uniformly in [0, 1) as in the book; `SelfAttentionV2` shows the better way.
    """

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`x @ W` for each of the three matrices."""
        return x @ self.W_query, x @ self.W_key, x @ self.W_value


class SelfAttentionV2(_SelfAttention):
    """`SelfAttentionV1` with `nn.Linear` projections: same maths, better initialisation, optional bias.

    `nn.Linear` stores its weight as `(d_out, d_in)` and computes `x @ weight.T`, so a V1 module with
    `W_query = W_query_linear.weight.T` (and likewise for keys and values) gives identical outputs. Only the
    projections differ (`project`); the attention itself is V1's.

    Args:
        d_in (`int`): size of the input embeddings.
        d_out (`int`): size of the queries, keys, values and output context vectors.
        qkv_bias (`bool`, defaults to `False`): add a bias to the three projections.
    """

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each `nn.Linear` applied to `x`."""
        return self.W_query(x), self.W_key(x), self.W_value(x)


def _causal_mask(context_length: int) -> torch.Tensor:
    """`True` above the diagonal: position `(i, j)` is masked when key `j` comes after query `i`."""
    return torch.ones(context_length, context_length, dtype=torch.bool).triu(diagonal=1)


def _check_length(num_tokens: int, context_length: int) -> None:
    if num_tokens > context_length:
        raise ValueError(
            f"the input has {num_tokens} tokens but the causal mask was built for context_length="
            f"{context_length}; build the module with a larger context_length or pass fewer tokens"
        )


class CausalAttention(nn.Module):
    """Single-head causal self-attention: a token may only look at itself and earlier tokens.

    Two ideas are added to `SelfAttentionV2`:

    * **Causal mask.** Scores above the diagonal (future tokens) are set to `-inf` *before* the softmax,
      so they get weight exactly 0 and each row still sums to 1 over the visible tokens. A language model
      that predicts the next token must not peek at it.
    * **Dropout on the attention weights.** During training a random fraction `dropout` of the weights is
      zeroed and the rest scaled by `1 / (1 - dropout)`; in `eval()` mode nothing is dropped.

    Args:
        d_in (`int`): size of the input embeddings.
        d_out (`int`): size of the queries, keys, values and output context vectors.
        context_length (`int`): the longest input; the mask is precomputed for it.
        dropout (`float`): probability of zeroing an attention weight during training.
        qkv_bias (`bool`, defaults to `False`): add a bias to the query/key/value projections.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False):
        super().__init__()
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # A buffer moves with the module (.to(device)) but is not a trainable parameter.
        self.register_buffer("mask", _causal_mask(context_length), persistent=False)

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend to the current and earlier tokens only, with dropout on the weights in training.

        Args:
            x (`torch.Tensor` of shape `(batch, num_tokens, d_in)`): token embeddings.
            return_weights (`bool`, defaults to `False`): also return the `(batch, num_tokens, num_tokens)`
                weights (after dropout).
        """
        num_tokens = x.shape[1]
        _check_length(num_tokens, self.context_length)
        queries = self.W_query(x)  # (b, num_tokens, d_out)
        keys = self.W_key(x)  # (b, num_tokens, d_out)
        values = self.W_value(x)  # (b, num_tokens, d_out)

        scores = queries @ keys.transpose(1, 2)  # (b, num_tokens, num_tokens)
        future = self.mask[:num_tokens, :num_tokens]  # the mask may be longer than this input
        scores = scores.masked_fill(future, float("-inf"))  # exp(-inf) = 0: no weight on future tokens
        weights = torch.softmax(scores / math.sqrt(keys.shape[-1]), dim=-1)
        weights = self.dropout(weights)  # (b, num_tokens, num_tokens); identity in eval mode

        context = weights @ values  # (b, num_tokens, d_out)
        return (context, weights) if return_weights else context


class MultiHeadAttentionWrapper(nn.Module):
    """Multi-head attention, the straightforward way: `num_heads` independent `CausalAttention` heads.

    Each head has its own projections and may learn to attend to something different (the previous word,
    the subject of the sentence, ...). Their context vectors are concatenated along the last dimension.
    The heads run one after another; `MultiHeadAttention` computes the same thing in one pass.

    Args:
        d_in (`int`): size of the input embeddings.
        d_out (`int`): output size of *each head*; the wrapper outputs `num_heads * d_out` features.
        context_length (`int`): the longest input.
        dropout (`float`): dropout probability on each head's attention weights.
        num_heads (`int`): number of heads.
        qkv_bias (`bool`, defaults to `False`): add a bias to the query/key/value projections.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ):
        super().__init__()
        self.heads = nn.ModuleList(
            CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)
        )

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Run every head on the same input and concatenate their context vectors.

        Args:
            x (`torch.Tensor` of shape `(batch, num_tokens, d_in)`): token embeddings.
            return_weights (`bool`, defaults to `False`): also return the weights of every head, stacked to
                `(batch, num_heads, num_tokens, num_tokens)`.
        """
        outputs = [head(x, return_weights=True) for head in self.heads]
        context = torch.cat([ctx for ctx, _ in outputs], dim=-1)  # (b, num_tokens, num_heads * d_out)
        if not return_weights:
            return context
        return context, torch.stack([w for _, w in outputs], dim=1)  # (b, num_heads, num_tokens, num_tokens)


class MultiHeadAttention(nn.Module):
    """Efficient multi-head causal attention: all heads in one set of matrix products.

    Instead of `num_heads` small projections, one `d_in -> d_out` projection each for queries, keys and
    values; its output is *viewed* as `num_heads` chunks of `head_dim = d_out // num_heads` features. Rows
    `h * head_dim : (h + 1) * head_dim` of `W_query.weight` are exactly head `h`'s query projection, so
    this module equals a `MultiHeadAttentionWrapper` whose heads hold those slices, followed by `out_proj`.
    The output projection mixes what the heads found.

    Args: those of `MultiHeadAttentionWrapper`, except that `d_out` is the size of the output of all heads
    together (each head gets `d_out // num_heads`), so it must be divisible by `num_heads`.
    """

    def __init__(
        self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int, qkv_bias=False
    ):
        super().__init__()
        if d_out % num_heads:
            raise ValueError(
                f"d_out ({d_out}) must be divisible by num_heads ({num_heads}) so every head gets "
                f"d_out // num_heads features; try d_out={num_heads * max(1, d_out // num_heads)}"
            )
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", _causal_mask(context_length), persistent=False)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """`(b, num_tokens, d_out)` -> `(b, num_heads, num_tokens, head_dim)`."""
        b, num_tokens, _ = x.shape
        x = x.view(b, num_tokens, self.num_heads, self.head_dim)  # (b, num_tokens, num_heads, head_dim)
        return x.transpose(1, 2)  # (b, num_heads, num_tokens, head_dim): heads become a batch dimension

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Split the projections into heads, attend causally in all heads at once, merge, project.

        Args:
            x (`torch.Tensor` of shape `(batch, num_tokens, d_in)`): token embeddings.
            return_weights (`bool`, defaults to `False`): also return the weights
                `(batch, num_heads, num_tokens, num_tokens)` (after dropout).
        """
        b, num_tokens, _ = x.shape
        _check_length(num_tokens, self.context_length)
        queries = self._split_heads(self.W_query(x))  # (b, num_heads, num_tokens, head_dim)
        keys = self._split_heads(self.W_key(x))  # (b, num_heads, num_tokens, head_dim)
        values = self._split_heads(self.W_value(x))  # (b, num_heads, num_tokens, head_dim)

        scores = queries @ keys.transpose(2, 3)  # (b, num_heads, num_tokens, num_tokens): every head at once
        future = self.mask[:num_tokens, :num_tokens]
        scores = scores.masked_fill(future, float("-inf"))
        weights = torch.softmax(scores / math.sqrt(self.head_dim), dim=-1)
        weights = self.dropout(weights)  # (b, num_heads, num_tokens, num_tokens)

        context = weights @ values  # (b, num_heads, num_tokens, head_dim)
        context = context.transpose(1, 2)  # (b, num_tokens, num_heads, head_dim)
        context = context.reshape(b, num_tokens, self.d_out)  # (b, num_tokens, d_out): heads side by side
        output = self.out_proj(context)  # (b, num_tokens, d_out)
        return (output, weights) if return_weights else output
