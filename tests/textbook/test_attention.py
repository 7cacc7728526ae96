"""The textbook attention progression: each stage checked by hand, against its neighbour, or against torch/HF."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hfgpt.textbook.attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttentionV1,
    SelfAttentionV2,
    simplified_attention_weights,
    simplified_self_attention,
)

# "Your journey starts with one step", one 3-d embedding per token (chapter 3 of the book).
JOURNEY = [
    [0.43, 0.15, 0.89],  # Your
    [0.55, 0.87, 0.66],  # journey
    [0.57, 0.85, 0.64],  # starts
    [0.22, 0.58, 0.33],  # with
    [0.77, 0.25, 0.10],  # one
    [0.05, 0.80, 0.55],  # step
]


@pytest.fixture
def inputs() -> torch.Tensor:
    return torch.tensor(JOURNEY, dtype=torch.float64)


def _hand_weights(rows: list[list[float]]) -> list[list[float]]:
    """Softmax of pairwise dot products, with plain Python loops."""
    weights = []
    for query in rows:
        scores = [sum(q * k for q, k in zip(query, key)) for key in rows]
        exps = [math.exp(s) for s in scores]
        weights.append([e / sum(exps) for e in exps])
    return weights


def test_simplified_attention_matches_hand_computation(inputs):
    weights = _hand_weights(JOURNEY)
    context = [[sum(w * row[d] for w, row in zip(ws, JOURNEY)) for d in range(3)] for ws in weights]

    torch.testing.assert_close(
        simplified_attention_weights(inputs), torch.tensor(weights, dtype=torch.float64)
    )
    torch.testing.assert_close(simplified_self_attention(inputs), torch.tensor(context, dtype=torch.float64))


def test_simplified_attention_matches_values_printed_in_the_book(inputs):
    # Section 3.3.1 prints the weights and the context vector of the query "journey" (x^(2)) to 4 decimals.
    weights = simplified_attention_weights(inputs)[1]
    expected = torch.tensor([0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581], dtype=torch.float64)
    torch.testing.assert_close(weights, expected, atol=1e-4, rtol=0)
    expected_context = torch.tensor([0.4419, 0.6515, 0.5683], dtype=torch.float64)
    torch.testing.assert_close(simplified_self_attention(inputs)[1], expected_context, atol=1e-4, rtol=0)


def test_simplified_attention_is_batched_per_sequence(inputs):
    other = inputs.flip(0) * 0.5
    batched = simplified_self_attention(torch.stack([inputs, other]))
    torch.testing.assert_close(batched[0], simplified_self_attention(inputs))
    torch.testing.assert_close(batched[1], simplified_self_attention(other))


def test_simplified_attention_rejects_a_single_vector():
    with pytest.raises(ValueError, match="unsqueeze"):
        simplified_self_attention(torch.ones(3))


def test_self_attention_v1_equals_v2_with_transposed_linear_weights(inputs):
    torch.manual_seed(123)
    v2 = SelfAttentionV2(d_in=3, d_out=2).double()
    v1 = SelfAttentionV1(d_in=3, d_out=2).double()
    with torch.no_grad():
        v1.W_query.copy_(v2.W_query.weight.T)
        v1.W_key.copy_(v2.W_key.weight.T)
        v1.W_value.copy_(v2.W_value.weight.T)

    ctx1, w1 = v1(inputs, return_weights=True)
    ctx2, w2 = v2(inputs, return_weights=True)
    assert ctx1.shape == (6, 2) and w1.shape == (6, 6)
    torch.testing.assert_close(ctx1, ctx2)
    torch.testing.assert_close(w1, w2)


def test_self_attention_v1_scales_scores_by_sqrt_d_out(inputs):
    torch.manual_seed(0)
    v1 = SelfAttentionV1(d_in=3, d_out=4).double()
    q, k, v = inputs @ v1.W_query, inputs @ v1.W_key, inputs @ v1.W_value
    expected_weights = torch.softmax(q @ k.T / 2.0, dim=-1)  # sqrt(4) = 2
    ctx, weights = v1(inputs, return_weights=True)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(ctx, expected_weights @ v)


def test_causal_weights_are_zero_above_the_diagonal_and_rows_sum_to_one(inputs):
    torch.manual_seed(789)
    attn = CausalAttention(d_in=3, d_out=2, context_length=8, dropout=0.0).double()
    batch = torch.stack([inputs, inputs.flip(0)])  # (2, 6, 3)
    context, weights = attn(batch, return_weights=True)

    assert context.shape == (2, 6, 2) and weights.shape == (2, 6, 6)
    above = torch.ones(6, 6, dtype=torch.bool).triu(1)
    assert torch.all(weights[:, above] == 0)
    assert torch.all(weights[:, ~above] > 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 6, dtype=torch.float64))
    # The first token sees only itself, so its context vector is its own value vector.
    torch.testing.assert_close(context[:, 0], attn.W_value(batch[:, 0]))


def test_causal_attention_ignores_future_tokens(inputs):
    torch.manual_seed(1)
    attn = CausalAttention(d_in=3, d_out=4, context_length=6, dropout=0.0).double()
    changed = inputs.clone()
    changed[4:] = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(attn(changed[None])[0, :4], attn(inputs[None])[0, :4])
    assert not torch.allclose(attn(changed[None])[0, 4:], attn(inputs[None])[0, 4:])


def test_dropout_acts_on_attention_weights_only_in_train_mode(inputs):
    torch.manual_seed(42)
    attn = CausalAttention(d_in=3, d_out=2, context_length=6, dropout=0.5).double()
    x = inputs[None]

    attn.eval()
    clean_ctx, clean = attn(x, return_weights=True)
    again_ctx, _ = attn(x, return_weights=True)
    torch.testing.assert_close(again_ctx, clean_ctx)  # eval: deterministic, no dropout
    no_dropout = CausalAttention(d_in=3, d_out=2, context_length=6, dropout=0.0).double()
    no_dropout.load_state_dict(attn.state_dict())
    torch.testing.assert_close(no_dropout(x), clean_ctx)

    attn.train()
    torch.manual_seed(0)
    ctx, dropped = attn(x, return_weights=True)
    kept = dropped != 0
    visible = clean != 0
    # Some visible weights were dropped, the survivors are scaled by 1 / (1 - 0.5).
    assert (visible & ~kept).any() and (visible & kept).any()
    torch.testing.assert_close(dropped[kept], 2 * clean[kept])
    # Values are untouched: the context is the dropped weights applied to the ordinary value vectors.
    torch.testing.assert_close(ctx, dropped @ attn.W_value(x))


def test_causal_attention_rejects_inputs_longer_than_the_mask(inputs):
    attn = CausalAttention(d_in=3, d_out=2, context_length=4, dropout=0.0).double()
    with pytest.raises(ValueError, match="context_length=4"):
        attn(inputs[None])


def test_wrapper_concatenates_heads():
    torch.manual_seed(3)
    wrapper = MultiHeadAttentionWrapper(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=3)
    x = torch.rand(2, 5, 3)
    context, weights = wrapper(x, return_weights=True)
    assert context.shape == (2, 5, 6) and weights.shape == (2, 3, 5, 5)
    torch.testing.assert_close(context[..., 2:4], wrapper.heads[1](x))


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_wrapper_and_efficient_module_agree_with_the_same_weights(qkv_bias):
    torch.manual_seed(7)
    num_heads, head_dim, d_in = 3, 4, 5
    wrapper = MultiHeadAttentionWrapper(d_in, head_dim, 8, 0.0, num_heads, qkv_bias=qkv_bias).double()
    mha = MultiHeadAttention(d_in, num_heads * head_dim, 8, 0.0, num_heads, qkv_bias=qkv_bias).double()
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            # Head h owns rows h * head_dim : (h + 1) * head_dim of the big projection.
            getattr(mha, name).weight.copy_(torch.cat([getattr(h, name).weight for h in wrapper.heads]))
            if qkv_bias:
                getattr(mha, name).bias.copy_(torch.cat([getattr(h, name).bias for h in wrapper.heads]))
        mha.out_proj.weight.copy_(torch.eye(num_heads * head_dim))
        mha.out_proj.bias.zero_()

    x = torch.randn(2, 7, d_in, dtype=torch.float64)
    ctx_wrapper, w_wrapper = wrapper(x, return_weights=True)
    ctx_mha, w_mha = mha(x, return_weights=True)
    torch.testing.assert_close(ctx_mha, ctx_wrapper)
    torch.testing.assert_close(w_mha, w_wrapper)


def test_multi_head_attention_equals_torch_scaled_dot_product_attention():
    torch.manual_seed(11)
    mha = MultiHeadAttention(
        d_in=6, d_out=8, context_length=10, dropout=0.0, num_heads=2, qkv_bias=True
    ).double()
    x = torch.randn(3, 9, 6, dtype=torch.float64)

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(3, 9, 2, 4).transpose(1, 2)

    q, k, v = heads(mha.W_query(x)), heads(mha.W_key(x)), heads(mha.W_value(x))
    reference = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (3, 2, 9, 4)
    expected = mha.out_proj(reference.transpose(1, 2).reshape(3, 9, 8))
    torch.testing.assert_close(mha(x), expected)


def test_multi_head_attention_rejects_indivisible_d_out():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiHeadAttention(d_in=4, d_out=10, context_length=4, dropout=0.0, num_heads=3)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_multi_head_attention_equals_the_models_attention(attn_implementation):
    from hfgpt import HFGPTConfig
    from hfgpt.modeling_hfgpt import HFGPTAttention
    from hfgpt.plugins import get_position_encoding

    config = HFGPTConfig(
        vocab_size=16,
        context_length=12,
        emb_dim=8,
        n_heads=2,
        n_layers=1,
        drop_rate=0.0,
        qkv_bias=True,
        position_encoding="none",
    )
    config._attn_implementation = attn_implementation
    torch.manual_seed(5)
    model_attn = HFGPTAttention(config, layer_idx=0).double().eval()
    textbook = MultiHeadAttention(8, 8, 12, 0.0, num_heads=2, qkv_bias=True).double().eval()
    with torch.no_grad():
        # The model fuses the three projections into one Linear, stacked query, key, value.
        model_attn.qkv.weight.copy_(
            torch.cat([textbook.W_query.weight, textbook.W_key.weight, textbook.W_value.weight])
        )
        model_attn.qkv.bias.copy_(
            torch.cat([textbook.W_query.bias, textbook.W_key.bias, textbook.W_value.bias])
        )
        model_attn.out_proj.load_state_dict(textbook.out_proj.state_dict())

    x = torch.randn(2, 10, 8, dtype=torch.float64)
    position_ids = torch.arange(10)[None]
    output, _ = model_attn(x, positions=position_ids, position_encoding=get_position_encoding("none")(config))
    torch.testing.assert_close(output, textbook(x))


def test_walkthrough_example_runs_and_its_checks_hold(capsys):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "attention_walkthrough.py"
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        torch.set_printoptions(profile="default")  # the script sets sci_mode=False globally
    out = capsys.readouterr().out
    assert "gives the same: True" in out and "equals the wrapper: True" in out
    assert "0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581" in out  # the book's weights for "journey"


def test_attention_tutorial_snippets_run_and_print_what_the_text_says(capsys):
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "attention.md"
    code = "\n".join(re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S))
    exec(compile(code, str(doc), "exec"), {})
    out = capsys.readouterr().out
    assert "tensor([0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581])" in out
    assert "tensor([0.4419, 0.6515, 0.5683])" in out
    assert out.count("True") == 2  # V1 == V2, and the efficient module == the wrapper
