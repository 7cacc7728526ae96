"""FIRE through the real installed entry point: the bias against the paper's formula (with the MLP computed by
hand), its initialisation, options and training through it."""

import copy
import math

import pytest
import torch
from hfgpt_fire import FIREPositionEncoding

import hfgpt
from hfgpt.errors import ConfigError
from hfgpt.testing import assert_registered, train_steps


def config(**options):
    return hfgpt.HFGPTConfig.from_preset(
        "tiny", vocab_size=50, position_encoding="fire", drop_rate=0.0, position_encoding_kwargs=options
    )


def test_registered_through_the_installed_entry_point():
    assert_registered("position_encoding", "fire", "hfgpt-fire", FIREPositionEncoding)


def test_bias_is_the_mlp_of_the_interpolated_log_distance():
    """Li et al. 2023, eq. (FIRE): b(i, j) = f(psi(i - j) / psi(max(L, i))), psi(x) = log(c x + 1), f an MLP
    1 -> width -> heads with ReLU; c, L learned. The MLP is evaluated here by hand, unit by unit."""
    pe = FIREPositionEncoding(config(mlp_width=5, init_L=6.0))
    torch.manual_seed(0)
    with torch.no_grad():
        for param in pe.mlp.parameters():
            param.normal_()
        pe.c.fill_(0.3)
        pe.L_multiplier.fill_(
            1.5
        )  # L = 1.5 * 6 = 9: queries below 9 are normalised by psi(9), later by psi(i)
    w1, b1 = pe.mlp[0].weight[:, 0].tolist(), pe.mlp[0].bias.tolist()
    w2, b2 = pe.mlp[2].weight.tolist(), pe.mlp[2].bias.tolist()

    def by_hand(i, j, head):
        x = math.log(abs(0.3 * (i - j)) + 1) / (math.log(abs(0.3 * max(9.0, i)) + 1) + 1e-6)
        hidden = [max(0.0, w1[u] * x + b1[u]) for u in range(5)]
        return sum(w2[head][u] * hidden[u] for u in range(5)) + b2[head]

    queries = torch.tensor([[3, 8, 12, 20], [2, 0, 1, 2]])  # second row: a packed document restarting at 0
    keys = torch.tensor([[0, 3, 8, 12, 17, 20], [0, 1, 2, 0, 1, 2]])
    bias = pe.attention_bias(queries, keys)
    assert bias.shape == (2, 4, 4, 6)
    for row in range(2):
        for h in range(4):
            for a in range(4):
                for b in range(6):
                    expected = by_hand(queries[row, a].item(), keys[row, b].item(), h)
                    assert math.isclose(bias[row, h, a, b].item(), expected, rel_tol=1e-4, abs_tol=1e-5)


def test_progressive_interpolation_maps_every_querys_distances_into_zero_one():
    """Past the threshold, the farthest key (j = 0) of any query sits at input 1 of the MLP, whatever the length."""
    pe = FIREPositionEncoding(config(init_L=4.0))
    seen = []
    pe.mlp = torch.nn.Identity()  # read the MLP's input
    for length in (10, 100, 1000):
        x = pe.attention_bias(torch.tensor([[length - 1]]), torch.arange(length)[None])[0, 0, 0]
        seen.append((x.min().item(), x.max().item()))
    for low, high in seen:
        assert low == 0.0 and math.isclose(high, 1.0, rel_tol=1e-5)


def test_fresh_mlp_has_pytorchs_default_init_not_a_linear_start():
    torch.manual_seed(0)
    model = hfgpt.HFGPTForCausalLM(config(mlp_width=32))
    first = model.transformer.position_encoding.mlp[0]
    bound = 1 / math.sqrt(
        first.in_features
    )  # kaiming-uniform(a=sqrt 5) and the bias: U(-1/sqrt(fan_in), ...)
    assert first.bias.abs().max() <= bound and first.bias.abs().max() > 0.5 * bound
    assert first.weight.abs().max() > 0.5  # GPT-2's init (std 0.02) would keep it near 0
    pe = model.transformer.position_encoding
    assert pe.c.item() == pytest.approx(0.1) and pe.L_multiplier.item() == 1.0
    assert pe.init_L.item() == 64.0  # context_length


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mlp_width": 0}, "mlp_width must be a positive integer"),
        ({"init_c": -1.0}, "init_c must be a positive number"),
        ({"init_L": "512"}, "init_L must be a positive number"),
        ({"width": 8}, r"unknown fire option\(s\) \['width'\]"),
    ],
)
def test_options_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        hfgpt.HFGPTForCausalLM(config(**options))


def test_loss_falls_and_the_function_is_trained():
    torch.manual_seed(0)
    model = hfgpt.HFGPTForCausalLM._from_config(copy.deepcopy(config()), attn_implementation="sdpa").train()
    pe = model.transformer.position_encoding

    def function_has_gradients():
        assert pe.mlp[2].weight.grad.abs().sum() > 0 and pe.c.grad is not None

    data = torch.arange(40).remainder(7)[None].repeat(4, 1)
    losses = train_steps(model, data, steps=30, after_backward=function_has_gradients)
    assert losses[-1] < 0.5 * losses[0]
